package deploy

import (
	"bufio"
	"context"
	"database/sql"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/shortskip"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localmy"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
)

// TestComposePathWithoutDocker plays docker-compose.yml on this machine:
// a throwaway PostgreSQL and MariaDB set up with the compose init scripts,
// the compose emulator command (local addresses for the service names), and
// the proxy's upstreams from the compose file with the environment the
// emulator wrote to --env-out; then psql's and the mysql client's logins as
// app_user, through one credential chain for both engines.
func TestComposePathWithoutDocker(t *testing.T) {
	shortskip.Skip(t, "starts a real PostgreSQL and MariaDB")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var c compose
	decodeInto(t, "docker-compose.yml", &c)
	em, px := c.Services["emulator"], c.Services["proxy"]

	pg, err := localpg.Start(ctx, localpg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	my, err := localmy.Start(ctx, localmy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer my.Stop()
	// The images' own setup (POSTGRES_*, MARIADB_DATABASE), then the
	// init scripts, one statement at a time.
	if err := my.Exec(ctx, "CREATE DATABASE "+c.Services["mysql"].Environment["MARIADB_DATABASE"]); err != nil {
		t.Fatal(err)
	}
	for _, st := range sqlStatements(string(readFile(t, "deploy/compose/postgres-init.sql"))) {
		if err := pg.Exec(ctx, st); err != nil {
			t.Fatalf("postgres-init.sql: %v", err)
		}
	}
	if err := my.Exec(ctx, sqlStatements(string(readFile(t, "deploy/compose/mysql-init.sql")))...); err != nil {
		t.Fatalf("mysql-init.sql: %v", err)
	}

	// The emulator, with the service names played by local addresses.
	dir := t.TempDir()
	services := map[string]string{"postgres:5432": pg.Addr(), "mysql:3306": my.Addr()}
	envOut, caOut := filepath.Join(dir, "aws.env"), filepath.Join(dir, "emulator-ca.pem")
	var args []string
	for _, a := range em.Command {
		name, v, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "backend", "mysql-backend":
			if services[v] == "" {
				t.Fatalf("emulator %s: not a compose database service", a)
			}
			a = "--" + name + "=" + services[v]
		case "listen-aws", "listen-postgres", "listen-mysql":
			a = "--" + name + "=127.0.0.1:0"
		case "advertise-host":
			a = "--advertise-host=127.0.0.1"
		case "env-out":
			a = "--env-out=" + envOut
		case "ca-out":
			a = "--ca-out=" + caOut
		}
		args = append(args, a)
	}
	bin := binary(t)
	var logs syncbuf.Buffer
	emu := exec.CommandContext(ctx, bin, args...)
	emu.Env = []string{"PATH=" + os.Getenv("PATH")}
	emu.Stderr = &logs
	stdout, err := emu.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { emu.Process.Kill(); emu.Wait() }()
	dial := map[string]string{} // engine -> the front's address
	lineRE := regexp.MustCompile(`^rds-iam-proxy --engine (\S+) --endpoint \S+ --dial-address (\S+) `)
	sc := bufio.NewScanner(stdout)
	for len(dial) < 2 && sc.Scan() {
		if m := lineRE.FindStringSubmatch(sc.Text()); m != nil {
			dial[m[1]] = m[2]
		}
	}
	if len(dial) < 2 {
		t.Fatalf("emulate printed no proxy commands (%v):\n%s", sc.Err(), logs.String())
	}
	go func() {
		for sc.Scan() {
		}
	}()

	// The proxy's environment: compose's, with the URLs the emulator wrote.
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "none")}
	written := envFile(t, mustRel(t, envOut))
	for k := range px.Environment {
		if written[k] == "" {
			t.Fatalf("the emulator's env file has no %s", k)
		}
		env = append(env, k+"="+written[k])
	}
	// One proxy, as in compose, with each --upstream pointed at this
	// machine's addresses instead of the service names.
	ports := map[string]string{}
	proxyArgs := []string{"run"}
	for _, a := range px.Command {
		v, ok := strings.CutPrefix(a, "--upstream=")
		if !ok {
			continue
		}
		u := parseUpstream(t, v)
		if strings.Split(u["dial_address"], ":")[0] != "emulator" || u["ca_bundle"] != flagValue(em.Command, "ca-out") {
			t.Fatalf("upstream %s: dial_address %q, ca_bundle %q: not the emulator's", u["name"], u["dial_address"], u["ca_bundle"])
		}
		u["dial_address"], u["ca_bundle"] = dial[u["engine"]], caOut
		port := freePort(t)
		u["listen"] = "127.0.0.1:" + port
		ports[u["engine"]] = port
		var spec []string
		for k, v := range u {
			spec = append(spec, k+"="+v)
		}
		proxyArgs = append(proxyArgs, "--upstream="+strings.Join(spec, ","))
	}
	var plogs syncbuf.Buffer
	p := exec.CommandContext(ctx, bin, proxyArgs...)
	p.Env, p.Stderr = env, &plogs
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { p.Process.Kill(); p.Wait() }()
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(plogs.String(), `msg=serving`); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("proxy not serving:\n%s", plogs.String())
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("proxy log:\n%s", plogs.String())
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("emulator log:\n%s", logs.String())
		}
	})

	user := strings.Split(flagValue(em.Command, "db-users"), ",")[0]
	conn, err := pgx.Connect(ctx, "host=127.0.0.1 port="+ports["postgres"]+" user="+user+" dbname=app sslmode=disable")
	if err != nil {
		t.Fatalf("postgres through the compose path: %v", err)
	}
	var got string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&got); err != nil || got != user {
		t.Errorf("postgres current_user %q, %v; want %s", got, err, user)
	}
	conn.Close(ctx)

	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = user, "tcp", "127.0.0.1:"+ports["mysql"], c.Services["mysql"].Environment["MARIADB_DATABASE"]
	cfg.Timeout = 20 * time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	if err := db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&got); err != nil || got != user+"@%" {
		t.Errorf("mysql CURRENT_USER() %q, %v; want %s@%%", got, err, user)
	}
}

// sqlStatements splits an init script into statements.
func sqlStatements(script string) []string {
	var out []string
	var lines []string
	for _, l := range strings.Split(script, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			lines = append(lines, l)
		}
	}
	for _, st := range strings.Split(strings.Join(lines, "\n"), ";") {
		if st = strings.TrimSpace(st); st != "" {
			out = append(out, st)
		}
	}
	return out
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

// mustRel makes an absolute path relative to repoRoot, for readFile.
func mustRel(t *testing.T, p string) string {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(root, p)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}
