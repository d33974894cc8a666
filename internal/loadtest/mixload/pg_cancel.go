package mixload

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// cancelPair is two long sessions: the victim runs pg_sleep, the watcher
// sees it running in pg_stat_activity, and the victim's pgconn sends a
// CancelRequest (through the proxy, which maps the key it gave the client
// to the upstream's). The sleep must end with 57014 at once, and the
// victim must go on as the same backend. Now and then a CancelRequest with
// a key nobody holds is sent too: it must cancel nothing.
func (p *Postgres) cancelPair(a *actor) {
	r := p.r
	runPair(r, a, pair[*pgSession]{
		name: "cancel pair", failOp: "cancel", doing: "cancel a pg_sleep",
		tags:  [2]string{r.id + "_cv", r.id + "_cw"},
		round: p.cancelOnce,
		extra: func(ctx context.Context, a *actor, w *pgSession, i int) error {
			if i%3 == 2 {
				a.doing("bogus cancel request")
				if err := p.bogusCancel(ctx); err != nil {
					return err
				}
			}
			if i%4 == 3 {
				a.doing("pg_terminate_backend a third session")
				return p.terminateOnce(ctx, w, i)
			}
			return nil
		},
	}, p.connect)
}

func (p *Postgres) cancelOnce(ctx context.Context, v, w *pgSession, i int) error {
	r := p.r
	return r.interrupt(ctx, v.core(), interruption{
		stmt: "pg_sleep", where: "pg_stat_activity", done: "cancelled", by: "its CancelRequest", wrongOp: "cancel",
		sleep: func(ctx context.Context) error {
			// Both protocols: a prepared statement, and a simple Query.
			if i%2 == 0 {
				_, err := v.conn.Exec(ctx, "SELECT pg_sleep($1::float8)", float64(sleepSeconds))
				return err
			}
			_, err := v.conn.PgConn().Exec(ctx, fmt.Sprintf("SELECT pg_sleep(%d)", sleepSeconds)).ReadAll()
			return err
		},
		watcher:     w,
		sleepingSQL: "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND wait_event = 'PgSleep'",
		victimID:    int64(v.pid),
		stop: func(ctx context.Context) error {
			r.st.connects.Add(1) // a CancelRequest comes on a connection of its own
			if err := v.conn.PgConn().CancelRequest(ctx); err != nil {
				return fmt.Errorf("send CancelRequest: %w", err)
			}
			return nil
		},
		stopped: func(err error) bool {
			var pgErr *pgconn.PgError
			return errors.As(err, &pgErr) && pgErr.Code == "57014" && pgErr.Message == "canceling statement due to user request"
		},
	})
}

// bogusCancel sends a CancelRequest with a random key to the proxy, as a
// stale or forged key would arrive; the proxy drops it and closes.
func (p *Postgres) bogusCancel(ctx context.Context) error {
	network, addr := "tcp", net.JoinHostPort(p.cfg.Host, strconv.Itoa(int(p.cfg.Port)))
	if strings.HasPrefix(p.cfg.Host, "/") {
		network, addr = "unix", filepath.Join(p.cfg.Host, ".s.PGSQL."+strconv.Itoa(int(p.cfg.Port)))
	}
	var d net.Dialer
	p.r.st.connects.Add(1)
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("dial for a cancel request: %w", err)
	}
	defer c.Close()
	msg := make([]byte, 16)
	binary.BigEndian.PutUint32(msg[0:], 16)
	binary.BigEndian.PutUint32(msg[4:], 80877102)
	rand.Read(msg[8:])
	msg[8] &= 0x7f
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("send a cancel request: %w", err)
	}
	if n, err := io.Copy(io.Discard, c); err != nil || n != 0 {
		return fmt.Errorf("cancel request with an unknown key: got %d bytes back, %v; want a plain close", n, err)
	}
	p.r.st.bogusCancels.Add(1)
	return nil
}

// terminateOnce opens a third session and has the watcher end its backend
// with pg_terminate_backend, as an administrator (or a failover) would.
// The server sends FATAL 57P01 and closes; once the backend is gone, the
// session's next query must get that FATAL, relayed before the close, and
// not hang or see a bare reset.
func (p *Postgres) terminateOnce(ctx context.Context, w *pgSession, i int) error {
	r := p.r
	t, err := p.connect(ctx, fmt.Sprintf("%s_ct%d", r.id, i))
	if err != nil {
		return err
	}
	defer t.close()
	if err := t.identity(ctx); err != nil {
		return err
	}
	return r.endSession(ctx, w, int64(t.pid), "pg_terminate_backend",
		func(ctx context.Context) error {
			var ok bool
			if err := w.conn.QueryRow(ctx, "SELECT pg_terminate_backend($1)", t.pid).Scan(&ok); err != nil {
				return fmt.Errorf("pg_terminate_backend: %w", err)
			}
			if !ok {
				return w.wrong("pg_terminate_backend", "backend %d of open session %s not found", t.pid, t.tag)
			}
			return nil
		},
		"SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
		func(ctx context.Context) error {
			_, err := t.conn.Exec(ctx, "SELECT 1")
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "57P01" {
				return t.wrong("query after pg_terminate_backend", "%v, want FATAL 57P01 (terminating connection due to administrator command)", err)
			}
			return nil
		})
}
