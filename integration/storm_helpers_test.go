package integration

import (
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
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/loadgen"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/loadgen/targets"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"
)

// Storms run against the binary built with the race detector: a storm is
// where a data race in the proxy has its best chance to show, and the
// detector's slowdown only makes the machine look more loaded (issue 13's
// hang shows more often with it, not less). The packages are already built
// for `go test -race`, so this costs a link.
var buildStormBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "rds-iam-proxy-race-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "rds-iam-proxy")
	out, err := exec.Command("go", "build", "-race", "-o", bin, "../cmd/rds-iam-proxy").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build -race: %v\n%s", err, out)
	}
	return bin, nil
})

// stormTargets starts a PostgreSQL and a MariaDB with room for clients
// at once, behind fronts of the world's emulated AWS (the world's own
// servers allow 200 connections). The fronts keep the default resource
// ids, so the world's instance profile role may connect to them.
func stormTargets(t *testing.T, clients int) *targets.Set {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	set, err := targets.Start(ctx, targets.Options{AWS: w.aws, Clients: clients})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(set.Close)
	return set
}

// stormProxy is the race-built binary serving a target set's two
// upstreams, with an admin port.
type stormProxy struct {
	cmd            *exec.Cmd
	logs           *syncbuf.Buffer
	admin          string
	pgPort, myPort int
	exited         chan struct{}
}

// startStormProxy runs the binary with the set's configuration (plus
// extra top-level YAML lines) and env added to this process's environment
// (the world's AWS settings), and waits until it serves.
func startStormProxy(t *testing.T, set *targets.Set, env []string, extra ...string) *stormProxy {
	t.Helper()
	bin, err := buildStormBinary()
	if err != nil {
		t.Fatal(err)
	}
	pg, _ := strconv.Atoi(freePort(t))
	my, _ := strconv.Atoi(freePort(t))
	p := &stormProxy{logs: &syncbuf.Buffer{}, admin: "127.0.0.1:" + freePort(t), pgPort: pg, myPort: my, exited: make(chan struct{})}
	cfg := filepath.Join(t.TempDir(), "rds-iam-proxy.yaml")
	yaml := set.ProxyConfig(fmt.Sprintf("127.0.0.1:%d", pg), fmt.Sprintf("127.0.0.1:%d", my), extra...)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// Info, not debug: a storm's per-connection debug lines would only
	// slow the proxy and fill the capture.
	p.cmd = exec.Command(bin, "--config", cfg, "--admin-address", p.admin, "--log-level", "info")
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = io.MultiWriter(p.logs, w.logs)
	p.cmd.Stderr = io.MultiWriter(p.logs, w.logs)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		p.checkNoRace(t)
	})
	waitFor(t, 30*time.Second, func() bool {
		select {
		case <-p.exited:
			t.Fatalf("the proxy exited:\n%s", p.logs)
		default:
		}
		code, _ := p.get("/startup")
		return code == http.StatusOK
	})
	return p
}

// adminClient fetches without keep-alive, so that polling /metrics does
// not itself hold goroutines and files open in the proxy.
var adminClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func (p *stormProxy) get(path string) (int, string) {
	resp, err := adminClient.Get("http://" + p.admin + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b)
}

// metric is one sample of /metrics (the series as Prometheus prints it,
// labels included); -1 when absent.
func (p *stormProxy) metric(t *testing.T, series string) float64 {
	t.Helper()
	code, body := p.get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q", series, v)
			}
			return f
		}
	}
	return -1
}

// usage is what must return to its baseline once the clients are gone.
type usage struct{ goroutines, fds float64 }

func (u usage) String() string { return fmt.Sprintf("%v goroutines, %v open fds", u.goroutines, u.fds) }

func (p *stormProxy) usage(t *testing.T) usage {
	t.Helper()
	return usage{p.metric(t, "go_goroutines"), p.metric(t, "process_open_fds")}
}

// Slack over the baseline: the runtime's and the HTTP server's own
// goroutines come and go; a leak per session would be hundreds.
const goroutineSlack, fdSlack = 8, 4

// waitBaseline waits (20 s at most) until the proxy's goroutines and open
// files are back within slack of base, and fails the test if they do not
// get there.
func (p *stormProxy) waitBaseline(t *testing.T, base usage) usage {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		u := p.usage(t)
		if u.goroutines <= base.goroutines+goroutineSlack && u.fds <= base.fds+fdSlack {
			t.Logf("proxy back to baseline: %s (baseline %s)", u, base)
			return u
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy did not return to its baseline within 20s: %s, baseline %s", u, base)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkNoRace fails the test if the race detector reported in the proxy.
func (p *stormProxy) checkNoRace(t *testing.T) {
	if logs := p.logs.String(); strings.Contains(logs, "WARNING: DATA RACE") {
		i := strings.Index(logs, "WARNING: DATA RACE")
		t.Errorf("the race detector reported a race in the proxy:\n%s", logs[i:min(len(logs), i+8000)])
	}
}

// logLineWith is the proxy's last log line that contains text (a client's
// error may be cut: MySQL's ERR packet holds 511 bytes), or "".
func (p *stormProxy) logLineWith(text string) string {
	logs := p.logs.String()
	i := strings.LastIndex(logs, text)
	if i < 0 {
		return ""
	}
	start := strings.LastIndex(logs[:i], "\n") + 1
	end := strings.Index(logs[i:], "\n")
	if end < 0 {
		return logs[start:]
	}
	return logs[start : i+end]
}

// target is the proxy's listener for kind's engine.
func (p *stormProxy) target(k loadgen.Kind) loadgen.Target {
	if k.Engine() == "mysql" {
		return targets.Proxy(p.myPort)
	}
	return targets.Proxy(p.pgPort)
}

// runStorm runs s and logs its summary; it fails the test only if the
// storm could not run at all.
func runStorm(t *testing.T, s loadgen.Storm) *loadgen.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r, err := loadgen.Run(ctx, s)
	if err != nil {
		t.Fatalf("storm %s -> %s: %v", s.Kind, s.Target.Name, err)
	}
	t.Log(strings.TrimRight(r.Summary(), "\n"))
	return r
}

// requireClean fails the test on any hung session, wrong answer or error
// the proxy does not explain.
func requireClean(t *testing.T, r *loadgen.Result) {
	t.Helper()
	if r.Bad() > 0 {
		t.Errorf("%s -> %s: %d hung, %d wrong answers, %d unexplained errors (see the summary above)",
			r.Storm.Kind, r.Storm.Target.Name, r.Count(loadgen.Hung), r.Count(loadgen.Wrong), r.Unexplained())
	}
}

// requireAllOK fails the test on anything but success, explained errors
// included: where the proxy has everything it needs, it must refuse no
// one.
func requireAllOK(t *testing.T, what string, rs ...*loadgen.Result) {
	t.Helper()
	for _, r := range rs {
		if n := len(r.Clients) - r.Count(loadgen.OK); n > 0 {
			t.Errorf("%s: %d of %d %s clients did not succeed:\n%s", what, n, len(r.Clients), r.Storm.Kind, r.Summary())
		}
	}
}
