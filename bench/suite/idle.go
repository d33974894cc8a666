package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/loadgen/targets"
)

// idle holds each -idle count of connections open through the proxy and
// reports the proxy's RSS and open files per connection.
func (w *world) idle(ctx context.Context) error {
	for _, n := range w.o.idle {
		port, where := w.pgPort, "PostgreSQL"
		if n > w.o.idleReal {
			port, where = w.stubPort, "stub upstream"
		}
		rss, fds, err := w.holdIdle(ctx, port, n)
		if err != nil {
			return fmt.Errorf("%d idle connections to the %s: %w", n, where, err)
		}
		if w.o.idleQuery {
			where += ", after one query each"
		}
		w.table.single(fmt.Sprintf("idle: %d connections held (%s), memory per connection (KiB)", n, where), fmt.Sprintf("%.1f", rss/1024), "<= 16")
		w.table.single(fmt.Sprintf("idle: %d connections held (%s), fds per connection", n, where), fmt.Sprintf("%.2f", fds), "<= 2")
	}
	return nil
}

// settle is how long the proxy is left alone before each reading: the
// last logins' garbage is collected and connections closed before are
// gone.
const settle = 3 * time.Second

// holdIdle opens n logged-in connections to the proxy's port (32 at a
// time), lets them idle, and returns the change of the proxy's RSS
// (bytes) and open files, each per connection. It closes them all before
// it returns.
func (w *world) holdIdle(ctx context.Context, port, n int) (rssPer, fdsPer float64, err error) {
	// No gssencmode here: pgconn would send it as a server parameter.
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d sslmode=disable user=%s dbname=%s", port, targets.IAMUser, targets.Database))
	if err != nil {
		return 0, 0, err
	}
	// One login first: what lives as long as the proxy (credential
	// refresh, the upstream's first TLS session) is not a connection's.
	if c, err := pgconn.ConnectConfig(ctx, cfg.Copy()); err != nil {
		return 0, 0, err
	} else {
		c.Close(ctx)
	}
	time.Sleep(settle)
	rss0, err := w.proxy.rss()
	if err != nil {
		return 0, 0, err
	}
	fds0, err := w.proxy.fds()
	if err != nil {
		return 0, 0, err
	}
	conns := make([]*pgconn.PgConn, n)
	var mu sync.Mutex
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for _, c := range conns {
			if c != nil {
				c.Close(cctx)
			}
		}
	}()
	gctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var first error
	slots := make(chan struct{}, 32)
	for i := range n {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			cctx, cancel := context.WithTimeout(gctx, 60*time.Second)
			defer cancel()
			c, err := pgconn.ConnectConfig(cctx, cfg.Copy())
			if err == nil && w.o.idleQuery {
				err = c.Exec(cctx, "SELECT 1").Close()
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
					stop()
				}
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	if first != nil {
		return 0, 0, first
	}
	time.Sleep(settle)
	rss1, err := w.proxy.rss()
	if err != nil {
		return 0, 0, err
	}
	fds1, err := w.proxy.fds()
	if err != nil {
		return 0, 0, err
	}
	return float64(rss1-rss0) / float64(n), float64(fds1-fds0) / float64(n), nil
}
