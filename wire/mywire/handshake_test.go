package mywire_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/wiretest"

	"github.com/go-sql-driver/mysql"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// okPacket is a minimal OK: no rows, no insert id, autocommit, no
// warnings.
var okPacket = []byte{0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00}

// serverGreeting is what a MariaDB server greets with.
func serverGreeting(t *testing.T) *mywire.Greeting {
	t.Helper()
	scramble, err := mywire.NewScramble()
	if err != nil {
		t.Fatal(err)
	}
	return &mywire.Greeting{
		ServerVersion: "5.5.5-10.11.0-MariaDB", ConnectionID: 77, Scramble: scramble, Charset: 45, Status: 2,
		Caps: mywire.CapLongFlag | mywire.CapConnectWithDB | mywire.CapProtocol41 | mywire.CapSSL | mywire.CapTransactions |
			mywire.CapSecureConnection | mywire.CapMultiResults | mywire.CapPluginAuth | mywire.CapConnectAttrs |
			mywire.CapPluginAuthLenenc | mywire.CapDeprecateEOF,
		AuthPlugin: mywire.PluginNativePassword,
	}
}

// clearPasswordServer greets, switches the client to
// mysql_clear_password as RDS does for IAM users, checks the password and
// answers OK, then an OK to one command (a ping).
func clearPasswordServer(t *testing.T, g *mywire.Greeting, o mywire.GreetOptions, user, password string) func(net.Conn) error {
	return func(c net.Conn) error {
		h, err := mywire.Greet(c, g, o)
		if err != nil {
			return err
		}
		if h.Response.User != user || h.Response.Database != "appdb" {
			return errors.New("unexpected user or database: " + h.Response.User + " " + h.Response.Database)
		}
		answer, seq, err := mywire.AuthSwitch(h.Conn, h.Seq+1, mywire.PluginClearPassword, nil)
		if err != nil {
			return err
		}
		if !bytes.Equal(answer, append([]byte(password), 0)) {
			return mywire.WriteServerError(h.Conn, seq, mywire.ErAccessDenied, "Access denied for user '"+user+"'")
		}
		if err := mywire.WritePacket(h.Conn, seq, okPacket); err != nil {
			return err
		}
		if _, _, err := mywire.ReadPacket(h.Conn, mywire.ResponseLimit); err != nil {
			return err
		}
		return mywire.WritePacket(h.Conn, 1, okPacket)
	}
}

// TestServerSideWithARealClient: go-sql-driver/mysql logs in to a server
// made of this package's pieces, switched to the cleartext plugin.
func TestServerSideWithARealClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g := mywire.Mirror(serverGreeting(t), serverGreeting(t).Scramble, mywire.PluginNativePassword, false)
	addr, done := wiretest.ServeOnce(t, clearPasswordServer(t, g, mywire.GreetOptions{}, "app", "the-token"))
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User, cfg.Passwd, cfg.DBName = "tcp", addr, "app", "the-token", "appdb"
	cfg.AllowCleartextPasswords = true
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestClientLogin: the client side logs in to the server side over TLS,
// answering the switch to the cleartext plugin; the failures it can meet
// come back typed.
func TestClientLogin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srvTLS, pool := wiretest.ServerTLS(t, "mywire test CA")
	clientTLS := &tls.Config{ServerName: "localhost", RootCAs: pool}
	client := &mywire.HandshakeResponse{Caps: mywire.CapProtocol41 | mywire.CapSecureConnection | mywire.CapPluginAuth | mywire.CapPluginAuthLenenc | mywire.CapDeprecateEOF, MaxPacket: 16 << 20}
	login := mywire.Login{User: "app", Database: "appdb", Password: "the-token", Plugin: mywire.PluginClearPassword, OnlyPlugin: true, Client: client}
	dial := func(addr string) *mywire.Pending {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		p, err := mywire.ReadGreeting(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	addr, done := wiretest.ServeOnce(t, clearPasswordServer(t, serverGreeting(t), mywire.GreetOptions{TLS: srvTLS}, "app", "the-token"))
	p := dial(addr)
	if p.Greeting.ConnectionID != 77 {
		t.Fatalf("greeting %+v", p.Greeting)
	}
	s, err := p.Login(ctx, clientTLS, login)
	if err != nil {
		t.Fatal(err)
	}
	if _, onTLS := s.Conn.(*tls.Conn); !onTLS || !mywire.IsOK(s.OK) {
		t.Fatalf("session over %T, OK %x", s.Conn, s.OK)
	}
	mywire.WritePacket(s.Conn, 0, []byte{0x0e}) // COM_PING
	if _, ok, err := mywire.ReadPacket(s.Conn, mywire.ResultLimit); err != nil || !mywire.IsOK(ok) {
		t.Fatalf("ping after the login: %x, %v", ok, err)
	}
	s.Conn.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		greet  func(*mywire.Greeting)
		serve  func(h *mywire.Hello) error
		expect func(error) bool
	}{
		{"a server without TLS", func(g *mywire.Greeting) { g.Caps &^= mywire.CapSSL }, nil,
			func(err error) bool { return errors.Is(err, mywire.ErrNoTLS) }},
		{"a switch to another plugin", nil, func(h *mywire.Hello) error {
			mywire.AuthSwitch(h.Conn, h.Seq+1, mywire.PluginNativePassword, h.Response.AuthData) // the client refuses and closes
			return nil
		}, func(err error) bool {
			var pe *mywire.UnsupportedPluginError
			return errors.As(err, &pe) && pe.Plugin == mywire.PluginNativePassword
		}},
		{"an ERR", nil, func(h *mywire.Hello) error {
			return mywire.WriteServerError(h.Conn, h.Seq+1, mywire.ErPluginNotLoaded, "Plugin 'AWSAuthenticationPlugin' is not loaded")
		}, func(err error) bool {
			var se *mywire.ServerError
			return errors.As(err, &se) && se.Code == mywire.ErPluginNotLoaded && se.State == "HY000"
		}},
		{"a server that breaks off", nil, func(h *mywire.Hello) error { return nil },
			func(err error) bool {
				var pe *mywire.ServerProtocolError
				return errors.As(err, &pe) && pe.Step == "read the login result"
			}},
	}
	for _, tc := range cases {
		g := serverGreeting(t)
		if tc.greet != nil {
			tc.greet(g)
		}
		addr, done := wiretest.ServeOnce(t, func(c net.Conn) error {
			h, err := mywire.Greet(c, g, mywire.GreetOptions{TLS: srvTLS})
			if err != nil || tc.serve == nil {
				return nil // the client gives up before its answer
			}
			return tc.serve(h)
		})
		if _, err := dial(addr).Login(ctx, clientTLS, login); !tc.expect(err) {
			t.Errorf("%s: login error %v", tc.name, err)
		}
		if err := <-done; err != nil {
			t.Errorf("%s: server side: %v", tc.name, err)
		}
	}
}

// TestAbandonIsAFailedLogin: an abandoned login is a full login as the
// given user with no password and no TLS, not a close in the middle of the
// handshake.
func TestAbandonIsAFailedLogin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, done := wiretest.ServeOnce(t, func(c net.Conn) error {
		h, err := mywire.Greet(c, serverGreeting(t), mywire.GreetOptions{})
		if err != nil {
			return err
		}
		if h.TLS || h.Response.User != "nobody-at-all" || len(h.Response.AuthData) != 0 {
			return errors.New("the abandoned login was not a plain login as the given user without a password")
		}
		return mywire.WriteServerError(h.Conn, h.Seq+1, mywire.ErAccessDenied, "Access denied")
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := mywire.ReadGreeting(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	p.Abandon("nobody-at-all")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
