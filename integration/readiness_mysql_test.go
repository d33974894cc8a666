package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localmy"
)

// fromOtherHost forwards connections to target from the source address
// 127.0.0.2. MariaDB never counts connection errors from 127.0.0.1 (nor
// with skip_name_resolve), so this is how a test makes the proxy look like
// what it is to RDS: another host, whose broken handshakes count against
// max_connect_errors. It counts the connections it forwards.
type fromOtherHost struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
}

func startFromOtherHost(t *testing.T, target string) *fromOtherHost {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fromOtherHost{ln: ln}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.accepted.Add(1)
			f.wg.Go(func() {
				defer c.Close()
				up, err := d.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				// Either side ending ends both, as a closed TCP
				// connection would.
				done := make(chan struct{}, 2)
				go func() { io.Copy(up, c); done <- struct{}{} }()
				go func() { io.Copy(c, up); done <- struct{}{} }()
				<-done
			})
		}
	})
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

func (f *fromOtherHost) Addr() string { return f.ln.Addr().String() }

// TestReadinessBackendCheckDoesNotBlockMySQLHost: a MariaDB with
// max_connect_errors=3 (and name resolution on, so that it counts),
// reached from another host, behind the emulated RDS front; the proxy
// serves it through the front (what clients use) and directly (the server
// a readiness probe reaches on RDS). 25 /readiness calls over about 8 s
// answer ready, reach the database a handful of times (shared and
// cached checks), and leave the host unblocked: a real client still logs
// in. With the old bare TCP dial the host was blocked (ERROR 1129) after
// the fourth probe.
func TestReadinessBackendCheckDoesNotBlockMySQLHost(t *testing.T) {
	w.enter(t)
	const name = "mariadb-private.backend.invalid"
	certPEM, keyPEM, err := w.aws.CA.ServerCertPEM(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	db, err := localmy.Start(ctx, localmy.Options{
		TLS:      &localmy.TLSFiles{CertPEM: certPEM, KeyPEM: keyPEM},
		Settings: map[string]string{"max_connect_errors": "3", "skip_name_resolve": "OFF"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Stop() })
	const password = "backend-password-for-this-test"
	if err := db.Exec(ctx, "CREATE DATABASE "+appDB,
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s' REQUIRE SSL", iamUser, password),
		fmt.Sprintf("GRANT ALL ON %s.* TO '%s'@'%%'", appDB, iamUser)); err != nil {
		t.Fatal(err)
	}
	fwd := startFromOtherHost(t, db.Addr())
	front, err := w.aws.AWS.StartMySQL(w.aws.CA, emulator.MySQLOptions{
		Backend: fwd.Addr(), BackendPassword: password, IAMUsers: []string{iamUser},
		BackendTLS: &tls.Config{RootCAs: w.aws.CA.Pool(), ServerName: name, MinVersion: tls.VersionTLS12},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })

	myPort := freePort(t)
	cfg := fmt.Sprintf("ca_bundle: %s\nreadiness_check_backend: true\nupstreams:\n", w.caFile) +
		fmt.Sprintf("  - name: my\n    engine: mysql\n    endpoint: %s:%d\n    dial_address: %s\n    listen: 127.0.0.1:%s\n",
			front.Endpoint(), front.Port(), front.Addr(), myPort) +
		fmt.Sprintf("  - name: my-direct\n    engine: mysql\n    endpoint: %s:3306\n    dial_address: %s\n    region: %s\n    listen: 127.0.0.1:%s\n",
			name, fwd.Addr(), w.aws.AWS.Region(), freePort(t))
	s := startSidecar(t, cfg)

	start := time.Now()
	for i := range 25 {
		if code, body := s.get(t, "/readiness"); code != 200 {
			t.Fatalf("readiness call %d after %v: %d %q", i, time.Since(start).Round(time.Millisecond), code, body)
		}
		time.Sleep(300 * time.Millisecond)
	}
	took := time.Since(start)
	// Two upstreams per check, one check per 3 s at most (the first and
	// the last count whole).
	if n, most := fwd.accepted.Load(), 2*(int64(took/(3*time.Second))+2); n > most {
		t.Errorf("25 readiness calls in %v reached the database %d times, want at most %d (checks shared and cached for 3s)", took.Round(time.Millisecond), n, most)
	} else {
		t.Logf("25 readiness calls in %v reached the database %d times", took.Round(time.Millisecond), n)
	}

	var user string
	if err := mysqlDB(t, myPort, iamUser).QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&user); err != nil || user != iamUser+"@%" {
		t.Fatalf("a real client after the readiness calls: %q %v", user, err)
	}
}
