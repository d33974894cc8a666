package validate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/sqlquote"
)

// MySQLQuerier is what the MySQL checks need: *sql.DB or *sql.Conn.
type MySQLQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// awsPlugin is the authentication plugin of RDS for MySQL IAM users.
const awsPlugin = "AWSAuthenticationPlugin"

// MySQL checks, on RDS for MySQL or MariaDB, what IAM login and the
// application need: the account, its AWSAuthenticationPlugin, REQUIRE SSL
// and the required grants (read from SHOW GRANTS). As an admin (o.Admin)
// it reads the account from mysql.user, which MySQL keeps as a table and
// MariaDB as a view over mysql.global_priv. As the user itself, logged in
// with a token through the proxy, the login has already proven the plugin.
func MySQL(ctx context.Context, q MySQLQuerier, o DBOptions) *Report {
	r := &Report{}
	var current string
	var dbName sql.NullString
	if err := q.QueryRowContext(ctx, "SELECT CURRENT_USER(), DATABASE()").Scan(&current, &dbName); err != nil {
		r.Add(Check{Name: "connection", Status: Fail, Detail: fmt.Sprintf("could not query the server: %v", err)})
		return r
	}
	db := o.Database
	if db == "" {
		db = dbName.String
	}
	reqs, err := mysqlRequirements(o.Require, db)
	if err == nil && len(o.RequireSequences) > 0 {
		err = errors.New("MySQL has no sequences: drop --require-sequences")
	}
	if err != nil {
		r.Add(Check{Name: "requirements", Status: Fail, Detail: err.Error()})
		return r
	}
	user, host := o.User, hostOr(o.Host)
	if !o.Admin {
		at := strings.LastIndexByte(current, '@')
		cu, ch := current[:max(at, 0)], current[at+1:]
		if user != "" && user != cu {
			r.Add(Check{Name: "user exists", Status: Fail, Detail: fmt.Sprintf("connected as %s, not %s", current, user)})
			return r
		}
		user, host = cu, ch
	}
	if user == "" {
		r.Add(Check{Name: "user exists", Status: Fail, Detail: "no user to check: name it (--db-user)"})
		return r
	}
	acct := sqlquote.MySQLAccount(user, host)
	if o.Admin {
		if !mysqlAccountChecks(ctx, q, r, user, host, reqs) {
			return r
		}
	} else {
		r.Add(Check{Name: "user exists", Status: OK, Detail: "logged in as " + current})
		r.Add(Check{Name: "authentication plugin", Status: OK, Detail: "logged in with an IAM token, which RDS accepts only for " + awsPlugin + " accounts"})
		mysqlSelfSSLCheck(ctx, q, r, acct)
	}
	grants, err := mysqlShowGrants(ctx, q, acct, o.Admin)
	if err != nil {
		r.Add(failed("grants", err))
		return r
	}
	parsed, roles := ParseGrants(grants)
	for _, req := range reqs {
		name := strings.Join(req.Privileges, ",") + " on " + req.Schema + "." + objectName(req.Object)
		missing := MissingPrivileges(parsed, req)
		if len(missing) == 0 {
			r.Add(Check{Name: name, Status: OK, Detail: fmt.Sprintf("%s has %s on %s.%s", acct, strings.Join(req.Privileges, ", "), req.Schema, objectName(req.Object))})
			continue
		}
		detail := fmt.Sprintf("%s lacks %s on %s.%s", acct, strings.Join(missing, ", "), req.Schema, objectName(req.Object))
		if len(roles) > 0 {
			detail += " (privileges through roles " + strings.Join(roles, ", ") + " are not counted: grant them to the account, as an IAM session does not activate roles by itself)"
		}
		r.Add(Check{Name: name, Status: Fail, Detail: detail, Fix: mysqlGrant(req, missing, acct)})
	}
	return r
}

// mysqlAccountChecks reads the account row: it exists, uses
// AWSAuthenticationPlugin, and requires TLS. It says whether the account
// exists (so grants can be read).
func mysqlAccountChecks(ctx context.Context, q MySQLQuerier, r *Report, user, host string, reqs []Requirement) bool {
	acct := sqlquote.MySQLAccount(user, host)
	var plugin, sslType sql.NullString
	err := q.QueryRowContext(ctx, "SELECT plugin, ssl_type FROM mysql.user WHERE User = ? AND Host = ?", user, host).Scan(&plugin, &sslType)
	if errors.Is(err, sql.ErrNoRows) {
		mysqlMissingAccount(ctx, q, r, user, host, reqs)
		return false
	}
	if err != nil {
		r.Add(failed("user exists", err))
		return false
	}
	r.Add(Check{Name: "user exists", Status: OK, Detail: "account " + acct + " exists"})
	if plugin.String == awsPlugin {
		r.Add(Check{Name: "authentication plugin", Status: OK, Detail: acct + " uses " + awsPlugin})
	} else {
		r.Add(Check{Name: "authentication plugin", Status: Fail,
			Detail: fmt.Sprintf("%s uses %q, not %s: RDS checks its password as a password, not as an IAM token", acct, plugin.String, awsPlugin),
			Fix:    "ALTER USER " + acct + " IDENTIFIED WITH " + awsPlugin + " AS 'RDS';"})
	}
	switch strings.ToUpper(sslType.String) {
	case "ANY", "X509", "SPECIFIED":
		r.Add(Check{Name: "require ssl", Status: OK, Detail: fmt.Sprintf("%s requires TLS (ssl_type %s)", acct, sslType.String)})
	default:
		r.Add(Check{Name: "require ssl", Status: Fail, Detail: acct + " does not require TLS: the token could be sent in the clear by another client", Fix: "ALTER USER " + acct + " REQUIRE SSL;"})
	}
	return true
}

// mysqlMissingAccount reports a missing account, naming one that differs
// only in case or host, since both are part of the account's name.
func mysqlMissingAccount(ctx context.Context, q MySQLQuerier, r *Report, user, host string, reqs []Requirement) {
	acct := sqlquote.MySQLAccount(user, host)
	rows, err := q.QueryContext(ctx, "SELECT User, Host FROM mysql.user WHERE LOWER(CONVERT(User USING utf8mb4)) = LOWER(?) ORDER BY User, Host", user)
	if err != nil {
		r.Add(failed("user exists", err))
		return
	}
	defer rows.Close()
	var near []string
	var first [2]string
	for rows.Next() {
		var u, h string
		if err := rows.Scan(&u, &h); err != nil {
			r.Add(failed("user exists", err))
			return
		}
		if len(near) == 0 {
			first = [2]string{u, h}
		}
		near = append(near, sqlquote.MySQLAccount(u, h))
	}
	if err := rows.Err(); err != nil {
		r.Add(failed("user exists", err))
		return
	}
	if len(near) > 0 {
		r.Add(Check{Name: "user exists", Status: Fail,
			Detail: fmt.Sprintf("no account %s; did you mean %s? User and host are both part of the name, and user names are case-sensitive", acct, strings.Join(near, ", ")),
			Fix:    "RENAME USER " + sqlquote.MySQLAccount(first[0], first[1]) + " TO " + acct + ";"})
		return
	}
	c := Check{Name: "user exists", Status: Fail, Detail: "no account " + acct}
	if stmts, err := mysqlSetup(SetupOptions{Engine: config.MySQL, User: user, Host: host, Require: reqs}); err == nil {
		c.Fix = strings.Join(stmts, " ")
	}
	r.Add(c)
}

// requireClause finds REQUIRE in SHOW CREATE USER or SHOW GRANTS text.
var requireClause = regexp.MustCompile(`(?i)\bREQUIRE\s+(SSL|X509|ISSUER|SUBJECT|CIPHER|NONE)\b`)

// mysqlSelfSSLCheck checks REQUIRE SSL as the user itself, who may read
// its own SHOW CREATE USER; MariaDB also shows REQUIRE in SHOW GRANTS.
func mysqlSelfSSLCheck(ctx context.Context, q MySQLQuerier, r *Report, acct string) {
	var text, create string
	if err := q.QueryRowContext(ctx, "SHOW CREATE USER CURRENT_USER()").Scan(&create); err == nil {
		text = create
	} else if grants, gerr := mysqlShowGrants(ctx, q, acct, false); gerr == nil {
		text = strings.Join(grants, "\n")
	}
	m := requireClause.FindStringSubmatch(text)
	switch {
	case m != nil && !strings.EqualFold(m[1], "NONE"):
		r.Add(Check{Name: "require ssl", Status: OK, Detail: acct + " requires TLS (REQUIRE " + strings.ToUpper(m[1]) + ")"})
	case m != nil || (text != "" && strings.HasPrefix(strings.ToUpper(text), "CREATE USER")):
		r.Add(Check{Name: "require ssl", Status: Fail, Detail: acct + " does not require TLS: the token could be sent in the clear by another client", Fix: "ALTER USER " + acct + " REQUIRE SSL;"})
	default:
		r.Add(Check{Name: "require ssl", Status: Skip, Detail: "could not read the account's REQUIRE clause as the user itself: check with --admin-dsn"})
	}
}

// mysqlShowGrants is SHOW GRANTS for the account (admin) or the session's.
func mysqlShowGrants(ctx context.Context, q MySQLQuerier, acct string, admin bool) ([]string, error) {
	query := "SHOW GRANTS FOR CURRENT_USER()"
	if admin {
		query = "SHOW GRANTS FOR " + acct
	}
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, fmt.Errorf("%s: %w", query, err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", query, err)
	}
	return out, nil
}

// Grant is one GRANT line of SHOW GRANTS that grants privileges on
// tables: on *.*, a database (a LIKE pattern, as in GRANT ON `app\_%`.*)
// or one table. Column privileges and routines are left out.
type Grant struct {
	Privileges []string // upper case; ALL for ALL PRIVILEGES
	Database   string   // "*" for *.*
	Table      string   // "*" for db.*
}

// ParseGrants reads SHOW GRANTS output (MySQL 5.7/8.0, MariaDB) into the
// table-level grants, and the roles granted (GRANT `r` TO ...), whose
// privileges SHOW GRANTS does not list.
func ParseGrants(lines []string) (grants []Grant, roles []string) {
	for _, line := range lines {
		g, role, ok := parseGrant(line)
		if !ok {
			continue
		}
		if role != "" {
			roles = append(roles, role)
			continue
		}
		grants = append(grants, g)
	}
	return grants, roles
}

// parseGrant reads one line; role is set for a role grant.
func parseGrant(line string) (g Grant, role string, ok bool) {
	s := strings.TrimSpace(line)
	if len(s) < 6 || !strings.EqualFold(s[:6], "GRANT ") {
		return g, "", false
	}
	s = s[6:]
	on := indexTopLevel(s, " ON ")
	if on < 0 {
		// GRANT `role`@`%` TO `u`@`%`: a role grant.
		to := indexTopLevel(s, " TO ")
		if to < 0 {
			return g, "", false
		}
		return g, strings.TrimSpace(s[:to]), true
	}
	privText, rest := s[:on], strings.TrimSpace(s[on+4:])
	to := indexTopLevel(rest, " TO ")
	if to < 0 {
		return g, "", false
	}
	target := strings.TrimSpace(rest[:to])
	if f := strings.Fields(target); len(f) > 1 {
		switch strings.ToUpper(f[0]) {
		case "TABLE":
			target = strings.TrimSpace(target[len(f[0]):])
		default: // FUNCTION, PROCEDURE, PACKAGE ...: not tables
			return g, "", false
		}
	}
	db, after, err := readGrantName(target)
	if err != nil || !strings.HasPrefix(after, ".") {
		return g, "", false
	}
	table, after, err := readGrantName(after[1:])
	if err != nil || after != "" {
		return g, "", false
	}
	g.Database, g.Table = db, table
	for _, p := range splitTopLevel(privText) {
		p = strings.ToUpper(strings.Join(strings.Fields(p), " "))
		if strings.Contains(p, "(") { // column privilege: not on the whole table
			continue
		}
		if p == "ALL PRIVILEGES" {
			p = "ALL"
		}
		g.Privileges = append(g.Privileges, p)
	}
	return g, "", true
}

// readGrantName reads `name`, name or *, returning the rest.
func readGrantName(s string) (string, string, error) {
	if s == "" {
		return "", "", errors.New("empty")
	}
	if s[0] == '*' {
		return "*", s[1:], nil
	}
	if s[0] == '`' {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] != '`' {
				b.WriteByte(s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == '`' {
				b.WriteByte('`')
				i++
				continue
			}
			return b.String(), s[i+1:], nil
		}
		return "", "", errors.New("unterminated")
	}
	end := strings.IndexAny(s, ". ")
	if end < 0 {
		end = len(s)
	}
	return s[:end], s[end:], nil
}

// indexTopLevel finds sep outside backquotes, quotes and parentheses.
func indexTopLevel(s, sep string) int {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '`' || c == '\'' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth == 0 && strings.HasPrefix(strings.ToUpper(s[i:]), sep):
			return i
		}
	}
	return -1
}

// splitTopLevel splits a privilege list at commas outside parentheses.
func splitTopLevel(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// MissingPrivileges lists req's privileges that no grant covers: a grant
// on *.*, on a database pattern matching req's database, or (for a table
// requirement) on the table itself.
func MissingPrivileges(grants []Grant, req Requirement) []string {
	var missing []string
	for _, p := range req.Privileges {
		if !slices.ContainsFunc(grants, func(g Grant) bool { return g.covers(req, p) }) {
			missing = append(missing, p)
		}
	}
	return missing
}

func (g Grant) covers(req Requirement, priv string) bool {
	if !slices.Contains(g.Privileges, priv) && !slices.Contains(g.Privileges, "ALL") {
		return false
	}
	switch {
	case g.Database == "*":
		return true
	case g.Table == "*":
		return likeMatch(g.Database, req.Schema)
	default:
		return !req.All() && g.Database == req.Schema && g.Table == req.Object
	}
}

// likeMatch matches a database-level grant's name, in which % and _ are
// wildcards unless escaped with a backslash, as MySQL matches it.
func likeMatch(pattern, name string) bool {
	if pattern == "" {
		return name == ""
	}
	switch pattern[0] {
	case '%':
		for i := 0; i <= len(name); i++ {
			if likeMatch(pattern[1:], name[i:]) {
				return true
			}
		}
		return false
	case '_':
		return name != "" && likeMatch(pattern[1:], name[1:])
	case '\\':
		if len(pattern) > 1 {
			return name != "" && name[0] == pattern[1] && likeMatch(pattern[2:], name[1:])
		}
	}
	return name != "" && name[0] == pattern[0] && likeMatch(pattern[1:], name[1:])
}
