package emulator

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// auroraPostgres is Aurora PostgreSQL inside a Cluster: each server answers
// aurora_replica_status() and aurora_db_instance_identifier() from a table
// the emulator keeps in it, and turns read-only through
// default_transaction_read_only.
type auroraPostgres struct{ c *Cluster }

// topologySQL creates the emulator's topology table and the two functions
// Aurora PostgreSQL has, over it. Every row is reported as updated now:
// every member is alive.
const topologySQL = `CREATE SCHEMA IF NOT EXISTS aurora_emulator;
CREATE TABLE IF NOT EXISTS aurora_emulator.replica_status (server_id text PRIMARY KEY, is_writer boolean NOT NULL);
DELETE FROM aurora_emulator.replica_status;
%s
CREATE OR REPLACE FUNCTION public.aurora_replica_status()
  RETURNS TABLE (server_id text, session_id text, last_update_timestamp timestamptz) LANGUAGE sql STABLE
  AS $$ SELECT r.server_id, CASE WHEN r.is_writer THEN 'MASTER_SESSION_ID' ELSE md5(r.server_id) END, now()
        FROM aurora_emulator.replica_status r ORDER BY r.server_id $$;
CREATE OR REPLACE FUNCTION public.aurora_db_instance_identifier() RETURNS text LANGUAGE sql IMMUTABLE
  AS $$ SELECT %s::text $$;
GRANT USAGE ON SCHEMA aurora_emulator TO PUBLIC;
GRANT SELECT ON aurora_emulator.replica_status TO PUBLIC;`

// prepare creates the topology functions in each database of in's server.
func (e *auroraPostgres) prepare(ctx context.Context, in AuroraInstance) error {
	var rows []string
	for n, m := range e.c.o.Instances {
		rows = append(rows, fmt.Sprintf("('%s', %t)", m.ID, n == 0))
	}
	sql := fmt.Sprintf(topologySQL, "INSERT INTO aurora_emulator.replica_status VALUES "+strings.Join(rows, ", ")+";", "'"+in.ID+"'")
	for _, db := range e.c.o.Databases {
		if err := e.admin(ctx, in, db, sql); err != nil {
			return err
		}
	}
	return nil
}

// admin runs sql on in's server as its superuser, in database db.
func (e *auroraPostgres) admin(ctx context.Context, in AuroraInstance, db, sql string) error {
	cfg, err := pgconn.ParseConfig(in.Admin)
	if err != nil {
		return fmt.Errorf("emulator: Aurora instance %s: admin connection string: %w", in.ID, err)
	}
	cfg.Database = db
	// The admin's own writes (the topology table) go through on a
	// read-only member too.
	cfg.RuntimeParams["default_transaction_read_only"] = "off"
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(cctx, cfg)
	if err != nil {
		return fmt.Errorf("emulator: Aurora instance %s: admin login: %w", in.ID, err)
	}
	defer conn.Close(context.WithoutCancel(cctx))
	if _, err := conn.Exec(cctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("emulator: Aurora instance %s: %w", in.ID, err)
	}
	return nil
}

// setReadOnly makes in's server refuse writes (as an Aurora reader does:
// "cannot execute INSERT in a read-only transaction", 25006) or accept
// them. A reload applies it to open sessions too, at their next command.
func (e *auroraPostgres) setReadOnly(ctx context.Context, in AuroraInstance, ro bool) error {
	v := "off"
	if ro {
		v = "on"
	}
	// ALTER SYSTEM cannot run in a transaction block: two queries.
	if err := e.admin(ctx, in, "postgres", "ALTER SYSTEM SET default_transaction_read_only = "+v); err != nil {
		return err
	}
	return e.admin(ctx, in, "postgres", "SELECT pg_reload_conf()")
}

// startFront starts in's PostgreSQL front.
func (e *auroraPostgres) startFront(a *AWS, ca *CA, in AuroraInstance, name string, cert *tls.Certificate) (*instance, error) {
	front, err := a.StartPostgres(ca, PostgresOptions{Endpoint: name, Port: e.c.o.Port, Backend: in.Backend,
		ResourceID: instanceResourceID(in.ID), Certificate: cert, Logger: e.c.o.Logger})
	if err != nil {
		return nil, err
	}
	return front.instance, nil
}

// writerMoved names to as the writer in every member's topology table.
func (e *auroraPostgres) writerMoved(ctx context.Context, to string) error {
	update := fmt.Sprintf("UPDATE aurora_emulator.replica_status SET is_writer = (server_id = '%s')", to)
	for _, in := range e.c.o.Instances {
		for _, db := range e.c.o.Databases {
			if err := e.admin(ctx, in, db, update); err != nil {
				return err
			}
		}
	}
	return nil
}
