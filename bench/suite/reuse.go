package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/loadgen/targets"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv"
)

// The session-reuse side: a second proxy child, the same binary with the
// same -proxy-flags plus --session-reuse, so that one run gives the
// issue's table with direct, proxy, proxy with reuse and PgBouncer side
// by side. It listens before PostgreSQL itself (reusePGPort, like pgPort)
// and before the emulated IAM front (reuseFrontPort, like frontPort), and
// before the emulated MySQL front (reuseMyPort, like myPort).

// startReuse starts the reuse child when the parts that compare sides run
// and the main proxy does not reuse sessions already; nil otherwise.
func (w *world) startReuse(ctx context.Context, bin, dir string) error {
	if !w.o.reuse || slices.Contains(w.o.proxyFlags, "--session-reuse") || !(w.o.only["tps"] || w.o.only["latency"] || w.o.only["connect"] || w.o.only["mysql"]) {
		return nil
	}
	rdir := filepath.Join(dir, "reuse")
	if err := os.Mkdir(rdir, 0o700); err != nil {
		return err
	}
	ports, err := localsrv.FreePorts(4)
	if err != nil {
		return err
	}
	w.reusePGPort, w.reuseFrontPort, w.reuseMyPort = ports[1], ports[2], ports[3]
	// The main child's upstreams.
	yaml := fmt.Sprintf("ca_bundle: %s\nupstreams:\n  - name: storm-pg\n    engine: postgres\n    endpoint: %s\n    dial_address: %s\n    listen: %s\n",
		w.set.CAFile, w.set.PGEndpoint(), w.set.PGFront.Addr(), w.listen(w.reuseFrontPort)) +
		fmt.Sprintf("  - name: bench-pg\n    engine: postgres\n    endpoint: %s:%d\n    dial_address: %s\n    tls_server_name: localhost\n    listen: %s\n",
			benchEndpoint, w.set.PG.Port, w.set.PG.Addr(), w.listen(w.reusePGPort))
	if w.set.MyFront != nil {
		yaml += fmt.Sprintf("  - name: storm-mysql\n    engine: mysql\n    endpoint: %s\n    dial_address: %s\n    listen: %s\n",
			w.set.MyEndpoint(), w.set.MyFront.Addr(), w.listen(w.reuseMyPort))
	}
	flags := append(slices.Clone(w.o.proxyFlags), "--session-reuse")
	w.reuseProxy, err = startProxyChild(ctx, bin, rdir, yaml, "127.0.0.1:"+strconv.Itoa(ports[0]), flags, w.o.gomaxprocs)
	return err
}

// reuseSide is the reuse child as a side of a comparison, if it runs.
func (w *world) reuseSide() []side {
	if w.reuseProxy == nil {
		return nil
	}
	return []side{{"reuse", plainConninfo(w.reusePGPort), false}}
}

// connectIAM is the connection rate as RDS has it: every login's token
// verified by the server (the emulated RDS front, before the same
// PostgreSQL). Direct, pgbench signs one token and sends it as the
// password over verify-full TLS to the front (RDS takes a token for its 15
// minutes, so one serves every connection); through the proxy, the proxy
// signs one per connection and logs in through the same front; with
// reuse, a parked session skips the login. PgBouncer cannot sign tokens:
// no column. This is the connection-rate row; the other one
// (PostgreSQL trusting the login) is the proxy's own cost.
func (w *world) connectIAM(ctx context.Context) error {
	front := w.set.PGFront
	if front == nil {
		return nil
	}
	tokens, err := authtoken.New(ctx, authtoken.Options{})
	if err != nil {
		return err
	}
	tok, err := tokens.Token(ctx, front.Endpoint(), front.Port(), w.aws.AWS.Region(), targets.IAMUser)
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(front.Addr())
	if err != nil {
		return err
	}
	direct := fmt.Sprintf("host=%s hostaddr=%s port=%s sslmode=verify-full sslrootcert=%s gssencmode=disable user=%s dbname=%s password='%s'",
		front.Endpoint(), host, port, w.set.CAFile, targets.IAMUser, targets.Database, tok)
	ss := []side{{"direct", direct, false}, {"proxy", plainConninfo(w.frontPort), false}}
	if w.reuseProxy != nil {
		ss = append(ss, side{"reuse", plainConninfo(w.reuseFrontPort), false})
	}
	order := append(slices.Clone(ss), ss...)
	slices.Reverse(order[len(ss):])
	sum := map[string]pgbenchResult{}
	cpu := map[string]time.Duration{}
	children := map[string]*proxyChild{"proxy": w.proxy, "reuse": w.reuseProxy}
	for _, s := range order {
		child := children[s.name]
		var before time.Duration
		if child != nil {
			if before, err = child.cpu(); err != nil {
				return err
			}
		}
		r, err := pgbench(ctx, w.set.PG, []string{"-S", "-C", "-c", strconv.Itoa(w.o.clients), "-j", "2"}, w.o.connectDuration, s.conninfo)
		if err != nil {
			return fmt.Errorf("through the IAM front, %s: %w", s.name, err)
		}
		if child != nil {
			after, err := child.cpu()
			if err != nil {
				return err
			}
			cpu[s.name] += after - before
		}
		t := sum[s.name]
		t.tps += r.tps / 2
		t.txns += r.txns
		sum[s.name] = t
	}
	w.table.compare(fmt.Sprintf("PG new connection per txn, %d clients, IAM-verified logins (tps)", w.o.clients), sum,
		func(p pgbenchResult) float64 { return p.tps }, "%.0f", true, ">= 1.5x direct (reuse off), >= 25x (on)")
	perConn := func(side string) string {
		if n := sum[side].txns; n > 0 {
			return fmt.Sprintf("%.0f", float64(cpu[side].Microseconds())/float64(n))
		}
		return "-"
	}
	row := []string{"proxy CPU per new connection, IAM-verified logins (µs)", "-", perConn("proxy"), "-", "-", "-", ""}
	if w.reuseProxy != nil {
		row = append(row, perConn("reuse"), "-")
	}
	w.table.rows = append(w.table.rows, row)
	return nil
}
