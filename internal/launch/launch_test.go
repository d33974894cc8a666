package launch

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
)

// query logs in through the proxy as user (a real client: pgconn, no
// password, no TLS to the proxy) and returns current_user.
func query(t *testing.T, ctx context.Context, dsn string) string {
	t.Helper()
	conn, err := pgconn.Connect(ctx, dsn+" dbname=postgres sslmode=disable connect_timeout=20")
	if err != nil {
		t.Fatalf("connect through the proxy (%s): %v", dsn, err)
	}
	defer conn.Close(ctx)
	res := conn.ExecParams(ctx, "SELECT current_user", nil, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 {
		t.Fatalf("query through the proxy: %v (%d rows)", res.Err, len(res.Rows))
	}
	return string(res.Rows[0][0])
}

func start(t *testing.T, c Config) *Running {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := Start(ctx, c, nil)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { shutdown(t, r) })
	return r
}

func shutdown(t *testing.T, r *Running) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.Shutdown(ctx)
}

// TestStart: a started proxy serves a client with its settings (the
// pinned user, the upstream's connection cap), answers a probe, and
// drains.
func TestStart(t *testing.T) {
	c := frontConfig(t)
	c.DBUser, c.MaxConnections = iamUser, 3
	r := start(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if got := query(t, ctx, "host=127.0.0.1 port="+r.Port()+" user=whoever"); got != iamUser {
		t.Errorf("logged in as %q, want the pinned db_user %q", got, iamUser)
	}
	if r.Name() != "postgres" || r.Limit().Max() != 3 || r.DialAddr() != stack(t).Front.Addr() || r.CABundle() == nil || r.Tokens().Stats().TokensBuilt != 1 {
		t.Errorf("running: name %q, limit %d, dial %s, bundle %v, tokens %+v", r.Name(), r.Limit().Max(), r.DialAddr(), r.CABundle(), r.Tokens().Stats())
	}
	if err := r.Probe(ctx); err != nil {
		t.Errorf("probe: %v", err)
	}
	if !r.Shutdown(ctx) {
		t.Error("shutdown with no session open was not clean")
	}
	select {
	case err := <-r.Done():
		if err != nil {
			t.Errorf("accept loop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the accept loop did not end")
	}
}

// TestStartUnixSocket: unix:DIR is DIR/.s.PGSQL.PORT with socket_mode, the
// name psql looks for; the file goes with the proxy.
func TestStartUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "launch-sock-") // t.TempDir's path can exceed a socket's 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := frontConfig(t)
	c.Listen, c.SocketMode = "unix:"+dir, "0660"
	r := start(t, c)
	port := strconv.Itoa(stack(t).Front.Port())
	sock := filepath.Join(dir, ".s.PGSQL."+port)
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket %s: %v, %v", sock, fi.Mode(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if got := query(t, ctx, "host="+dir+" port="+port+" user="+iamUser); got != iamUser {
		t.Errorf("logged in as %q", got)
	}
	shutdown(t, r)
	if _, err := os.Stat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the socket file outlived the proxy: %v", err)
	}
}

// TestStartRefusals: what must not start is refused before any
// credential, bundle or listener.
func TestStartRefusals(t *testing.T) {
	base := NewConfig(config.Postgres, "db.abc123.us-east-1.rds.amazonaws.com:5432")
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"non-loopback listen", func(c *Config) { c.Listen = "0.0.0.0:0" }, "is not a loopback address"},
		{"bad listen", func(c *Config) { c.Listen = "nowhere" }, `listen "nowhere": want HOST:PORT or unix:PATH`},
		{"local infile on postgres", func(c *Config) { c.AllowLocalInfile = true }, "--allow-local-infile is for mysql upstreams"},
		{"socket mode", func(c *Config) { c.Listen, c.SocketMode = "unix:/tmp/x", "rw" }, "socket_mode"},
		{"engine", func(c *Config) { c.Engine = "db2" }, "supported engines"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mod(&c)
			// No AWS at all: a refusal that got as far as the
			// credentials would fail differently (or hang on IMDS).
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r, err := Start(ctx, c, nil)
			if err == nil {
				shutdown(t, r)
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want %q", err, tc.want)
			}
		})
	}
}
