package integration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// TestReuseMySQLStormTakesLeftSessions: TestReuseStormTakesLeftSessions
// for MySQL. A MySQL client is greeted with the connection id of the
// session it ends up on, so one that finds none parked for the key of the
// proxy's last client waits, before its greeting, for the first of a
// session another client leaves and its login's turn. After one client
// (the key is known), 60 go-sql-driver clients at once against a guard of
// 5 logins a second (burst 1) that lets a login wait 5 s: at most 26
// could log in; each must be served, on a session that starts with no
// user variable of another's, with no more logins than the rate allows.
// One client in ten leaves inside a transaction. (That a client taking a
// parked session is greeted with its connection id is
// TestReuseMySQLKillAndGreeting's.)
// Budget: about 5 s of CI time.
func TestReuseMySQLStormTakesLeftSessions(t *testing.T) {
	w.enter(t)
	const rate, clients = 5, 60
	port := startMySQLProxy(t, func(c *launch.Config) {
		c.SessionReuse = true
		c.LoginRate, c.LoginBurst, c.LoginWait = rate, 1, config.Duration(5*time.Second)
	})
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = iamUser, "tcp", "127.0.0.1:"+port, appDB
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 40*time.Second, 40*time.Second, 40*time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	session := func(ctx context.Context, i int) (string, error) {
		db := sql.OpenDB(connector)
		db.SetMaxIdleConns(0) // Close sends COM_QUIT: the session is left cleanly
		defer db.Close()
		c, err := db.Conn(ctx)
		if err != nil {
			return "", err
		}
		defer c.Close()
		me := fmt.Sprintf("client-%d", i)
		var mark sql.NullString
		if err := c.QueryRowContext(ctx, "SELECT @owner").Scan(&mark); err != nil {
			return "", err
		}
		if mark.Valid {
			return "", fmt.Errorf("LEAK: %s's session starts with @owner = %q", me, mark.String)
		}
		if _, err := c.ExecContext(ctx, "SET @owner = ?", me); err != nil {
			return "", err
		}
		var owner, id string
		var n int
		if err := c.QueryRowContext(ctx, "SELECT @owner, CONNECTION_ID(), ?", 1_000_000+i).Scan(&owner, &id, &n); err != nil {
			return "", err
		}
		if owner != me || n != 1_000_000+i {
			return "", fmt.Errorf("WRONG: %s read back @owner %q and %d", me, owner, n)
		}
		if i%10 == 9 {
			if _, err := c.ExecContext(ctx, "BEGIN"); err != nil { // left inside: closed, not handed on
				return "", err
			}
		}
		return id, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := session(ctx, -1); err != nil { // the proxy learns the key
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the guard's burst back
	told := func(err error) (string, bool) {
		var me *mysql.MySQLError
		if errors.As(err, &me) {
			return me.Error(), true
		}
		return "", false
	}
	ids, problems, took := stormOf(clients, nil, told, session)
	served := 0
	for _, n := range ids {
		served += n
	}
	t.Logf("%d of %d clients served on %d connections in %v", served, clients, len(ids), took.Round(time.Millisecond))
	reportProblems(t, problems, false)
	// Each connection id is one login (the first client's session may be
	// among them): no more than the guard let through over the storm.
	if most := 2 + int(rate*(took.Seconds()+1)); len(ids) > most {
		t.Errorf("%d logins (connections) in %v, over the guard's %d", len(ids), took.Round(time.Millisecond), most)
	}
}
