package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// hugeParameterStatus is the length a hostile upstream announces: just
// under pgconn's own default bound (about 1 GiB), so only the proxy's
// login bound stops it.
const hugeParameterStatus = 1<<30 - 8

// hostileUpstream listens on loopback and, for one connection, speaks just
// enough PostgreSQL to get past authentication (cleartext password, then
// AuthenticationOk), then announces a ParameterStatus of
// hugeParameterStatus bytes and sends none of them. It reports on done
// when the client has gone (or after 30 s).
func hostileUpstream(t *testing.T) (addr string, done <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan error, 1)
	go func() {
		ch <- func() error {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			be := pgproto3.NewBackend(c, c)
			if _, err := be.ReceiveStartupMessage(); err != nil {
				return err
			}
			be.Send(&pgproto3.AuthenticationCleartextPassword{})
			if err := be.Flush(); err != nil {
				return err
			}
			if err := be.SetAuthType(pgproto3.AuthTypeCleartextPassword); err != nil {
				return err
			}
			if _, err := be.Receive(); err != nil {
				return err
			}
			be.Send(&pgproto3.AuthenticationOk{})
			if err := be.Flush(); err != nil {
				return err
			}
			header := []byte{'S', 0, 0, 0, 0}
			binary.BigEndian.PutUint32(header[1:], hugeParameterStatus+4)
			if _, err := c.Write(append(header, "server_version\x00"...)); err != nil {
				return err
			}
			// Wait for the client to give up.
			_, err = io.Copy(io.Discard, c)
			return err
		}()
	}()
	return ln.Addr().String(), ch
}

// TestUpstreamLoginMessageBounded: an upstream that announces a 1 GiB
// message during the login makes the login fail at once with an error
// that says so, without the proxy allocating what was announced.
func TestUpstreamLoginMessageBounded(t *testing.T) {
	addr, done := hostileUpstream(t)
	host, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)
	trust, err := tlsca.NewTrust(tlsca.Upstream{Host: host, Mode: tlsca.Disable})
	if err != nil {
		t.Fatal(err)
	}
	up := Upstream{Host: host, Port: port, Trust: trust}
	d, err := NewDialer(up)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err = d.Login(ctx, Login{User: "app", Database: "app", Password: "token"})
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	// Everything the test binary allocated meanwhile: far below the
	// announced size.
	alloc := after.TotalAlloc - before.TotalAlloc
	if alloc > 64<<20 {
		t.Errorf("the login allocated %d bytes for a message announced as %d", alloc, hugeParameterStatus)
	}
	t.Logf("login failed after %v, %d bytes allocated meanwhile", took, alloc)
	var tooBig *pgproto3.ExceededMaxBodyLenErr
	if !errors.As(err, &tooBig) || tooBig.MaxExpectedBodyLen != pgwire.MaxLoginMessage || tooBig.ActualBodyLen != hugeParameterStatus {
		t.Fatalf("login: %v (after %v); want the message bound exceeded", err, took)
	}
	if took > 10*time.Second {
		t.Errorf("the login took %v to fail", took)
	}

	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Error("the proxy kept the hostile upstream's connection open")
	}

	e := (&Proxy{cfg: Config{Upstream: up}}).Explain(ctx, "app", err)
	for _, want := range []string{"announced a " + strconv.Itoa(hugeParameterStatus) + "-byte message during the login", "more than the 1048576 bytes", "Fix:"} {
		if !strings.Contains(e.Text(), want) {
			t.Errorf("client message %q lacks %q", e.Text(), want)
		}
	}
	if sqlState(e) != pgwire.CodeConnectionFailure {
		t.Errorf("SQLSTATE %s", sqlState(e))
	}
}
