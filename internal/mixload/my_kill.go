package mixload

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
)

// erQueryInterrupted is what a statement stopped by KILL QUERY ends with;
// erConnectionKilled what a killed connection may be told.
const (
	erQueryInterrupted = 1317
	erConnectionKilled = 1927
)

// killPair is two long sessions: the victim runs SLEEP(), the killer sees
// it sleeping in the processlist and sends KILL QUERY with the victim's
// connection id, the one the proxy mirrored from the upstream's greeting.
// The sleep must end with error 1317 at once, and the victim must go on as
// the same connection.
func (m *MySQL) killPair(a *actor) {
	r := m.r
	ctx, cancel := r.opCtx()
	victim, err := m.connect(ctx, r.id+"_kv")
	var killer *mySession
	if err == nil {
		killer, err = m.connect(ctx, r.id+"_kk")
		if err != nil {
			victim.close()
		}
	}
	cancel()
	if err != nil {
		if !errors.Is(err, errWrong) {
			r.fail("kill pair", "connect", err)
		}
		return
	}
	defer victim.close()
	defer killer.close()
	for i := 0; !r.stopping(); i++ {
		a.doing("KILL QUERY a SLEEP()")
		ctx, cancel := r.opCtx()
		err := m.killOnce(ctx, victim, killer, i)
		if err == nil {
			err = victim.identity(ctx)
		}
		if err == nil {
			err = killer.identity(ctx)
		}
		if err == nil && i%4 == 3 {
			a.doing("KILL CONNECTION a third session")
			err = m.killConnection(ctx, killer, i)
		}
		cancel()
		r.st.ops.Add(1)
		if err != nil {
			if !errors.Is(err, errWrong) {
				r.fail("kill pair", "kill", err)
			}
			return
		}
		pause(r, time.Duration(100+victim.rng.IntN(400))*time.Millisecond)
	}
}

func (m *MySQL) killOnce(ctx context.Context, v, k *mySession, i int) error {
	r := m.r
	vctx, vcancel := context.WithCancel(ctx)
	defer vcancel()
	done := make(chan error, 1)
	go func() {
		var slept int64
		// Both protocols: a text query and a prepared statement.
		if i%2 == 0 {
			done <- v.conn.QueryRowContext(vctx, fmt.Sprintf("SELECT SLEEP(%d)", sleepSeconds)).Scan(&slept)
			return
		}
		done <- v.conn.QueryRowContext(vctx, "SELECT SLEEP(?)", sleepSeconds).Scan(&slept)
	}()
	abandon := func(err error) error {
		vcancel() // the driver closes the victim's connection: it is lost anyway
		<-done
		return err
	}
	running := false
	for start := time.Now(); time.Since(start) < 15*time.Second; {
		var n int
		err := k.conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND STATE = 'User sleep'", v.id).Scan(&n)
		if err != nil {
			return abandon(fmt.Errorf("watch the processlist: %w", err))
		}
		if n == 1 {
			running = true
			break
		}
		select {
		case err := <-done:
			return fmt.Errorf("SLEEP ended before it was killed: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !running {
		return abandon(errors.New("SLEEP did not show up in the processlist within 15s"))
	}
	r.st.cancelsSent.Add(1)
	sent := time.Now()
	if _, err := k.conn.ExecContext(ctx, fmt.Sprintf("KILL QUERY %d", v.id)); err != nil {
		return abandon(fmt.Errorf("KILL QUERY: %w", err))
	}
	select {
	case err := <-done:
		var me *mysql.MySQLError
		switch {
		case errors.As(err, &me) && me.Number == erQueryInterrupted:
			r.st.cancelled.Add(1)
			return nil
		case err == nil:
			r.st.cancelMissed.Add(1)
			return v.wrong("kill", "SLEEP(%d) finished %s after KILL QUERY", sleepSeconds, time.Since(sent).Round(time.Millisecond))
		default:
			return fmt.Errorf("killed SLEEP: %w", err)
		}
	case <-ctx.Done():
		return abandon(fmt.Errorf("killed SLEEP: no answer: %w", ctx.Err()))
	}
}

// killConnection opens a third session and has the killer end it with
// KILL CONNECTION, as an administrator would. Once it is gone from the
// processlist, the session's next query must fail at once (the server
// closed it), not hang.
func (m *MySQL) killConnection(ctx context.Context, k *mySession, i int) error {
	r := m.r
	t, err := m.connect(ctx, fmt.Sprintf("%s_kc%d", r.id, i))
	if err != nil {
		return err
	}
	defer func() {
		r.live.close(t.id, t.tag)
		t.shut() // its connection is dead: an error closing it says nothing
		r.st.closed.Add(1)
	}()
	if err := t.identity(ctx); err != nil {
		return err
	}
	if _, err := k.conn.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", t.id)); err != nil {
		return fmt.Errorf("KILL CONNECTION: %w", err)
	}
	r.st.terminated.Add(1)
	for start := time.Now(); ; {
		var n int
		if err := k.conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", t.id).Scan(&n); err != nil {
			return fmt.Errorf("watch the killed connection: %w", err)
		}
		if n == 0 {
			break
		}
		if time.Since(start) > 15*time.Second {
			return fmt.Errorf("connection %d still there 15s after KILL CONNECTION", t.id)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var one int
	err = t.conn.QueryRowContext(ctx, "SELECT 1").Scan(&one)
	// MariaDB closes an idle killed connection without a word: the driver
	// sees EOF, as it does without a proxy. A server that says why first
	// sends 1927.
	var me *mysql.MySQLError
	if !errors.Is(err, mysql.ErrInvalidConn) && !errors.Is(err, driver.ErrBadConn) && !(errors.As(err, &me) && me.Number == erConnectionKilled) {
		return t.wrong("query after KILL CONNECTION", "%v, want the closed connection (invalid connection) or error %d", err, erConnectionKilled)
	}
	r.st.terminatedSeen.Add(1)
	return nil
}
