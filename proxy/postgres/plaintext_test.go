package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
)

// TestPlaintextLoginOnlyToLoopback: with --tls-mode disable the login
// checks the address it actually connects to, so the token never goes in
// plaintext to another machine: a dial address that is not loopback is
// refused before connecting, and a dial hook (a tunnel) whose connection
// has no loopback TCP peer is closed before the startup message. The
// failure is explained with its cause and fix.
func TestPlaintextLoginOnlyToLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	plain := tlsca.Upstream{Host: "127.0.0.1", Mode: tlsca.Disable}
	trust, err := tlsca.NewTrust(plain)
	if err != nil {
		t.Fatal(err)
	}
	login := Login{User: "app", Database: "app", Password: "token-that-must-not-travel"}

	d, err := NewDialer(Upstream{Host: "127.0.0.1", Port: 5432, DialAddress: "192.0.2.10:5432", Trust: trust})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = d.Login(ctx, login)
	var refused *tlsca.PlaintextRefusedError
	if !errors.As(err, &refused) || refused.Dialed != "192.0.2.10:5432" {
		t.Fatalf("login to a remote dial address: %v, want a refusal", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("refusal took %v", took)
	}
	x := proxy.ExplainLoginFailure(err, proxy.Target{Host: "127.0.0.1", DialAddr: "192.0.2.10:5432", Tunnel: true, User: "app", TLS: plain})
	if x == nil || !strings.Contains(x.Text(), "refused to connect to 192.0.2.10:5432") || !strings.Contains(x.Text(), "Fix:") {
		t.Errorf("explained as %+v", x)
	}

	client, server := net.Pipe()
	defer server.Close()
	d, err = NewDialer(Upstream{Host: "127.0.0.1", Port: 5432, Trust: trust,
		Dial: func(context.Context, string) (net.Conn, error) { return client, nil }})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(server)
		got <- b
	}()
	if _, err := d.Login(ctx, login); !errors.As(err, &refused) {
		t.Fatalf("login through a tunnel without a loopback peer: %v, want a refusal", err)
	}
	select {
	case b := <-got:
		if len(b) != 0 {
			t.Fatalf("the refused connection carried %d bytes (%q)", len(b), b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the refused connection was not closed")
	}
}
