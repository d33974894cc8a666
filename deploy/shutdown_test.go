package deploy

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"testing"
)

// TestShutdownEndpointStaysLocal: wherever an example sets where POST
// /quitquitquit is served, it is a unix socket or a loopback address, and
// not the admin address; in the systemd example the socket is in the
// RuntimeDirectory, the one place the service may create it.
func TestShutdownEndpointStaysLocal(t *testing.T) {
	addrs := map[string]string{}
	example := parseConfig(t, "deploy/rds-iam-proxy.example.yaml", readFile(t, "deploy/rds-iam-proxy.example.yaml"))
	addrs["deploy/rds-iam-proxy.example.yaml"] = example.ShutdownAddress
	var cm struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   map[string]string `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`
	}
	decodeInto(t, "deploy/kubernetes/configmap.yaml", &cm)
	for k, v := range cm.Data {
		c := parseConfig(t, "configmap.yaml "+k, []byte(v))
		addrs["configmap.yaml "+k] = c.ShutdownAddress
	}
	flag := regexp.MustCompile(`--shutdown-address[= ]"?([^"\s]+)`)
	for _, f := range []string{"deploy/kubernetes/deployment.yaml", "deploy/kubernetes/job.yaml", "docker-compose.yml", "deploy/systemd/rds-iam-proxy.service"} {
		for i, m := range flag.FindAllStringSubmatch(string(readFile(t, f)), -1) {
			addrs[fmt.Sprintf("%s #%d", f, i)] = m[1]
		}
	}
	for where, addr := range addrs {
		if addr != "" && !isLocalListen(addr) {
			t.Errorf("%s: shutdown address %q is neither a unix socket nor loopback", where, addr)
		}
	}
	if example.ShutdownAddress == "" {
		t.Fatal("the example config does not show shutdown_address")
	}
	if example.ShutdownAddress == example.AdminAddress {
		t.Errorf("the example serves /quitquitquit on its admin address %s", example.AdminAddress)
	}
	if dir, ok := strings.CutPrefix(example.ShutdownAddress, "unix:"); ok {
		if want := "/run/" + systemdUnit(t)["Service"]["RuntimeDirectory"][0]; path.Dir(dir) != want {
			t.Errorf("the example's shutdown socket %s is not in the systemd RuntimeDirectory %s", dir, want)
		}
	}
}
