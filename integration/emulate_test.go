package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"
)

// TestEmulateCommand follows what `rds-iam-proxy emulate` prints, as a
// person would: export its AWS_* lines, run the proxy command it prints
// (with a listen address added), connect with psql.
func TestEmulateCommand(t *testing.T) {
	w.enter(t)
	port, logs := followEmulate(t, "--backend", w.pg.Addr(), "--db-users", iamUser)
	out, stderr, err := psql(t, dsn(port, iamUser), "-c", "SELECT current_user")
	if err != nil || strings.TrimSpace(out) != iamUser {
		t.Fatalf("psql through the printed setup: %v %q\n%s\nproxy log:\n%s", err, out, stderr, logs)
	}
}

// TestEmulateCommandMySQL is the same for a MySQL backend, where the
// emulator logs in with a password it is given.
func TestEmulateCommandMySQL(t *testing.T) {
	w.enter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.My.Exec(ctx, "CREATE USER 'emu_user'@'%' IDENTIFIED BY 'emu-pass'", "GRANT SELECT ON appdb.* TO 'emu_user'@'%'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.My.Exec(context.Background(), "DROP USER 'emu_user'@'%'") })
	port, logs := followEmulate(t, "--engine", "mysql", "--backend", w.My.Addr(), "--backend-password", "emu-pass", "--db-users", "emu_user")
	out, stderr, err := mysqlCLI(t, port, "emu_user", "-e", "SELECT CURRENT_USER()")
	if err != nil || strings.TrimSpace(out) != "emu_user@%" {
		t.Fatalf("mysql through the printed setup: %v %q\n%s\nproxy log:\n%s", err, out, stderr, logs)
	}
}

// followEmulate starts `emulate` with args, sets up the proxy the way its
// output says and returns the proxy's port and log.
func followEmulate(t *testing.T, args ...string) (port string, logs *syncbuf.Buffer) {
	t.Helper()
	bin := proxyBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	emu := exec.CommandContext(ctx, bin, append([]string{"emulate", "--ca-out", caFile}, args...)...)
	emu.Stderr = w.logs
	stdout, err := emu.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { interruptThenKill(emu, 10*time.Second) })

	env := cleanEnv(t)
	var proxyArgs []string
	sc := bufio.NewScanner(stdout)
	for proxyArgs == nil && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "export "):
			env = append(env, strings.TrimPrefix(line, "export "))
		case strings.HasPrefix(line, "rds-iam-proxy "):
			proxyArgs = strings.Fields(strings.TrimPrefix(line, "rds-iam-proxy "))
		}
	}
	if proxyArgs == nil {
		t.Fatalf("emulate printed no proxy command (%v)", sc.Err())
	}
	go io.Copy(io.Discard, stdout)

	port = freePort(t)
	logs = &syncbuf.Buffer{}
	proxyCmd := exec.CommandContext(ctx, bin, append(proxyArgs, "--listen", "127.0.0.1:"+port)...)
	proxyCmd.Env = env
	proxyCmd.Stderr = io.MultiWriter(logs, w.logs)
	if err := proxyCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxyCmd.Process.Kill(); proxyCmd.Wait() })
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "proxy ready") })
	if !strings.Contains(logs.String(), "ca_bundle="+caFile) {
		t.Fatalf("the proxy did not use the CA file emulate wrote:\n%s", logs)
	}
	return port, logs
}

// cleanEnv is the process environment without AWS_* variables, so only
// what a command printed configures the AWS chain.
func cleanEnv(t *testing.T) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	dir := t.TempDir()
	return append(env, fmt.Sprintf("AWS_CONFIG_FILE=%s/none", dir), fmt.Sprintf("AWS_SHARED_CREDENTIALS_FILE=%s/none", dir))
}
