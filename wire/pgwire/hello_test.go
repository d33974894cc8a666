package pgwire_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/wiretest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// request is an opening packet with no body: SSLRequest, GSSENCRequest.
func request(code uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), code)
}

// startup is a protocol 3.0 StartupMessage for user.
func startup(user string) []byte {
	body := binary.BigEndian.AppendUint32(nil, 3<<16)
	body = append(append(append(body, "user\x00"...), user...), 0, 0)
	return append(binary.BigEndian.AppendUint32(nil, uint32(4+len(body))), body...)
}

// TestServerSideLogin: pgconn, a real client, logs in to a server made of
// this package's pieces: its startup message is read, its password asked
// in clear, and the greeting it gets (parameters, cancel key,
// ReadyForQuery) is what was sent.
func TestServerSideLogin(t *testing.T) {
	key := pgwire.CancelKey{PID: 4242, Secret: []byte{1, 2, 3, 4}}
	addr, done := wiretest.ServeOnce(t, func(c net.Conn) error {
		h, err := pgwire.ReadHello(c, pgwire.HelloOptions{})
		if err != nil {
			return err
		}
		if h.Startup == nil || h.Startup.User() != "app" || h.Startup.Database() != "appdb" || h.Startup.RuntimeParams()["application_name"] != "wiretest" {
			return errors.New("unexpected startup")
		}
		pw, err := pgwire.RequestPassword(h.Conn)
		if err != nil {
			return err
		}
		if pw != "the-token" {
			return errors.New("unexpected password " + pw)
		}
		if err := pgwire.WriteGreeting(h.Conn, &pgwire.Greeting{Params: map[string]string{"server_version": "15.99"}, Key: key, TxStatus: 'I', Negotiate: pgwire.Negotiation(h.Startup)}); err != nil {
			return err
		}
		// Wait for the client's Terminate and close.
		var b [64]byte
		h.Conn.Read(b[:])
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, "postgres://app:the-token@"+addr+"/appdb?sslmode=disable&application_name=wiretest")
	if err != nil {
		t.Fatal(err)
	}
	if v := conn.ParameterStatus("server_version"); v != "15.99" {
		t.Errorf("server_version %q", v)
	}
	if conn.PID() != key.PID || !bytes.Equal(conn.SecretKey(), key.Secret) || conn.TxStatus() != 'I' {
		t.Errorf("key %d %x, status %c", conn.PID(), conn.SecretKey(), conn.TxStatus())
	}
	conn.Close(ctx)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRequireTLS: a startup message without TLS is refused with 28000,
// which the client sees as the server's error; with TLS the same login
// gets through, and a cancel request over TLS arrives with its key.
func TestRequireTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tlsConf, pool := wiretest.ServerTLS(t, "pgwire test CA")
	o := pgwire.HelloOptions{TLS: tlsConf, RequireTLS: true}

	addr, done := wiretest.ServeOnce(t, func(c net.Conn) error {
		_, err := pgwire.ReadHello(c, o)
		var pe *pgwire.ProtocolError
		if errors.As(err, &pe) {
			pgwire.WriteServerError(c, "FATAL", pe.Code, pe.Message)
		}
		return err
	})
	_, err := pgconn.Connect(ctx, "postgres://app@"+addr+"/appdb?sslmode=disable")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != pgwire.CodeInvalidAuthorization {
		t.Fatalf("plaintext login: %v, want the server's 28000", err)
	}
	var pe *pgwire.ProtocolError
	if err := <-done; !errors.As(err, &pe) || pe.Code != pgwire.CodeInvalidAuthorization {
		t.Fatalf("server side: %v", err)
	}

	want := pgwire.CancelKey{PID: 7, Secret: []byte{9, 8, 7, 6}}
	addr, done = wiretest.ServeOnce(t, func(c net.Conn) error {
		h, err := pgwire.ReadHello(c, o)
		if err != nil {
			return err
		}
		if _, onTLS := h.Conn.(*tls.Conn); !onTLS || h.Cancel == nil || h.Cancel.PID != want.PID || !bytes.Equal(h.Cancel.Secret, want.Secret) {
			return errors.New("the cancel request did not arrive over TLS with its key")
		}
		return nil
	})
	if err := pgwire.SendCancel(ctx, addr, &tls.Config{ServerName: "localhost", RootCAs: pool}, want); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSendCancelRefusesPlaintext: a server that declines TLS never gets
// the cancel key.
func TestSendCancelRefusesPlaintext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, done := wiretest.ServeOnce(t, func(c net.Conn) error {
		h, err := pgwire.ReadHello(c, pgwire.HelloOptions{})
		if err == nil && h.Cancel != nil {
			return errors.New("the cancel key was sent in plaintext")
		}
		return nil
	})
	if err := pgwire.SendCancel(ctx, addr, &tls.Config{ServerName: "localhost"}, pgwire.CancelKey{PID: 1, Secret: []byte{1, 2, 3, 4}}); err == nil {
		t.Fatal("cancel sent to a server that declined TLS")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestEncryptionRequestsDeclined: without a TLS configuration GSSENCRequest
// and SSLRequest are each answered 'N' and the client goes on in the same
// connection, as libpq does with gssencmode=prefer and sslmode=prefer; a
// second request of a kind is a protocol violation.
func TestEncryptionRequestsDeclined(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	client.SetDeadline(time.Now().Add(5 * time.Second))
	server.SetDeadline(time.Now().Add(5 * time.Second))
	got := make(chan *pgwire.Hello, 1)
	go func() {
		h, _ := pgwire.ReadHello(server, pgwire.HelloOptions{})
		got <- h
	}()
	var answer [1]byte
	for _, code := range []uint32{pgwire.CodeGSSENCRequest, pgwire.CodeSSLRequest} {
		if _, err := client.Write(request(code)); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Read(answer[:]); err != nil || answer[0] != 'N' {
			t.Fatalf("answer %q, %v; want N", answer[0], err)
		}
	}
	if _, err := client.Write(startup("u")); err != nil {
		t.Fatal(err)
	}
	if h := <-got; h == nil || h.Startup == nil || h.Startup.User() != "u" {
		t.Fatalf("hello %+v", h)
	}

	go func() {
		_, err := pgwire.ReadHello(server, pgwire.HelloOptions{})
		var pe *pgwire.ProtocolError
		if !errors.As(err, &pe) || pe.Code != pgwire.CodeProtocolViolation {
			t.Errorf("a second SSLRequest: %v, want a protocol violation", err)
		}
		got <- nil
	}()
	client.Write(request(pgwire.CodeSSLRequest))
	client.Read(answer[:])
	client.Write(request(pgwire.CodeSSLRequest)) // refused: no answer comes
	<-got
}
