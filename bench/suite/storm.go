package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/loadgen"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/loadgen/targets"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv"
)

// storm runs the storm directly (a password user: SCRAM, over TLS),
// directly with IAM-verified logins through the emulated front (as RDS has
// them: a token over verify-full TLS, checked by the front the proxy's
// logins go through too), through the proxy (its logins through the
// emulated front), and, unless -proxy-flags sets the login rate itself,
// through a third proxy child with the login-rate guard off. The guard's
// default (150 logins a second, under RDS's ~200) serves 1,000 logins in
// about 6.5 s whatever the machine, while direct logins here are not
// throttled at all (on RDS they would be): the guard-off rows show what
// the proxy's own work costs a storm, the default rows what a user gets.
func (w *world) storm(ctx context.Context) error {
	s := loadgen.Storm{Kind: loadgen.PGX, Clients: w.o.storm, Limit: 60 * time.Second}
	s.Target = w.set.Direct("postgres")
	direct, err := loadgen.Run(ctx, s)
	if err != nil {
		return err
	}
	results := []*loadgen.Result{direct}
	var directIAM *loadgen.Result
	if t, ok, err := w.directIAMTarget(ctx); err != nil {
		return err
	} else if ok {
		s.Target = t
		if directIAM, err = loadgen.Run(ctx, s); err != nil {
			return err
		}
		if directIAM.Count(loadgen.OK) == 0 {
			return fmt.Errorf("no direct IAM-verified login got in: %s", directIAM.Summary())
		}
		results = append(results, directIAM)
	}
	s.Target = targets.Proxy(w.frontPort)
	proxied, err := loadgen.Run(ctx, s)
	if err != nil {
		return err
	}
	results = append(results, proxied)
	var unpaced *loadgen.Result
	if !slices.ContainsFunc(w.o.proxyFlags, func(f string) bool { return strings.HasPrefix(f, "--login-rate") }) {
		port, _, stop, err := w.startStormChild(ctx, "unpaced", "--login-rate", "0")
		if err != nil {
			return err
		}
		s.Target = targets.Proxy(port)
		unpaced, err = loadgen.Run(ctx, s)
		stop()
		if err != nil {
			return err
		}
		results = append(results, unpaced)
	}
	// With session reuse (a fresh child, the default guard): a client
	// waiting for its login's turn takes a session another client left
	// meanwhile, so the storm is served by the sessions its first logins
	// made.
	var reused *loadgen.Result
	if w.o.reuse && !slices.Contains(w.o.proxyFlags, "--session-reuse") {
		port, myPort, stop, err := w.startStormChild(ctx, "storm-reuse", "--session-reuse")
		if err != nil {
			return err
		}
		s.Target = targets.Proxy(port)
		reused, err = loadgen.Run(ctx, s)
		if err == nil && myPort != 0 {
			err = w.mysqlStorm(ctx, myPort)
		}
		stop()
		if err != nil {
			return err
		}
		results = append(results, reused)
	}
	for _, r := range results {
		fmt.Print(r.Summary())
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	name := fmt.Sprintf("storm of %d pgx connects", w.o.storm)
	w.table.pair(name+", p50 to first answer (ms)", ms(direct.ConnectPercentile(50)), ms(proxied.ConnectPercentile(50)), "%.0f", false, "<= 1.0x direct")
	w.table.pair(name+", p99 to first answer (ms)", ms(direct.ConnectPercentile(99)), ms(proxied.ConnectPercentile(99)), "%.0f", false, "")
	if directIAM != nil {
		// As RDS has it: direct logins with a token, verified by the same
		// front the proxy's logins go through.
		w.table.pair(name+", direct with IAM-verified logins through the proxy's front, p50 to first answer (ms)", ms(directIAM.ConnectPercentile(50)), ms(proxied.ConnectPercentile(50)), "%.0f", false, "<= 1.0x direct")
		w.table.pair(name+", direct with IAM-verified logins through the proxy's front, p99 to first answer (ms)", ms(directIAM.ConnectPercentile(99)), ms(proxied.ConnectPercentile(99)), "%.0f", false, "")
		if unpaced != nil {
			w.table.pair(name+", same, login-rate guard off, p50 to first answer (ms)", ms(directIAM.ConnectPercentile(50)), ms(unpaced.ConnectPercentile(50)), "%.0f", false, "<= 1.0x direct")
		}
	}
	if unpaced != nil {
		w.table.pair(name+", login-rate guard off (--login-rate 0), p50 to first answer (ms)", ms(direct.ConnectPercentile(50)), ms(unpaced.ConnectPercentile(50)), "%.0f", false, "<= 1.0x direct")
		w.table.pair(name+", login-rate guard off (--login-rate 0), p99 to first answer (ms)", ms(direct.ConnectPercentile(99)), ms(unpaced.ConnectPercentile(99)), "%.0f", false, "")
	}
	if reused != nil {
		w.table.pair(name+", session reuse (--session-reuse, default guard), p50 to first answer (ms)", ms(direct.ConnectPercentile(50)), ms(reused.ConnectPercentile(50)), "%.0f", false, "<= 1.0x direct")
		w.table.pair(name+", session reuse (--session-reuse, default guard), p99 to first answer (ms)", ms(direct.ConnectPercentile(99)), ms(reused.ConnectPercentile(99)), "%.0f", false, "")
		if directIAM != nil {
			w.table.pair(name+", session reuse, vs direct with IAM-verified logins, p50 to first answer (ms)", ms(directIAM.ConnectPercentile(50)), ms(reused.ConnectPercentile(50)), "%.0f", false, "<= 1.0x direct")
		}
		w.table.pair(name+", session reuse, logged in and answered", float64(direct.Count(loadgen.OK)), float64(reused.Count(loadgen.OK)), "%.0f", true, "")
	}
	bad := float64(proxied.Bad())
	for _, r := range []*loadgen.Result{unpaced, reused} {
		if r != nil {
			bad += float64(r.Bad())
		}
	}
	w.table.pair(name+", logged in and answered", float64(direct.Count(loadgen.OK)), float64(proxied.Count(loadgen.OK)), "%.0f", true, "")
	w.table.pair(name+", refused with a reason", float64(direct.Count(loadgen.Failed)-direct.Unexplained()), float64(proxied.Count(loadgen.Failed)-proxied.Unexplained()), "%.0f", false, "")
	w.table.pair(name+", hung + wrong + unexplained (every proxy run)", float64(direct.Bad()), bad, "%.0f", false, "0")
	return nil
}

// startStormChild starts a proxy child with the main one's flags and
// extra, listening before the emulated fronts as the main child's storm
// listeners do (myPort 0: no MySQL front), in a directory of its own
// (name); stop ends it. Each is fresh: no session of an earlier part is
// parked in it.
func (w *world) startStormChild(ctx context.Context, name string, extra ...string) (pgPort, myPort int, stop func(), err error) {
	dir := filepath.Join(w.dir, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return 0, 0, nil, err
	}
	ports, err := localsrv.FreePorts(3)
	if err != nil {
		return 0, 0, nil, err
	}
	yaml := fmt.Sprintf("ca_bundle: %s\nupstreams:\n  - name: storm-pg\n    engine: postgres\n    endpoint: %s\n    dial_address: %s\n    listen: %s\n",
		w.set.CAFile, w.set.PGEndpoint(), w.set.PGFront.Addr(), w.listen(ports[1]))
	if w.set.MyFront != nil {
		yaml += fmt.Sprintf("  - name: storm-mysql\n    engine: mysql\n    endpoint: %s\n    dial_address: %s\n    listen: %s\n",
			w.set.MyEndpoint(), w.set.MyFront.Addr(), w.listen(ports[2]))
		myPort = ports[2]
	}
	flags := append(slices.Clone(w.o.proxyFlags), extra...)
	child, err := startProxyChild(ctx, w.bin, dir, yaml, "127.0.0.1:"+strconv.Itoa(ports[0]), flags, w.o.gomaxprocs)
	if err != nil {
		return 0, 0, nil, err
	}
	return ports[1], myPort, child.stop, nil
}

// directIAMTarget is the storm's direct side as RDS has it: pgx logging in
// with a token (one, signed here: RDS takes it for 15 minutes) over
// verify-full TLS to the emulated front the proxy's storm logins go
// through, so both sides pay its hop and its token check. ok is false
// without a front.
func (w *world) directIAMTarget(ctx context.Context) (loadgen.Target, bool, error) {
	front := w.set.PGFront
	if front == nil {
		return loadgen.Target{}, false, nil
	}
	tokens, err := authtoken.New(ctx, authtoken.Options{})
	if err != nil {
		return loadgen.Target{}, false, err
	}
	tok, err := tokens.Token(ctx, front.Endpoint(), front.Port(), w.aws.AWS.Region(), targets.IAMUser)
	if err != nil {
		return loadgen.Target{}, false, err
	}
	host, port, err := net.SplitHostPort(front.Addr()) // where it listens; front.Port() is the port signed for
	if err != nil {
		return loadgen.Target{}, false, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return loadgen.Target{}, false, err
	}
	return loadgen.Target{Name: "direct-iam", Host: front.Endpoint(), HostAddr: host, Port: p, User: targets.IAMUser,
		Password: tok, Database: targets.Database, CAFile: w.set.CAFile}, true, nil
}

// mysqlStorm is the storm with go-sql-driver clients (connect, one text
// query, COM_QUIT): direct to MariaDB as its password user (over TLS),
// through the main proxy (the default guard: every login a token, through
// the emulated front), and through the reuse child at reusePort, after
// one client (a MySQL client that finds no session parked waits for one
// before its greeting only for the key of the proxy's last client).
func (w *world) mysqlStorm(ctx context.Context, reusePort int) error {
	s := loadgen.Storm{Kind: loadgen.GoMySQL, Clients: w.o.storm, Limit: 60 * time.Second}
	s.Target = w.set.Direct("mysql")
	direct, err := loadgen.Run(ctx, s)
	if err != nil {
		return err
	}
	s.Target = targets.Proxy(w.myPort)
	proxied, err := loadgen.Run(ctx, s)
	if err != nil {
		return err
	}
	first := loadgen.Storm{Kind: loadgen.GoMySQL, Clients: 1, Limit: 60 * time.Second, Target: targets.Proxy(reusePort), Base: 10}
	if r, err := loadgen.Run(ctx, first); err != nil || r.Count(loadgen.OK) != 1 {
		return fmt.Errorf("the MySQL reuse child's first client: %v %v", err, r)
	}
	time.Sleep(time.Second) // the guard's burst back, as after any quiet second
	s.Target = targets.Proxy(reusePort)
	reused, err := loadgen.Run(ctx, s)
	if err != nil {
		return err
	}
	for _, r := range []*loadgen.Result{direct, proxied, reused} {
		fmt.Print(r.Summary())
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	name := fmt.Sprintf("MySQL storm of %d go-sql-driver connects", w.o.storm)
	w.table.pair(name+", p50 to the login's end (ms)", ms(direct.ConnectPercentile(50)), ms(proxied.ConnectPercentile(50)), "%.0f", false, "")
	w.table.pair(name+", p99 (ms)", ms(direct.ConnectPercentile(99)), ms(proxied.ConnectPercentile(99)), "%.0f", false, "")
	w.table.pair(name+", session reuse, p50 (ms)", ms(direct.ConnectPercentile(50)), ms(reused.ConnectPercentile(50)), "%.0f", false, "")
	w.table.pair(name+", session reuse, p99 (ms)", ms(direct.ConnectPercentile(99)), ms(reused.ConnectPercentile(99)), "%.0f", false, "")
	w.table.pair(name+", logged in and answered (proxy; reuse below)", float64(direct.Count(loadgen.OK)), float64(proxied.Count(loadgen.OK)), "%.0f", true, "")
	w.table.pair(name+", session reuse, logged in and answered", float64(direct.Count(loadgen.OK)), float64(reused.Count(loadgen.OK)), "%.0f", true, "")
	w.table.pair(name+", hung + wrong + unexplained (both proxy runs)", float64(direct.Bad()), float64(proxied.Bad()+reused.Bad()), "%.0f", false, "0")
	return nil
}
