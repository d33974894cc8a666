package deploy

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"
)

// TestComposeEmulatorRuns runs the compose emulator command (on random
// ports, files in a temp dir) and checks that it listens on 0.0.0.0, that
// the URLs it prints and writes to --env-out use the advertised host, that
// they are the proxy's AWS environment in compose, and that the endpoints
// it serves are the proxy's upstreams'. It ends with exit 0 on SIGTERM.
func TestComposeEmulatorRuns(t *testing.T) {
	var c compose
	decodeInto(t, "docker-compose.yml", &c)
	em, px := c.Services["emulator"], c.Services["proxy"]
	dir := t.TempDir()
	envOut, caOut := filepath.Join(dir, "aws.env"), filepath.Join(dir, "ca.pem")
	composePorts := map[string]string{}
	var args []string
	for _, a := range em.Command {
		name, v, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "listen-aws", "listen-postgres", "listen-mysql":
			host, port, err := net.SplitHostPort(v)
			if err != nil || host != "0.0.0.0" {
				t.Fatalf("emulator %s: want 0.0.0.0:PORT", a)
			}
			composePorts[name] = port
			a = "--" + name + "=0.0.0.0:0"
		case "env-out":
			a = "--env-out=" + envOut
		case "ca-out":
			a = "--ca-out=" + caOut
		}
		args = append(args, a)
	}
	bin := binary(t) // built before the clock starts: a cold build under load took the whole 30 s
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stdout, stderr syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var envData []byte
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("emulate ended early: %v\n%s", err, stderr.String())
		default:
		}
		if b, err := os.ReadFile(envOut); err == nil && len(b) > 0 {
			envData = b
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("emulate wrote no %s:\n%s", envOut, stderr.String())
		}
	}
	// The command lines come last: wait for both.
	for deadline := time.Now().Add(5 * time.Second); strings.Count(stdout.String(), "\nrds-iam-proxy ") < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("emulate printed:\n%s", stdout.String())
		}
	}
	printed := stdout.String()

	host := flagValue(em.Command, "advertise-host")
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(envData)), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(v, " '\"$") {
			t.Fatalf("env file line %q: want KEY=value without quoting", line)
		}
		env[k] = v
		if !strings.Contains(printed, "export "+k+"="+v+"\n") {
			t.Errorf("%s=%s is in the env file but not printed:\n%s", k, v, printed)
		}
	}
	awsURL, err := url.Parse(env["AWS_ENDPOINT_URL_STS"])
	if err != nil || awsURL.Hostname() != host {
		t.Fatalf("AWS_ENDPOINT_URL_STS=%q: want the advertised host %s", env["AWS_ENDPOINT_URL_STS"], host)
	}
	// The file, with compose's fixed AWS port, is the proxy's environment.
	fixed := map[string]string{}
	for k, v := range env {
		fixed[k] = strings.ReplaceAll(v, net.JoinHostPort(host, awsURL.Port()), net.JoinHostPort(host, composePorts["listen-aws"]))
	}
	if fmt.Sprint(fixed) != fmt.Sprint(px.Environment) {
		t.Errorf("emulate's env file (compose ports) %v\n differs from the proxy's compose environment %v", fixed, px.Environment)
	}
	dialed := 0
	checkDial := func(hostPort string) {
		h, p, err := net.SplitHostPort(hostPort)
		if err != nil || h != host {
			t.Errorf("printed address %q: want the advertised host %s", hostPort, host)
			return
		}
		// Listening on 0.0.0.0: reachable on loopback too.
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", p), 2*time.Second)
		if err != nil {
			t.Errorf("%s: %v", hostPort, err)
			return
		}
		conn.Close()
		dialed++
	}
	checkDial(awsURL.Host)
	endpoints := map[string]string{}
	for _, a := range px.Command {
		if v, ok := strings.CutPrefix(a, "--upstream="); ok {
			u := parseUpstream(t, v)
			endpoints[u["engine"]] = u["endpoint"]
		}
	}
	lineRE := regexp.MustCompile(`(?m)^rds-iam-proxy --engine (\S+) --endpoint (\S+) --dial-address (\S+) --ca-bundle (\S+)$`)
	lines := lineRE.FindAllStringSubmatch(printed, -1)
	if len(lines) != 2 {
		t.Fatalf("want two proxy command lines, got:\n%s", printed)
	}
	for _, m := range lines {
		if endpoints[m[1]] != m[2] {
			t.Errorf("emulate serves %s at %s; compose's proxy upstream has endpoint %q", m[1], m[2], endpoints[m[1]])
		}
		checkDial(m[3])
		if m[4] != caOut {
			t.Errorf("printed --ca-bundle %s, want %s", m[4], caOut)
		}
	}
	if dialed != 3 {
		t.Errorf("reached %d of the emulator's 3 listeners", dialed)
	}
	pemData, err := os.ReadFile(caOut)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(pemData); b == nil || b.Type != "CERTIFICATE" {
		t.Errorf("--ca-out wrote no PEM certificate: %q", pemData)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("emulate after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Error("emulate did not end within 10s of SIGTERM")
	}
}

// TestEmulateMySQLBackendNeedsPostgres: --mysql-backend adds a front beside
// a Postgres one, and is refused with --engine mysql.
func TestEmulateMySQLBackendNeedsPostgres(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binary(t), "emulate", "--engine=mysql", "--backend=127.0.0.1:1", "--backend-password=x",
		"--mysql-backend=127.0.0.1:2", "--ca-out="+filepath.Join(dir, "ca.pem"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "--mysql-backend") {
		t.Errorf("emulate --engine mysql --mysql-backend: %v\n%s", err, out)
	}
}
