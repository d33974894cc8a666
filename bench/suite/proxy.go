package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is Linux's USER_HZ, the unit of utime and stime in
// /proc/PID/stat: 100 on every Linux architecture Go runs on.
const clockTicks = 100

// proxyChild is the proxy binary running as a child of the suite, so that
// /proc holds its own CPU time, memory and files, apart from the clients,
// fronts and stub this process runs.
type proxyChild struct {
	cmd    *exec.Cmd
	admin  string
	out    *boundedLog
	exited chan struct{}
}

// buildProxy compiles the proxy from this module into dir.
func buildProxy(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "rds-iam-proxy")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/rds-iam-proxy/rds-iam-proxy/cmd/rds-iam-proxy").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build the proxy: %w\n%s", err, out)
	}
	return bin, nil
}

// startProxyChild runs bin with the YAML config, its admin port on admin,
// and extra flags; gomaxprocs > 0 sets the child's GOMAXPROCS only. It
// returns once /startup answers 200.
func startProxyChild(ctx context.Context, bin, dir, yaml, admin string, extra []string, gomaxprocs int) (*proxyChild, error) {
	cfg := filepath.Join(dir, "rds-iam-proxy.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	args := append([]string{"--config", cfg, "--admin-address", admin, "--log-level", "warn"}, extra...)
	p := &proxyChild{cmd: exec.Command(bin, args...), admin: admin, out: &boundedLog{}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = os.Environ()
	if gomaxprocs > 0 {
		p.cmd.Env = append(p.cmd.Env, "GOMAXPROCS="+strconv.Itoa(gomaxprocs))
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		if resp, err := client.Get("http://" + admin + "/startup"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("the proxy exited: %s", p.out)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("the proxy did not start within 60s: %s", p.out)
		}
	}
}

// stop ends the child and waits for it; a second call returns at once.
func (p *proxyChild) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// cpu is the child's user plus system CPU time so far.
func (p *proxyChild) cpu() (time.Duration, error) { return procCPU(p.cmd.Process.Pid) }

// procCPU is a process's user plus system CPU time so far, from
// /proc/PID/stat (the proxy child's, PgBouncer's).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc stat: %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc stat: %q", b)
	}
	// Fields 14 and 15 of stat; f[0] is field 3.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc stat: %q", b)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// rss is the child's resident memory in bytes.
func (p *proxyChild) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
}

// fds is how many files the child holds open.
func (p *proxyChild) fds() (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	return len(ents), err
}

// boundedLog keeps the first 1 MiB of the proxy's output, for an error.
type boundedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *boundedLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < 1<<20 {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *boundedLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ io.Writer = (*boundedLog)(nil)
