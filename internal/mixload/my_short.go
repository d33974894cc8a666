package mixload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
)

// shortWorker opens short sessions one after another until the run's time
// is up, rotating through the clients.
func (m *MySQL) shortWorker(a *actor, w int) {
	r := m.r
	for n := 0; !r.stopping(); n++ {
		tag := fmt.Sprintf("%s_s%d_%d", r.id, w, n)
		ctx, cancel := r.opCtx()
		var err error
		switch {
		case r.opts.CLI != "" && n%r.opts.CLIEvery == r.opts.CLIEvery-1:
			a.doing("short session (mariadb client)")
			err = m.shortCLI(ctx, tag)
		case n%2 == 0:
			a.doing("short session (prepared statements)")
			err = m.shortPrepared(ctx, tag)
		default:
			a.doing("short session (multi-statement text query)")
			err = m.shortText(ctx, tag)
		}
		cancel()
		r.st.ops.Add(1)
		if err != nil {
			if !errors.Is(err, errWrong) {
				r.fail(tag, "short session", err)
			}
			return
		}
		r.st.shortSessions.Add(1)
	}
}

// shortPrepared: connect, identity, a few autocommitted prepared INSERTs,
// read them back, close.
func (m *MySQL) shortPrepared(ctx context.Context, tag string) error {
	s, err := m.connect(ctx, tag)
	if err != nil {
		return err
	}
	defer s.close()
	n := 1 + s.rng.IntN(3)
	first := s.nextSeq(n)
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
	cmd := exec.CommandContext(ctx, r.opts.CLI, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	r.st.connects.Add(1)
	r.st.opened.Add(1)
	err := cmd.Run()
	r.st.closed.Add(1)
	if err != nil {
		return fmt.Errorf("mariadb client: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	r.ledger.commit(tag, newBatch(tag, 1, 1, true))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], tag+"\t") || lines[1] != "1\t"+md5hex(pl) {
		r.wrongAnswer(tag, "mariadb client", "output %q", out.String())
		return errWrong
	}
	r.st.cliSessions.Add(1)
	r.st.identity.Add(1)
	return nil
}
