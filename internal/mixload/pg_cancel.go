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
	"time"

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
	ctx, cancel := r.opCtx()
	victim, err := p.connect(ctx, r.id+"_cv")
	var watcher *pgSession
	if err == nil {
		watcher, err = p.connect(ctx, r.id+"_cw")
		if err != nil {
			victim.close()
		}
	}
	cancel()
	if err != nil {
		if !errors.Is(err, errWrong) {
			r.fail("cancel pair", "connect", err)
		}
		return
	}
	defer victim.close()
	defer watcher.close()
	for i := 0; !r.stopping(); i++ {
		a.doing("cancel a pg_sleep")
		ctx, cancel := r.opCtx()
		err := p.cancelOnce(ctx, victim, watcher, i)
		if err == nil {
			err = victim.identity(ctx)
		}
		if err == nil {
			err = watcher.identity(ctx)
		}
		if err == nil && i%3 == 2 {
			a.doing("bogus cancel request")
			err = p.bogusCancel(ctx)
		}
		if err == nil && i%4 == 3 {
			a.doing("pg_terminate_backend a third session")
			err = p.terminateOnce(ctx, watcher, i)
		}
		cancel()
		r.st.ops.Add(1)
		if err != nil {
			if !errors.Is(err, errWrong) {
				r.fail("cancel pair", "cancel", err)
			}
			return
		}
		pause(r, time.Duration(100+victim.rng.IntN(400))*time.Millisecond)
	}
}

// pause sleeps unless the run ends first.
func pause(r *run, d time.Duration) {
	select {
	case <-time.After(d):
	case <-r.stop:
	}
}

// sleepSeconds is how long a statement to cancel would run: long enough
// that one that finishes by itself is a cancel that went astray.
const sleepSeconds = 20

func (p *Postgres) cancelOnce(ctx context.Context, v, w *pgSession, i int) error {
	r := p.r
	vctx, vcancel := context.WithCancel(ctx)
	defer vcancel()
	done := make(chan error, 1)
	go func() {
		// Both protocols: a prepared statement, and a simple Query.
		if i%2 == 0 {
			_, err := v.conn.Exec(vctx, "SELECT pg_sleep($1::float8)", float64(sleepSeconds))
			done <- err
			return
		}
		_, err := v.conn.PgConn().Exec(vctx, fmt.Sprintf("SELECT pg_sleep(%d)", sleepSeconds)).ReadAll()
		done <- err
	}()
	abandon := func(err error) error {
		vcancel()
		<-done
		return err
	}
	running := false
	for start := time.Now(); time.Since(start) < 15*time.Second; {
		var n int
		// In the sleep itself, not merely active: a cancel that lands
		// while the backend reads the rest of the statement's messages is
		// rightly ignored by the server.
		err := w.conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND wait_event = 'PgSleep'", v.pid).Scan(&n)
		if err != nil {
			return abandon(fmt.Errorf("watch pg_stat_activity: %w", err))
		}
		if n == 1 {
			running = true
			break
		}
		select {
		case err := <-done:
			return fmt.Errorf("pg_sleep ended before it was cancelled: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !running {
		return abandon(errors.New("pg_sleep did not show up sleeping in pg_stat_activity within 15s"))
	}
	r.st.connects.Add(1)
	r.st.cancelsSent.Add(1)
	sent := time.Now()
	if err := v.conn.PgConn().CancelRequest(ctx); err != nil {
		return abandon(fmt.Errorf("send CancelRequest: %w", err))
	}
	select {
	case err := <-done:
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "57014" && pgErr.Message == "canceling statement due to user request":
			r.st.cancelled.Add(1)
			return nil
		case err == nil:
			r.st.cancelMissed.Add(1)
			return v.wrong("cancel", "pg_sleep(%d) finished %s after its CancelRequest", sleepSeconds, time.Since(sent).Round(time.Millisecond))
		default:
			return fmt.Errorf("cancelled pg_sleep: %w", err)
		}
	case <-ctx.Done():
		return abandon(fmt.Errorf("cancelled pg_sleep: no answer: %w", ctx.Err()))
	}
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
	var ok bool
	if err := w.conn.QueryRow(ctx, "SELECT pg_terminate_backend($1)", t.pid).Scan(&ok); err != nil {
		return fmt.Errorf("pg_terminate_backend: %w", err)
	}
	if !ok {
		return w.wrong("pg_terminate_backend", "backend %d of open session %s not found", t.pid, t.tag)
	}
	r.st.terminated.Add(1)
	for start := time.Now(); ; {
		var n int
		if err := w.conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", t.pid).Scan(&n); err != nil {
			return fmt.Errorf("watch the terminated backend: %w", err)
		}
		if n == 0 {
			break
		}
		if time.Since(start) > 15*time.Second {
			return fmt.Errorf("backend %d still there 15s after pg_terminate_backend", t.pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, err = t.conn.Exec(ctx, "SELECT 1")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57P01" {
		return t.wrong("query after pg_terminate_backend", "%v, want FATAL 57P01 (terminating connection due to administrator command)", err)
	}
	r.st.terminatedSeen.Add(1)
	return nil
}
