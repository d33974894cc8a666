package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestKubernetesManifests checks the Deployment and the Job: the proxy is a
// native sidecar with probes on its admin port, everything runs non-root
// with a read-only root and no capabilities, IRSA through the service
// account, the config from the ConfigMap, sockets in a shared emptyDir.
func TestKubernetesManifests(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join(repoRoot, "deploy/kubernetes"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".yaml") {
			t.Errorf("deploy/kubernetes/%s: not a .yaml file", e.Name())
			continue
		}
		for _, d := range yamlDocs(t, "deploy/kubernetes/"+e.Name()) {
			md, _ := d["metadata"].(map[string]any)
			if d["apiVersion"] == nil || d["kind"] == nil || md == nil || md["name"] == nil {
				t.Errorf("deploy/kubernetes/%s: a document without apiVersion, kind or metadata.name", e.Name())
				continue
			}
			kinds[e.Name()] = fmt.Sprint(d["kind"])
		}
	}
	wantKinds := map[string]string{"configmap.yaml": "ConfigMap", "deployment.yaml": "Deployment", "job.yaml": "Job",
		"networkpolicy.yaml": "NetworkPolicy", "serviceaccount.yaml": "ServiceAccount"}
	for f, k := range wantKinds {
		if kinds[f] != k {
			t.Errorf("deploy/kubernetes/%s: kind %q, want %q", f, kinds[f], k)
		}
	}

	var sa struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name        string            `yaml:"name"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
	}
	decodeInto(t, "deploy/kubernetes/serviceaccount.yaml", &sa)
	if !regexp.MustCompile(`^arn:aws:iam::\d{12}:role/.+`).MatchString(sa.Metadata.Annotations["eks.amazonaws.com/role-arn"]) {
		t.Errorf("serviceaccount.yaml: eks.amazonaws.com/role-arn %q is not a role ARN", sa.Metadata.Annotations["eks.amazonaws.com/role-arn"])
	}
	var cm struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Data map[string]string `yaml:"data"`
	}
	decodeInto(t, "deploy/kubernetes/configmap.yaml", &cm)
	if len(cm.Data) != 1 {
		t.Fatalf("configmap.yaml: %d data keys, want the one config file", len(cm.Data))
	}
	var cfgKey string
	var cfg Config
	for k, v := range cm.Data {
		cfgKey, cfg = k, parseConfig(t, "configmap.yaml "+k, []byte(v))
	}
	if cfg.RoleARN != "" || cfg.Profile != "" {
		t.Errorf("configmap.yaml: role_arn/profile set; the identity is the IRSA role")
	}

	var deploy k8sWorkload
	decodeInto(t, "deploy/kubernetes/deployment.yaml", &deploy)
	var job k8sWorkload
	decodeInto(t, "deploy/kubernetes/job.yaml", &job)
	if deploy.Kind != "Deployment" || job.Kind != "Job" {
		t.Fatalf("kinds %q, %q", deploy.Kind, job.Kind)
	}
	for _, w := range []k8sWorkload{deploy, job} {
		t.Run(w.Kind, func(t *testing.T) {
			checkPod(t, w.Kind, w.Spec.Template.Spec, sa.Metadata.Name, cm.Metadata.Name, cfgKey, cfg)
		})
	}
	if !mapContains(deploy.Spec.Template.Metadata.Labels, deploy.Spec.Selector.MatchLabels) || len(deploy.Spec.Selector.MatchLabels) == 0 {
		t.Errorf("deployment.yaml: the selector %v does not match the pod labels %v", deploy.Spec.Selector.MatchLabels, deploy.Spec.Template.Metadata.Labels)
	}
	if p := job.Spec.Template.Spec.RestartPolicy; p != "Never" && p != "OnFailure" {
		t.Errorf("job.yaml: pod restartPolicy %q, want Never or OnFailure", p)
	}

	type netpol struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			PodSelector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"podSelector"`
			PolicyTypes []string `yaml:"policyTypes"`
			Ingress     []struct {
				From  []any `yaml:"from"`
				Ports []struct {
					Port     any    `yaml:"port"`
					Protocol string `yaml:"protocol"`
				} `yaml:"ports"`
			} `yaml:"ingress"`
		} `yaml:"spec"`
	}
	// Every pod that runs the sidecar is selected by a policy that keeps
	// other pods off its admin port.
	covered := map[string]bool{}
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, "deploy/kubernetes/networkpolicy.yaml")))
	dec.KnownFields(true)
	for {
		var np netpol
		if err := dec.Decode(&np); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("networkpolicy.yaml: %v", err)
		}
		if !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
			t.Errorf("networkpolicy.yaml %s: no Ingress policy type", np.Metadata.Name)
		}
		for _, r := range np.Spec.Ingress {
			if len(r.Ports) == 0 {
				t.Errorf("networkpolicy.yaml %s: an ingress rule admits every port, the admin port too", np.Metadata.Name)
			}
			for _, p := range r.Ports {
				if s := fmt.Sprint(p.Port); s == "admin" || s == "9801" {
					t.Errorf("networkpolicy.yaml %s admits other pods to the admin port (/metrics)", np.Metadata.Name)
				}
			}
		}
		for _, w := range []k8sWorkload{deploy, job} {
			if len(np.Spec.PodSelector.MatchLabels) > 0 && mapContains(w.Spec.Template.Metadata.Labels, np.Spec.PodSelector.MatchLabels) {
				covered[w.Kind] = true
			}
		}
	}
	for _, w := range []k8sWorkload{deploy, job} {
		if !covered[w.Kind] {
			t.Errorf("networkpolicy.yaml selects no %s pods (labels %v): their admin port is open to other pods", w.Kind, w.Spec.Template.Metadata.Labels)
		}
	}
}

type k8sWorkload struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas                *int `yaml:"replicas"`
		BackoffLimit            *int `yaml:"backoffLimit"`
		TTLSecondsAfterFinished *int `yaml:"ttlSecondsAfterFinished"`
		Selector                struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sPodSpec struct {
	ServiceAccountName            string         `yaml:"serviceAccountName"`
	RestartPolicy                 string         `yaml:"restartPolicy"`
	TerminationGracePeriodSeconds *int           `yaml:"terminationGracePeriodSeconds"`
	InitContainers                []k8sContainer `yaml:"initContainers"`
	Containers                    []k8sContainer `yaml:"containers"`
	SecurityContext               struct {
		RunAsNonRoot   *bool `yaml:"runAsNonRoot"`
		FSGroup        *int  `yaml:"fsGroup"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	Volumes []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		EmptyDir *struct {
			Medium    string `yaml:"medium"`
			SizeLimit string `yaml:"sizeLimit"`
		} `yaml:"emptyDir"`
	} `yaml:"volumes"`
}

// k8sContainer is the part of a Kubernetes container spec these manifests
// use; decodeInto refuses any other key.
type k8sContainer struct {
	Name          string   `yaml:"name"`
	Image         string   `yaml:"image"`
	Command       []string `yaml:"command"`
	Args          []string `yaml:"args"`
	RestartPolicy string   `yaml:"restartPolicy"`
	Env           []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	StartupProbe   *k8sProbe `yaml:"startupProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		RunAsUser                *int  `yaml:"runAsUser"`
		RunAsGroup               *int  `yaml:"runAsGroup"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	FailureThreshold int `yaml:"failureThreshold"`
	PeriodSeconds    int `yaml:"periodSeconds"`
}

// checkPod checks one pod template that runs the proxy as a native sidecar.
func checkPod(t *testing.T, kind string, spec k8sPodSpec, saName, cmName, cfgKey string, cfg Config) {
	if spec.ServiceAccountName != saName {
		t.Errorf("serviceAccountName %q, want %q (IRSA)", spec.ServiceAccountName, saName)
	}
	if spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if spec.SecurityContext.FSGroup == nil {
		t.Error("pod securityContext.fsGroup unset: the sockets' group and the IRSA token's readability depend on it")
	}
	for _, c := range spec.Containers {
		if isOurs(c.Image) {
			t.Errorf("container %q runs the proxy as a plain container: it must be a native sidecar (initContainers, restartPolicy: Always)", c.Name)
		}
	}
	var sidecar *k8sContainer
	for i, c := range spec.InitContainers {
		if isOurs(c.Image) {
			sidecar = &spec.InitContainers[i]
		}
	}
	if sidecar == nil {
		t.Fatal("no rds-iam-proxy init container")
	}
	if sidecar.RestartPolicy != "Always" {
		t.Errorf("sidecar restartPolicy %q, want Always (a native sidecar, Kubernetes 1.29+)", sidecar.RestartPolicy)
	}
	args := slices.Concat(sidecar.Command, sidecar.Args)
	admin := flagValue(args, "admin-address")
	host, port, err := net.SplitHostPort(admin)
	if err != nil {
		t.Fatalf("--admin-address %q: %v", admin, err)
	}
	if ip := net.ParseIP(host); (host == "" || ip != nil && ip.IsUnspecified()) && !slices.Contains(args, "--admin-allow-non-loopback") {
		t.Errorf("--admin-address %s without --admin-allow-non-loopback", admin)
	}
	if slices.Contains(args, "--allow-non-loopback") {
		t.Errorf("the sidecar passes --allow-non-loopback: its database listeners must stay on loopback (use --admin-allow-non-loopback for the probes)")
	}
	adminPort, _ := strconv.Atoi(port)
	probes := map[string]*k8sProbe{"/startup": sidecar.StartupProbe, "/liveness": sidecar.LivenessProbe}
	if kind == "Deployment" {
		probes["/readiness"] = sidecar.ReadinessProbe
	}
	for path, p := range probes {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no httpGet probe for %s", path)
			continue
		}
		if p.HTTPGet.Path != path {
			t.Errorf("probe for %s has path %q", path, p.HTTPGet.Path)
		}
		if got := probePort(*sidecar, p.HTTPGet.Port); got != adminPort {
			t.Errorf("probe %s on port %v (%d), the admin address is %s", path, p.HTTPGet.Port, got, admin)
		}
	}
	if sidecar.StartupProbe != nil && sidecar.StartupProbe.PeriodSeconds*max(sidecar.StartupProbe.FailureThreshold, 1) < 10 {
		t.Error("startupProbe gives the proxy under 10s to start")
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		sc := c.SecurityContext
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
			t.Errorf("container %q: securityContext %+v: want runAsNonRoot, readOnlyRootFilesystem, no privilege escalation, drop ALL", c.Name, sc)
		}
		if sc.RunAsUser == nil || *sc.RunAsUser == 0 {
			t.Errorf("container %q: no numeric non-root runAsUser", c.Name)
		}
		if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
			t.Errorf("container %q: resources %+v: want cpu and memory requests and a memory limit", c.Name, c.Resources)
		}
	}
	// The config file comes from the ConfigMap.
	cfgPath := flagValue(args, "config")
	vols := map[string]string{} // volume -> configMap name or "emptyDir"
	for _, v := range spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			vols[v.Name] = "configMap:" + v.ConfigMap.Name
		case v.EmptyDir != nil:
			vols[v.Name] = "emptyDir"
		}
	}
	mounted := func(c k8sContainer, p string) string {
		for _, m := range c.VolumeMounts {
			if p == m.MountPath || strings.HasPrefix(p, m.MountPath+"/") {
				return vols[m.Name]
			}
		}
		return ""
	}
	if mounted(*sidecar, cfgPath) != "configMap:"+cmName || path.Base(cfgPath) != cfgKey {
		t.Errorf("--config %s is not the ConfigMap %s's key %s", cfgPath, cmName, cfgKey)
	}
	// Unix sockets: in an emptyDir the app's containers mount too.
	for _, u := range cfg.Upstreams {
		dir, ok := strings.CutPrefix(u.Listen, "unix:")
		if !ok {
			continue
		}
		if u.Engine == "mysql" {
			dir = path.Dir(dir)
		}
		for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
			if c.RestartPolicy == "" && mounted(c, dir) != "emptyDir" {
				t.Errorf("container %q does not mount %s (upstream %s's socket) from an emptyDir", c.Name, dir, u.Name)
			}
		}
		if mounted(*sidecar, dir) != "emptyDir" {
			t.Errorf("the sidecar does not mount %s from an emptyDir", dir)
		}
	}
}

// probePort resolves a probe's port (a number or a port name).
func probePort(c k8sContainer, port any) int {
	switch p := port.(type) {
	case int:
		return p
	case string:
		for _, cp := range c.Ports {
			if cp.Name == p {
				return cp.ContainerPort
			}
		}
	}
	return -1
}

func mapContains(m, sub map[string]string) bool {
	for k, v := range sub {
		if m[k] != v {
			return false
		}
	}
	return true
}
