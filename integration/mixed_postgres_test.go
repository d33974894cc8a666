package integration

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/mixload"
)

// mixedDuration is how long each engine's mixed run keeps starting work in
// CI. With setup, the drain of the last operations and the checks, each
// engine's test stays under a minute on 2 shared vCPUs.
const mixedDuration = 25 * time.Second

// mixedOptions are the CI sizes: every kind of work, smaller than the
// bench's, so that the race-instrumented client keeps up.
func mixedOptions() mixload.Options {
	return mixload.Options{
		Duration: mixedDuration, LongSessions: 4, ShortWorkers: 3, Listeners: 2,
		CopyRows: 4000, InsertRows: 400, LargeValue: 2 << 20, ManyRows: 10000, KeepRows: 20000,
		OpTimeout: 45 * time.Second,
	}
}

// TestMixedPostgres runs the mixed workload through the real binary against
// the world's Postgres front: long and short sessions (pgx, pgconn, psql),
// prepared statements, commits and rollbacks, COPY both ways, large values,
// many-row results, LISTEN/NOTIFY across sessions and cancels of pg_sleep,
// all at once. No row may be lost or duplicated, no answer may reach the
// wrong session, and the proxy must count exactly the connections made and
// come back to its goroutine and fd baseline.
func TestMixedPostgres(t *testing.T) {
	w.enter(t)
	port := freePort(t)
	s := startSidecar(t, upstreamsYAML("", pgUpstream("pg", "127.0.0.1:"+port)))
	o := mixedOptions()
	o.CLI = w.pg.BinPath("psql")
	o.Logger = newLogger(t, "mixload")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	run, err := mixload.NewPostgres(ctx, dsn(port, iamUser), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := run.Cleanup(ctx); err != nil {
			t.Error(err)
		}
	})
	mixedCheck(t, ctx, s, "pg", func() *mixload.Report { return run.Run(ctx) })
}

// mixedCheck takes the proxy's baseline, runs the workload, and fails the
// test on any check of the run or of the proxy's metrics.
func mixedCheck(t *testing.T, ctx context.Context, s *sidecar, upstream string, run func() *mixload.Report) {
	t.Helper()
	before, err := mixload.WaitIdle(ctx, s.admin, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rep := run()
	after, settled := mixload.Settle(ctx, s.admin, before, 20*time.Second)
	rep.Add(settled...)
	if after != nil {
		rep.Add(mixload.ConnectionChecks(before, after, upstream, rep)...)
	}
	t.Logf("\n%s", rep)
	if !rep.Passed() {
		t.Fatalf("the mixed run failed:\n%s", rep.Failed())
	}
	if !s.running() {
		t.Fatalf("the proxy exited (%d)", s.code)
	}
}

// TestMixedCatchesCrossedReplies shows that the workload sees a reply that
// reaches the wrong session: between the clients and a proxy, a hop
// rewrites long session 0's tag into long session 1's in every reply (the
// same length, so the protocol stays intact), as a relay that mixed up two
// sessions' bytes would. The run must fail on a wrong answer, naming the
// session.
func TestMixedCatchesCrossedReplies(t *testing.T) {
	w.enter(t)
	port := startProxy(t)
	hop := mixedRewriter(t, "127.0.0.1:"+port, []byte("_l0"), []byte("_l1"))
	o := mixload.Options{Duration: 3 * time.Second, LongSessions: 2, ShortWorkers: 1, Listeners: 1,
		CopyRows: 500, LargeValue: 64 << 10, ManyRows: 500, OpTimeout: 30 * time.Second, Logger: newLogger(t, "mixload")}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, hopPort, _ := net.SplitHostPort(hop)
	run, err := mixload.NewPostgres(ctx, dsn(hopPort, iamUser), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Cleanup(context.Background()) })
	rep := run.Run(ctx)
	t.Logf("\n%s", rep)
	if rep.Passed() || !strings.Contains(rep.Failed(), "wrong answers") {
		t.Fatalf("the run did not fail on wrong answers:\n%s", rep.Failed())
	}
	if !strings.Contains(strings.Join(rep.Problems, "\n"), "_l0: first query: wrong answer") {
		t.Fatalf("no problem names long session 0's wrong answer: %q", rep.Problems)
	}
}

// mixedRewriter is a TCP hop to target that replaces from with to (of the
// same length) in what target sends back, read by read.
func mixedRewriter(t *testing.T, target string, from, to []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				io.Copy(up, c)
				up.Close()
			}()
			go func() {
				defer wg.Done()
				buf := make([]byte, 32<<10)
				for {
					n, err := up.Read(buf)
					if n > 0 {
						if _, werr := c.Write(bytes.ReplaceAll(buf[:n], from, to)); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}
