package topology

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/shortskip"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
)

func TestTopologyMembersDropsStaleReaders(t *testing.T) {
	now := time.Now()
	w, r := Members([]Row{
		{ServerID: "c", Updated: now.Add(-time.Second)},
		{ServerID: "a", Writer: true, Updated: now.Add(-time.Hour)}, // the writer's age does not count
		{ServerID: "b", Updated: now.Add(-StaleAfter - time.Second)},
		{ServerID: "d"}, // no timestamp: kept
	}, now)
	if w != "a" || !slices.Equal(r, []string{"c", "d"}) {
		t.Fatalf("Members = %q %q, want a [c d]", w, r)
	}
	if w, _ := Members([]Row{{ServerID: "b"}}, now); w != "" {
		t.Fatalf("no row claims the writer, got %q", w)
	}
}

// TestTopologyProbePostgres runs the PostgreSQL topology SQL against a
// real server with the functions Aurora has (as the emulator makes them).
func TestTopologyProbePostgres(t *testing.T) {
	shortskip.Skip(t, "starts a PostgreSQL server")
	ctx := t.Context()
	srv, err := localpg.Start(ctx, localpg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := srv.Exec(ctx, `CREATE TABLE members (server_id text, writer bool, at timestamptz);
		INSERT INTO members VALUES ('inst-a', false, now() - interval '1 hour'), ('inst-b', true, now()), ('inst-c', false, now());
		CREATE FUNCTION aurora_replica_status() RETURNS TABLE (server_id text, session_id text, last_update_timestamp timestamptz)
		  LANGUAGE sql AS $$ SELECT server_id, CASE WHEN writer THEN 'MASTER_SESSION_ID' ELSE 'x' END, at FROM members $$;
		CREATE FUNCTION aurora_db_instance_identifier() RETURNS text LANGUAGE sql AS $$ SELECT 'inst-c' $$;`); err != nil {
		t.Fatal(err)
	}
	conn, err := pgconn.Connect(ctx, srv.ConnString("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	probe := func() Probe {
		p, err := ProbePostgres(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := probe()
	w, r := Members(p.Rows, time.Now())
	if p.Self != "inst-c" || p.ReadOnly || w != "inst-b" || !slices.Equal(r, []string{"inst-c"}) {
		t.Fatalf("probe = %+v, members %q %q; want self inst-c, writable, writer inst-b, readers [inst-c] (inst-a's row is an hour old)", p, w, r)
	}
	if _, err := conn.Exec(ctx, "SET default_transaction_read_only = on").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if p := probe(); !p.ReadOnly {
		t.Fatalf("read-only session probed writable: %+v", p)
	}
	// Without Aurora's functions the probe says what failed.
	if _, err := conn.Exec(ctx, "SET default_transaction_read_only = off").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "DROP FUNCTION aurora_replica_status()").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := ProbePostgres(ctx, conn); err == nil || !contains(fmt.Sprint(err), "aurora_replica_status") {
		t.Fatalf("probe without aurora_replica_status(): %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
