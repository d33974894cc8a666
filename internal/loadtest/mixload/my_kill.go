package mixload

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// erQueryInterrupted is what a statement stopped by KILL QUERY ends with;
// erConnectionKilled what a killed connection may be told;
// erUpstreamConnect what the proxy answers the first command sent soon
// after the upstream closed the session.
const (
	erQueryInterrupted = 1317
	erConnectionKilled = 1927
	erUpstreamConnect  = 1429
)

// killPair is two long sessions: the victim runs SLEEP(), the killer sees
// it sleeping in the processlist and sends KILL QUERY with the victim's
// connection id, the one the proxy mirrored from the upstream's greeting.
// The sleep must end with error 1317 at once, and the victim must go on as
// the same connection.
func (m *MySQL) killPair(a *actor) {
	r := m.r
	runPair(r, a, pair[*mySession]{
		name: "kill pair", failOp: "kill", doing: "KILL QUERY a SLEEP()",
		tags:  [2]string{r.id + "_kv", r.id + "_kk"},
		round: m.killOnce,
		extra: func(ctx context.Context, a *actor, k *mySession, i int) error {
			if i%4 != 3 {
				return nil
			}
			a.doing("KILL CONNECTION a third session")
			return m.killConnection(ctx, k, i)
		},
	}, m.connect)
}

func (m *MySQL) killOnce(ctx context.Context, v, k *mySession, i int) error {
	return m.r.interrupt(ctx, v.core(), interruption{
		stmt: "SLEEP", where: "the processlist", done: "killed", by: "KILL QUERY", wrongOp: "kill",
		sleep: func(ctx context.Context) error {
			var slept int64
			// Both protocols: a text query and a prepared statement.
			if i%2 == 0 {
				return v.conn.QueryRowContext(ctx, fmt.Sprintf("SELECT SLEEP(%d)", sleepSeconds)).Scan(&slept)
			}
			return v.conn.QueryRowContext(ctx, "SELECT SLEEP(?)", sleepSeconds).Scan(&slept)
		},
		watcher:     k,
		sleepingSQL: "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND STATE = 'User sleep'",
		victimID:    v.id,
		stop: func(ctx context.Context) error {
			if _, err := k.conn.ExecContext(ctx, fmt.Sprintf("KILL QUERY %d", v.id)); err != nil {
				return fmt.Errorf("KILL QUERY: %w", err)
			}
			return nil
		},
		stopped: func(err error) bool {
			var me *mysql.MySQLError
			return errors.As(err, &me) && me.Number == erQueryInterrupted
		},
	})
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
	// Its connection is dead: an error closing it says nothing.
	defer r.release(t.tag, t.id, func() error { t.shut(); return nil })
	if err := t.identity(ctx); err != nil {
		return err
	}
	return r.endSession(ctx, k, t.id, "KILL CONNECTION",
		func(ctx context.Context) error {
			if _, err := k.conn.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", t.id)); err != nil {
				return fmt.Errorf("KILL CONNECTION: %w", err)
			}
			return nil
		},
		"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?",
		func(ctx context.Context) error {
			var one int
			err := t.conn.QueryRowContext(ctx, "SELECT 1").Scan(&one)
			// MariaDB closes an idle killed connection without a word:
			// the driver sees EOF, as it does without a proxy, or, when
			// the query comes within a second of the close, the proxy's
			// 1429 answering it. A server that says why first sends 1927.
			var me *mysql.MySQLError
			told := errors.As(err, &me) && (me.Number == erConnectionKilled ||
				me.Number == erUpstreamConnect && strings.HasPrefix(me.Message, "rds-iam-proxy: "))
			if !errors.Is(err, mysql.ErrInvalidConn) && !errors.Is(err, driver.ErrBadConn) && !told {
				return t.wrong("query after KILL CONNECTION", "%v, want the closed connection (invalid connection), error %d or the proxy's %d", err, erConnectionKilled, erUpstreamConnect)
			}
			return nil
		})
}
