package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// auroraMySQLReuse is auroraReuse for Aurora MySQL, whose session is
// taken before the client's greeting: a routed go-sql-driver client gets
// a session parked on the writer (the same connection id twice), and
// after a switchover that keeps the old writer's sessions open
// (read-only now) no client gets one of them; the new writer's sessions
// are reused in turn.
func auroraMySQLReuse(t *testing.T, r *auroraRig) {
	port := r.proxy(t, func(c *launch.Config) {
		c.SessionReuse, c.TopologyRefresh = true, config.Duration(300*time.Millisecond)
	})
	ctx := testCtx(t, 90*time.Second)
	db, err := mysqlProxyDB(port, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// session inserts a row and says its connection id and instance; the
	// driver quits (COM_QUIT) when the connection closes, so a session
	// left this way is parked.
	session := func() (id, instance string, err error) {
		c, err := db.Conn(ctx)
		if err != nil {
			return "", "", err
		}
		defer c.Close()
		if _, err := c.ExecContext(ctx, "INSERT INTO hits (client) VALUES ('reuse')"); err != nil {
			return "", "", err
		}
		if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			return "", "", err
		}
		// The emulated fronts answer the topology queries as they come,
		// alone (see emulator/mysqlshim.go).
		err = c.QueryRowContext(ctx, selfSQL).Scan(&instance)
		return id, instance, err
	}
	followWithReuse(t, r, session, func(err error) bool {
		// The old writer's read-only refusal, or the proxy ending a
		// session it cut there.
		return readOnly(err.Error()) || strings.Contains(err.Error(), "1053")
	})
}
