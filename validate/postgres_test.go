package validate

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// fakePG answers the first query (current_database(), session_user) and
// fails anything else: enough for the checks that stop early. The checks
// against a real server are in the integration tests.
type fakePG struct {
	db, session string
	err         error
}

type fakeRow struct {
	vals []string
	err  error
}

func (r fakeRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	for i, d := range dest {
		*d.(*string) = r.vals[i]
	}
	return nil
}

func (f fakePG) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errors.New("unexpected query")
}

func (f fakePG) QueryRow(_ context.Context, sql string, _ ...any) pgx.Row {
	if f.err != nil {
		return fakeRow{err: f.err}
	}
	if strings.Contains(sql, "session_user") {
		return fakeRow{vals: []string{f.db, f.session}}
	}
	return fakeRow{err: errors.New("unexpected query")}
}

func TestPostgresStopsEarly(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		q    fakePG
		o    DBOptions
		name string
		want string
	}{
		{fakePG{err: errors.New("connection reset")}, DBOptions{}, "connection", "connection reset"},
		{fakePG{db: "postgres", session: "admin"}, DBOptions{Database: "appdb", Admin: true, User: "u"}, "database", "connect to appdb"},
		{fakePG{db: "appdb", session: "other"}, DBOptions{User: "app_user"}, "role exists", "connected as other, not app_user"},
		{fakePG{db: "appdb", session: "admin"}, DBOptions{Admin: true}, "role exists", "--db-user"},
		{fakePG{db: "appdb", session: "u"}, DBOptions{Require: []Requirement{{"public", "*", []string{"SELEC"}}}}, "requirements", "SELEC"},
	}
	for _, c := range cases {
		r := Postgres(ctx, c.q, c.o)
		if len(r.Checks) != 1 || r.OK() || r.Checks[0].Name != c.name || !strings.Contains(r.Checks[0].Detail, c.want) {
			t.Errorf("%+v: %+v", c.o, r.Checks)
		}
	}
}
