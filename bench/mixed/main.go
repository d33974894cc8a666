// Command mixed runs the mixed workload of internal/loadtest/mixload for as long as
// asked, through the real rds-iam-proxy binary, for both engines at once,
// and prints a table of what it checked and a PASS or FAIL line. It starts
// its own throwaway PostgreSQL and MariaDB, the emulated AWS and RDS IAM
// fronts before them (as the demo does), and the binary with a YAML config
// serving both, with its admin port for /metrics.
//
//	go run ./bench/mixed -duration 10m [-engine all|postgres|mysql]
//
// The exit status is 0 on PASS, 1 on FAIL, 2 when the setup failed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/mixload"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/iamstack"
)

// The IAM user and its grants, as on RDS (rds_iam exists there; here it is
// created). The workload creates and drops its own tables.
const (
	user = "app_user"
	db   = "appdb"
)

const setupSQL = `
CREATE ROLE rds_iam;
CREATE ROLE app_user WITH LOGIN;
GRANT rds_iam TO app_user;
`

const appSQL = `GRANT CREATE, USAGE ON SCHEMA public TO app_user;`

func main() {
	o := mixload.Options{}
	flag.DurationVar(&o.Duration, "duration", 2*time.Minute, "how long sessions keep starting work")
	engine := flag.String("engine", "all", "postgres, mysql, or all (both at once, through one proxy process)")
	flag.IntVar(&o.LongSessions, "long", 6, "long sessions per engine")
	flag.IntVar(&o.ShortWorkers, "short", 4, "workers opening short sessions one after another, per engine")
	flag.IntVar(&o.Listeners, "listeners", 3, "Postgres LISTEN sessions")
	flag.IntVar(&o.CopyRows, "copy-rows", 20000, "rows per COPY batch (Postgres) or bulk load (MySQL), about 140 bytes each")
	flag.IntVar(&o.InsertRows, "insert-rows", 1000, "rows per multi-row INSERT (MySQL)")
	flag.IntVar(&o.LargeValue, "large", 4<<20, "bytes of the large values sent up and generated down")
	flag.IntVar(&o.ManyRows, "many-rows", 50000, "rows of the many-row results")
	flag.IntVar(&o.KeepRows, "keep-rows", 60000, "rows a long session keeps before deleting its oldest batches")
	flag.DurationVar(&o.OpTimeout, "op-timeout", 60*time.Second, "an operation taking longer is reported hung")
	binary := flag.String("binary", "", "the rds-iam-proxy binary (default: go build ./cmd/rds-iam-proxy)")
	verbose := flag.Bool("v", false, "log the workload's progress and the proxy's log to stderr")
	flag.Parse()
	pg, my := *engine == "postgres" || *engine == "all", *engine == "mysql" || *engine == "all"
	if !pg && !my {
		fmt.Fprintf(os.Stderr, "bench/mixed: -engine %q: use postgres, mysql or all\n", *engine)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, o, pg, my, *binary, *verbose)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/mixed:", err)
	}
	os.Exit(code)
}

func run(ctx context.Context, o mixload.Options, pg, my bool, binary string, verbose bool) (int, error) {
	logOut := io.Discard
	if verbose {
		logOut = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logOut, nil))
	o.Logger = log.With("component", "mixload")

	fmt.Println("starting PostgreSQL, MariaDB, emulated AWS and the RDS IAM fronts...")
	so := iamstack.Options{Role: "bench-app", AllowUsers: []string{user}, Logger: log.With("component", "emulator")}
	if pg {
		so.SetupSQL, so.AppDB, so.AppSQL = []string{setupSQL}, db, appSQL
	} else {
		so.NoPostgres = true
	}
	if my {
		so.MySQL = &iamstack.MySQLOptions{AppDB: db, IAMUsers: []string{user},
			Grants: []string{"GRANT ALL ON appdb.* TO 'app_user'@'%'"}}
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	stack, err := iamstack.Start(sctx, so)
	cancel()
	if err != nil {
		return 2, err
	}
	defer stack.Close()
	stack.UseInProcess() // the binary inherits an AWS chain that reaches only the emulator

	if binary == "" {
		if binary, err = build(ctx, stack.Dir); err != nil {
			return 2, err
		}
	}
	pgPort, myPort, admin := freePort(), freePort(), "127.0.0.1:"+freePort()
	cfg := fmt.Sprintf("ca_bundle: %s\nupstreams:\n", stack.CAFile)
	if pg {
		cfg += fmt.Sprintf("  - name: pg\n    engine: postgres\n    endpoint: %s\n    dial_address: %s\n    listen: 127.0.0.1:%s\n",
			stack.Endpoint(), stack.Front.Addr(), pgPort)
	}
	if my {
		cfg += fmt.Sprintf("  - name: my\n    engine: mysql\n    endpoint: %s\n    dial_address: %s\n    listen: 127.0.0.1:%s\n",
			stack.MySQLEndpoint(), stack.MyFront.Addr(), myPort)
	}
	proxy, err := startProxy(ctx, binary, stack.Dir, cfg, admin, verbose)
	if err != nil {
		return 2, err
	}
	defer proxy.stop()
	fmt.Printf("proxy %s serving", binary)
	if pg {
		fmt.Printf(" postgres on 127.0.0.1:%s", pgPort)
	}
	if my {
		fmt.Printf(" mysql on 127.0.0.1:%s", myPort)
	}
	fmt.Printf("; admin %s; proxy log %s\n", admin, proxy.logPath)

	// Set up every engine first, then take the proxy's baseline with no
	// session open, then run the engines at once.
	type engineRun struct {
		upstream string
		run      func(context.Context) *mixload.Report
		cleanup  func(context.Context) error
		rep      *mixload.Report
	}
	var runs []*engineRun
	if pg {
		o := o
		o.CLI = stack.PG.BinPath("psql")
		p, err := mixload.NewPostgres(ctx, fmt.Sprintf("host=127.0.0.1 port=%s user=%s dbname=%s sslmode=disable connect_timeout=20", pgPort, user, db), o)
		if err != nil {
			return 2, err
		}
		runs = append(runs, &engineRun{upstream: "pg", run: p.Run, cleanup: p.Cleanup})
	}
	if my {
		o := o
		o.CLI = stack.My.BinPath("mariadb")
		c := mysql.NewConfig()
		c.User, c.Net, c.Addr, c.DBName = user, "tcp", "127.0.0.1:"+myPort, db
		m, err := mixload.NewMySQL(ctx, c, o)
		if err != nil {
			return 2, err
		}
		runs = append(runs, &engineRun{upstream: "my", run: m.Run, cleanup: m.Cleanup})
	}
	before, err := mixload.WaitIdle(ctx, admin, 30*time.Second)
	if err != nil {
		return 2, err
	}
	fmt.Printf("running for %s (Ctrl-C ends the run early and still checks it)...\n\n", o.Duration)
	var wg sync.WaitGroup
	for _, e := range runs {
		wg.Go(func() { e.rep = e.run(ctx) })
	}
	wg.Wait()

	after, settled := mixload.Settle(context.Background(), admin, before, 30*time.Second)
	process := &mixload.Report{Title: "rds-iam-proxy process after the run"}
	process.Add(settled...)
	process.Add(proxy.exitCheck())
	passed := process.Passed()
	for _, e := range runs {
		if after != nil {
			e.rep.Add(mixload.ConnectionChecks(before, after, e.upstream, e.rep)...)
		}
		e.rep.WriteTable(os.Stdout)
		fmt.Println()
		passed = passed && e.rep.Passed()
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := e.cleanup(cctx); err != nil {
			fmt.Fprintln(os.Stderr, "bench/mixed:", err)
		}
		cancel()
	}
	process.WriteTable(os.Stdout)
	fmt.Println()
	if !passed {
		fmt.Printf("FAIL (proxy log: %s)\n", proxy.logPath)
		proxy.keepLog = true
		return 1, nil
	}
	fmt.Println("PASS")
	return 0, nil
}

// build compiles the binary from the module this command belongs to.
func build(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("find the module to build rds-iam-proxy (run from the repository, or pass -binary): %v", err)
	}
	bin := filepath.Join(dir, "rds-iam-proxy")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/rds-iam-proxy")
	cmd.Dir = filepath.Dir(mod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// proxyProcess is the running binary.
type proxyProcess struct {
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	exited  chan struct{}
	keepLog bool
}

func startProxy(ctx context.Context, binary, dir, config, admin string, verbose bool) (*proxyProcess, error) {
	cfgPath := filepath.Join(dir, "rds-iam-proxy.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.CreateTemp("", "mixed-proxy-*.log")
	if err != nil {
		return nil, err
	}
	p := &proxyProcess{logPath: logFile.Name(), logFile: logFile, exited: make(chan struct{})}
	p.cmd = exec.Command(binary, "--config", cfgPath, "--admin-address", admin)
	p.cmd.Stderr = logFile
	if verbose {
		p.cmd.Stderr = io.MultiWriter(logFile, os.Stderr)
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("the proxy exited at start (%s); log: %s", p.cmd.ProcessState, p.logPath)
		default:
		}
		if resp, err := http.Get("http://" + admin + "/startup"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, errors.New("the proxy did not report /startup within 30s; log: " + p.logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// exitCheck says whether the proxy is still running after the run.
func (p *proxyProcess) exitCheck() mixload.Check {
	select {
	case <-p.exited:
		return mixload.Check{Name: "proxy still running", Got: p.cmd.ProcessState.String(), Want: "running", OK: false}
	default:
		return mixload.Check{Name: "proxy still running", Got: "running", Want: "running", OK: true}
	}
}

// stop sends SIGTERM and waits for the exit (SIGKILL after 30s).
func (p *proxyProcess) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
	p.logFile.Close()
	if !p.keepLog {
		os.Remove(p.logPath)
	}
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
