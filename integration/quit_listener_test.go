package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// postTo POSTs path to addr, reaching it from the local address from (""
// lets the system choose), and returns the status (0 when it cannot
// connect).
func postTo(t *testing.T, from, addr, path string) int {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	res, err := c.Post("http://"+addr+path, "", nil)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// nonLoopbackIP is an address of this machine other than loopback, as
// another pod would reach a pod's IP.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Fatal("this machine has no non-loopback IPv4 address to stand in for a pod IP")
	return ""
}

// TestQuitNotOnTheAdminPort: with the admin port on every interface, as
// the Kubernetes example has it for the kubelet's probes, POST
// /quitquitquit on it is not served, whether it comes from the pod's
// address (another pod) or from loopback (what a service mesh such as
// Istio makes every inbound request look like); the proxy keeps serving.
// `rds-iam-proxy shutdown` reaches it on its own unix socket and drains.
func TestQuitNotOnTheAdminPort(t *testing.T) {
	w.enter(t)
	dir, err := os.MkdirTemp("", "riap-quit-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "shutdown.sock")
	pgPort, adminPort := freePort(t), freePort(t)
	s := startSidecar(t, upstreamsYAML("shutdown_address: unix:"+sock, pgUpstream("pg", "127.0.0.1:"+pgPort)),
		"--admin-address", "0.0.0.0:"+adminPort, "--admin-allow-non-loopback")

	podIP := nonLoopbackIP(t)
	for _, from := range []struct{ local, to string }{
		{"", s.admin}, // from loopback, as behind a mesh
		{podIP, net.JoinHostPort(podIP, adminPort)}, // from another pod
	} {
		if code := postTo(t, from.local, from.to, "/quitquitquit"); code != http.StatusNotFound {
			t.Errorf("POST /quitquitquit to the admin port %s: %d, want 404", from.to, code)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if code, body := s.get(t, "/readiness"); code != 200 || !s.running() {
		t.Fatalf("after POSTs to the admin port: readiness %d %q, running %v", code, body, s.running())
	}
	if code := connectCode(t, pgPort, iamUser); code != "" {
		t.Fatalf("a client after POSTs to the admin port: %s", code)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("shutdown socket %s: %v, mode %v; want 0600", sock, err, fi.Mode())
	}

	out, err := exec.Command(proxyBinary(t), "shutdown", "--shutdown-address", "unix:"+sock).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "shutting down") {
		t.Fatalf("rds-iam-proxy shutdown over the unix socket: %v %s", err, out)
	}
	if code, _ := s.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after a clean drain, want 0\n%s", code, s.logs)
	}
	if !strings.Contains(s.logs.String(), `why="POST /quitquitquit"`) {
		t.Errorf("the log does not say why it shut down:\n%s", s.logs)
	}
	if _, err := os.Stat(sock); err == nil {
		t.Error("the shutdown socket is left behind after exit")
	}
}

// TestQuitListenerRefusesNonLoopback: the binary refuses a shutdown
// address other machines could reach, whatever else is allowed, and says
// why before it starts anything.
func TestQuitListenerRefusesNonLoopback(t *testing.T) {
	w.enter(t)
	for _, addr := range []string{"0.0.0.0:" + freePort(t), net.JoinHostPort(nonLoopbackIP(t), freePort(t))} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, proxyBinary(t), "--endpoint", w.Endpoint(), "--dial-address", w.front.Addr(),
			"--ca-bundle", w.caFile, "--listen", "127.0.0.1:"+freePort(t),
			"--shutdown-address", addr, "--allow-non-loopback", "--admin-allow-non-loopback")
		out, err := cmd.CombinedOutput()
		cancel()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 {
			t.Errorf("--shutdown-address %s: %v, want exit 2\n%s", addr, err, out)
			continue
		}
		if !strings.Contains(string(out), "shutdown_address: "+addr+" is not a loopback address") || !strings.Contains(string(out), "Fix: 127.0.0.1:PORT or unix:PATH") {
			t.Errorf("--shutdown-address %s: the message does not say why and how to fix it:\n%s", addr, out)
		}
		if c, err := net.DialTimeout("tcp", strings.Replace(addr, "0.0.0.0", "127.0.0.1", 1), time.Second); err == nil {
			c.Close()
			t.Errorf("something listens on %s", addr)
		}
	}
}
