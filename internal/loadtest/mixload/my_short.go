package mixload

import (
	"context"
	"fmt"
	"net"
	"os/exec"
)

// shortWorker opens short sessions one after another until the run's time
// is up, rotating through the clients.
func (m *MySQL) shortWorker(a *actor, w int) {
	m.r.shortWorker(a, w,
		shortKind{"short session (mariadb client)", m.shortCLI},
		shortKind{"short session (prepared statements)", m.shortPrepared},
		shortKind{"short session (multi-statement text query)", m.shortText})
}

// shortPrepared: connect, identity, a few autocommitted prepared INSERTs,
// read them back, close.
func (m *MySQL) shortPrepared(ctx context.Context, tag string) error {
	s, err := m.connect(ctx, tag)
	if err != nil {
		return err
	}
	defer s.close()
	n, first := s.fewRows(3)
	sql := fmt.Sprintf("INSERT INTO %s (session, seq, payload) VALUES (?, ?, ?)", m.rows)
	for seq := first; seq < first+n; seq++ {
		if _, err := s.conn.ExecContext(ctx, sql, tag, seq, payload(tag, seq, true)); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		m.r.ledger.commit(tag, newBatch(tag, seq, seq, true))
	}
	if _, err := s.checkRows(ctx, s.conn, first, first+n-1); err != nil {
		return err
	}
	return s.identity(ctx)
}

// shortText: connect, then one multi-statement text query that inserts a
// row and reads the identity and the row back.
func (m *MySQL) shortText(ctx context.Context, tag string) error {
	s, err := m.connect(ctx, tag)
	if err != nil {
		return err
	}
	defer s.close()
	pl := payload(tag, 1, true)
	s.nextSeq(1)
	rows, err := s.conn.QueryContext(ctx, fmt.Sprintf("INSERT INTO %[1]s (session, seq, payload) VALUES (%[2]s, 1, %[3]s); SELECT %[2]s, CONNECTION_ID(), COUNT(*), MD5(MAX(payload)) FROM %[1]s WHERE session = %[2]s",
		m.rows, myLit(tag), myHex(pl)))
	if err != nil {
		return fmt.Errorf("insert and select: %w", err)
	}
	defer rows.Close()
	m.r.ledger.commit(tag, newBatch(tag, 1, 1, true))
	var gotTag, sum string
	var id, count int64
	if !rows.Next() {
		return fmt.Errorf("insert and select: no row: %v", rows.Err())
	}
	if err := rows.Scan(&gotTag, &id, &count, &sum); err != nil {
		return fmt.Errorf("insert and select: %w", err)
	}
	if gotTag != tag || id != s.id || count != 1 || sum != md5hex(pl) {
		return s.wrong("insert and select", "(%q, %d, %d, %s), want (%q, %d, 1, %s)", gotTag, id, count, sum, tag, s.id, md5hex(pl))
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("insert and select: %w", err)
	}
	m.r.st.multiStmt.Add(1)
	m.r.st.identity.Add(1)
	return nil
}

// shortCLI is a short session by the mariadb (or mysql) client: identity,
// an insert with a hex literal and a read back, in one -e.
func (m *MySQL) shortCLI(ctx context.Context, tag string) error {
	r := m.r
	pl := payload(tag, 1, true)
	args := []string{"--no-defaults", "--skip-ssl", "--batch", "--skip-column-names", "--connect-timeout=20", "-u", m.cfg.User}
	if m.cfg.Net == "unix" {
		args = append(args, "--socket="+m.cfg.Addr)
	} else {
		host, port, err := net.SplitHostPort(m.cfg.Addr)
		if err != nil {
			return fmt.Errorf("mariadb client: address %q: %w", m.cfg.Addr, err)
		}
		args = append(args, "--protocol=tcp", "-h", host, "-P", port)
	}
	args = append(args, m.cfg.DBName, "-e", fmt.Sprintf("SELECT %[2]s, CONNECTION_ID(); INSERT INTO %[1]s (session, seq, payload) VALUES (%[2]s, 1, %[3]s); SELECT COUNT(*), MD5(MAX(payload)) FROM %[1]s WHERE session = %[2]s",
		m.rows, myLit(tag), myHex(pl)))
	return r.cliSession(exec.CommandContext(ctx, r.opts.CLI, args...), "mariadb client", tag, "\t", true)
}
