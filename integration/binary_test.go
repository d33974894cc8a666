package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
)

// buildBinary builds cmd/rds-iam-proxy once per test run.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "rds-iam-proxy-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "rds-iam-proxy")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/rds-iam-proxy").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func proxyBinary(t *testing.T) string {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	handed.Lock()
	defer handed.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		// The kernel may give a port back that it gave before (two
		// upstreams of one config then collide): never twice per run.
		if !handed.ports[port] {
			handed.ports[port] = true
			return fmt.Sprint(port)
		}
	}
	t.Fatal("no port the run has not used yet")
	return ""
}

// handed are the ports freePort gave out in this run.
var handed = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// TestBinaryRun runs the binary as a user would (flags, the AWS chain from
// the environment) and uses it with psql.
func TestBinaryRun(t *testing.T) {
	w.enter(t)
	cmd, port, logs := startBinary(t)
	out, stderr, err := psql(t, dsn(port, iamUser), "-c", "SELECT current_user")
	if err != nil || strings.TrimSpace(out) != iamUser {
		t.Fatalf("psql through the binary: %v %q\n%s\nproxy log:\n%s", err, out, stderr, logs)
	}
	if !strings.Contains(logs.String(), "region_source=\"region taken from the endpoint name\"") {
		t.Errorf("startup log does not say where the region came from:\n%s", logs)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code, _ := waitExit(t, cmd, 10*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM with no session open, want 0", code)
	}
}

// TestTokenCommand prints a token in the botocore form, which the emulator
// accepts; and a token from the AWS CLI (botocore, an independent signer)
// for the same credentials is accepted too, so the emulator's check is not
// merely agreeing with our own code.
func TestTokenCommand(t *testing.T) {
	w.enter(t)
	bin := proxyBinary(t)
	akid, secret := w.aws.AWS.AddUser("token-cli", appPolicy())
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID="+akid, "AWS_SECRET_ACCESS_KEY="+secret)
	endpoint := fmt.Sprintf("%s:%d", w.front.Endpoint(), w.front.Port())
	target := emulator.TokenTarget{Host: w.front.Endpoint(), Port: w.front.Port(), Region: "us-east-1", DBUser: iamUser, ResourceID: w.front.ResourceID()}

	cmd := exec.Command(bin, "token", "--endpoint", endpoint, "--db-user", iamUser)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("token: %v\n%s", err, stderr.String())
	}
	tok := strings.TrimSpace(string(out))
	if want := endpoint + "/?Action=connect&DBUser=app_user&"; !strings.HasPrefix(tok, want) {
		t.Fatalf("token does not start with %q", want)
	}
	if _, err := w.aws.AWS.VerifyRDSToken(tok, target); err != nil {
		t.Fatalf("emulator rejects the token command's token: %v", err)
	}

	aws, err := exec.LookPath("aws")
	if err != nil {
		t.Fatal("the AWS CLI (aws) is needed to cross-check tokens: apt-get install -y awscli")
	}
	cli := exec.Command(aws, "rds", "generate-db-auth-token", "--hostname", w.front.Endpoint(), "--port", fmt.Sprint(w.front.Port()), "--username", iamUser, "--region", "us-east-1")
	cli.Env = env
	cli.Stderr = &stderr
	out, err = cli.Output()
	if err != nil {
		t.Fatalf("aws rds generate-db-auth-token: %v\n%s", err, stderr.String())
	}
	if _, err := w.aws.AWS.VerifyRDSToken(strings.TrimSpace(string(out)), target); err != nil {
		t.Fatalf("emulator rejects the AWS CLI's token: %v", err)
	}
}

// TestDemoCheck runs the README's first command with --check.
// TestDemoCheck runs the README's demo command for each engine and both:
// each proxy's query must go through.
func TestDemoCheck(t *testing.T) {
	w.enter(t)
	bin := proxyBinary(t)
	for _, engine := range []string{"postgres", "mysql", "all"} {
		t.Run(engine, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "demo", "--check", "--engine", engine, "--listen", "127.0.0.1:0", "--listen-mysql", "127.0.0.1:0")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("demo --check: %v\n%s", err, out.String())
			}
			want := map[string][]string{
				"postgres": {"current_user=app_user message="},
				"mysql":    {"current_user=app_user@% message="},
				"all":      {"current_user=app_user message=", "current_user=app_user@% message="},
			}[engine]
			found := 0
			sc := bufio.NewScanner(&out)
			for sc.Scan() {
				for _, w := range want {
					if strings.Contains(sc.Text(), "query through the proxy OK: "+w) {
						found++
					}
				}
			}
			if found != len(want) {
				t.Fatalf("demo output lacks a query result (%d of %d):\n%s", found, len(want), out.String())
			}
		})
	}
}
