// Command storm runs connection storms through the rds-iam-proxy binary
// and directly against the same servers, in the same run, for every client
// kind, idle and with a CPU hog, and prints a table: counts (ok, errors,
// hung, wrong answers) and p50/p99 connect times, proxy vs direct.
//
//	go run ./bench/storm [-clients 1000] [-rounds 3] [-hog 2] [-kinds pgx,psycopg2,mysqldb,go-mysql] [-race]
//
// It starts its own PostgreSQL and MariaDB (with TLS, room for the storm,
// a password user for the direct side), emulated AWS (STS, IMDSv2 with an
// instance profile) with RDS IAM fronts before the servers, and the
// proxy binary (built from this module, with -race if asked) with a YAML
// config serving both engines, as the integration tests do. It exits 1 if
// any session hung, got a wrong answer or met an error the proxy does not
// explain, and if the proxy's goroutines or open files did not return to
// their baseline.
//
// Direct clients log in as a password user over verified TLS; proxy
// clients log in to the proxy on loopback, which signs a token and logs
// in over TLS through the emulated front (one more hop, in this process,
// that the direct side does not have). Figures from a shared machine are
// noisy: compare the ratio within one run, not numbers across runs.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/loadgen"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/loadgen/targets"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv"
)

func main() {
	var o options
	flag.IntVar(&o.clients, "clients", 1000, "clients started at once in each round")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per storm")
	flag.IntVar(&o.hog, "hog", runtime.NumCPU(), "busy processes for the loaded storms (0: idle storms only)")
	flag.StringVar(&o.kinds, "kinds", "pgx,psycopg2,mysqldb,go-mysql", "client kinds, comma-separated")
	flag.DurationVar(&o.limit, "limit", 60*time.Second, "per-client limit; a client past it is hung")
	flag.BoolVar(&o.race, "race", false, "build the proxy with the race detector (a race fails the run)")
	flag.StringVar(&o.binary, "binary", "", "use this proxy binary instead of building one")
	flag.BoolVar(&o.verbose, "v", false, "print the end of the proxy's log when the run fails")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

type options struct {
	clients, rounds, hog int
	kinds                string
	limit                time.Duration
	race, verbose        bool
	binary               string
}

func run(ctx context.Context, o options) (bool, error) {
	var kinds []loadgen.Kind
	for _, k := range strings.Split(o.kinds, ",") {
		if k = strings.TrimSpace(k); k != "" {
			kinds = append(kinds, loadgen.Kind(k))
		}
	}
	pg, my := false, false
	for _, k := range kinds {
		if k.Engine() == "mysql" {
			my = true
		} else {
			pg = true
		}
	}
	dir, err := os.MkdirTemp("", "rds-iam-proxy-storm-bench-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)

	fmt.Println("starting PostgreSQL, MariaDB, emulated AWS and the proxy...")
	aws, err := emulator.StartServer(emulator.Options{}, "")
	if err != nil {
		return false, err
	}
	defer aws.Close()
	set, err := targets.Start(ctx, targets.Options{AWS: aws, Clients: o.clients, NoPostgres: !pg, NoMySQL: !my})
	if err != nil {
		return false, err
	}
	defer set.Close()
	aws.AWS.AddRole("storm-app", set.ConnectPolicy())
	if err := aws.AWS.SetInstanceProfile("storm-app"); err != nil {
		return false, err
	}
	// The proxy finds credentials as on EC2: the default chain, IMDSv2.
	aws.IsolateProcessEnv(dir)

	bin := o.binary
	if bin == "" {
		if bin, err = build(ctx, dir, o.race); err != nil {
			return false, err
		}
	}
	p, err := startProxy(ctx, bin, dir, set)
	if err != nil {
		return false, err
	}
	defer p.stop()
	// One login per engine first, so the baseline holds what lives as long
	// as the proxy (credential refreshers), not only what the first login
	// starts.
	for _, k := range kinds {
		port := p.pgPort
		if k.Engine() == "mysql" {
			port = p.myPort
		}
		if _, err := loadgen.Run(ctx, loadgen.Storm{Kind: k, Target: targets.Proxy(port), Clients: 1}); err != nil {
			return false, err
		}
	}
	baseG, baseF := p.metric("go_goroutines"), p.metric("process_open_fds")
	fmt.Printf("proxy %s: goroutines %v, open fds %v before the storms\n\n", bin, baseG, baseF)

	loads := []int{0}
	if o.hog > 0 {
		loads = append(loads, o.hog)
	}
	var rows []loadgen.Row
	good := true
	for _, k := range kinds {
		proxyPort, engine := p.pgPort, "postgres"
		if k.Engine() == "mysql" {
			proxyPort, engine = p.myPort, "mysql"
		}
		for _, hog := range loads {
			row := loadgen.Row{Kind: k, Load: "idle"}
			var h *loadgen.Hog
			if hog > 0 {
				row.Load = fmt.Sprintf("hog %d", hog)
				if h, err = loadgen.StartHog(hog); err != nil {
					return false, err
				}
			}
			storm := loadgen.Storm{Kind: k, Clients: o.clients, Rounds: o.rounds, Limit: o.limit}
			storm.Target = set.Direct(engine)
			row.Direct, err = loadgen.Run(ctx, storm)
			if err == nil {
				storm.Target = targets.Proxy(proxyPort)
				row.Proxy, err = loadgen.Run(ctx, storm)
			}
			h.Stop()
			if err != nil {
				return false, err
			}
			for _, r := range []*loadgen.Result{row.Direct, row.Proxy} {
				fmt.Print(r.Summary())
				if r.Bad() > 0 {
					good = false
				}
			}
			rows = append(rows, row)
		}
	}
	fmt.Println()
	loadgen.WriteTable(os.Stdout, rows)

	// Every session is closed: the proxy's goroutines and files return to
	// their baseline (slack for the runtime's and the HTTP server's own;
	// a leak per session would be thousands).
	const goroutineSlack, fdSlack = 8, 4
	deadline := time.Now().Add(30 * time.Second)
	g, f := p.metric("go_goroutines"), p.metric("process_open_fds")
	for (g > baseG+goroutineSlack || f > baseF+fdSlack) && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		g, f = p.metric("go_goroutines"), p.metric("process_open_fds")
	}
	fmt.Printf("\nproxy after the storms: goroutines %v (before %v), open fds %v (before %v)\n", g, baseG, f, baseF)
	if g > baseG+goroutineSlack || f > baseF+fdSlack {
		fmt.Println("FAIL: the proxy did not return to its baseline")
		good = false
	}
	// The proxy's own CPU per proxied session, over the whole run: what a
	// login through it costs, apart from the emulated front and the
	// clients that share this process.
	sessions := 0
	for _, r := range rows {
		sessions += len(r.Proxy.Clients)
	}
	p.stop()
	if st := p.cmd.ProcessState; st != nil && sessions > 0 {
		cpu := st.UserTime() + st.SystemTime()
		fmt.Printf("proxy CPU: %s over %d sessions, %.2f ms per session (connect, TLS and login upstream, one query, close)\n",
			cpu.Round(time.Millisecond), sessions, float64(cpu)/float64(sessions)/float64(time.Millisecond))
	}
	if p.logs.sawRace() {
		fmt.Println("FAIL: the race detector reported a race in the proxy:")
		fmt.Println(raceReports(p.logs.String()))
		good = false
	}
	if !good && o.verbose {
		fmt.Println("proxy log (end):")
		fmt.Println(tail(p.logs.String(), 20000))
	}
	if good {
		fmt.Println("PASS: 0 hung, 0 wrong answers, 0 unexplained errors")
	}
	return good, nil
}

// build compiles the proxy from this module into dir.
func build(ctx context.Context, dir string, race bool) (string, error) {
	bin := filepath.Join(dir, "rds-iam-proxy")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "github.com/rds-iam-proxy/rds-iam-proxy/cmd/rds-iam-proxy")
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// proxyProc is the running binary.
type proxyProc struct {
	cmd            *exec.Cmd
	admin          string
	pgPort, myPort int
	logs           *lockedBuffer
	exited         chan struct{}
}

func startProxy(ctx context.Context, bin, dir string, set *targets.Set) (*proxyProc, error) {
	ports, err := localsrv.FreePorts(3)
	if err != nil {
		return nil, err
	}
	p := &proxyProc{admin: fmt.Sprintf("127.0.0.1:%d", ports[0]), pgPort: ports[1], myPort: ports[2],
		logs: &lockedBuffer{}, exited: make(chan struct{})}
	cfg := filepath.Join(dir, "rds-iam-proxy.yaml")
	yaml := set.ProxyConfig(fmt.Sprintf("127.0.0.1:%d", p.pgPort), fmt.Sprintf("127.0.0.1:%d", p.myPort))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, "--config", cfg, "--admin-address", p.admin)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := p.get("/startup"); code == http.StatusOK {
			return p, nil
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("the proxy exited:\n%s", p.logs)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("the proxy did not start within 30s:\n%s", p.logs)
		}
	}
}

// stop ends the proxy and waits for it; a second call returns at once.
func (p *proxyProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// adminClient does not keep connections alive: polling /metrics must not
// itself hold goroutines and files open in the proxy.
var adminClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func (p *proxyProc) get(path string) (int, string) {
	resp, err := adminClient.Get("http://" + p.admin + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b)
}

// metric is one unlabelled sample from /metrics; -1 when absent.
func (p *proxyProc) metric(name string) float64 {
	_, body := p.get("/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// raceReports is the race detector's reports from a log.
func raceReports(log string) string {
	var out []string
	for _, part := range strings.Split(log, "==================")[1:] {
		if strings.Contains(part, "DATA RACE") {
			out = append(out, strings.TrimSpace(part))
		}
	}
	return tail(strings.Join(out, "\n---\n"), 20000)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// lockedBuffer collects the proxy's output, up to a bound, and notes a
// race report wherever it comes.
type lockedBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	race bool
}

const maxLog = 64 << 20

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bytes.Contains(p, []byte("DATA RACE")) {
		b.race = true
	}
	if b.buf.Len() < maxLog {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) sawRace() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.race
}
