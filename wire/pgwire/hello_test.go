package pgwire

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// serveOnce accepts one connection on a loopback listener and hands it to
// serve; the result comes back on the channel.
func serveOnce(t *testing.T, serve func(net.Conn) error) (addr string, done <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		ch <- serve(c)
	}()
	return ln.Addr().String(), ch
}

// selfSigned is a TLS server configuration for "localhost" and the pool
// that trusts it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// TestServerSideLogin: pgconn, a real client, logs in to a server made of
// this package's pieces: its startup message is read, its password asked
// in clear, and the greeting it gets (parameters, cancel key,
// ReadyForQuery) is what was sent.
func TestServerSideLogin(t *testing.T) {
	key := CancelKey{PID: 4242, Secret: []byte{1, 2, 3, 4}}
	addr, done := serveOnce(t, func(c net.Conn) error {
		h, err := ReadHello(c, HelloOptions{})
		if err != nil {
			return err
		}
		if h.Startup == nil || h.Startup.User() != "app" || h.Startup.Database() != "appdb" || h.Startup.RuntimeParams()["application_name"] != "wiretest" {
			return errors.New("unexpected startup")
		}
		pw, err := RequestPassword(h.Conn)
		if err != nil {
			return err
		}
		if pw != "the-token" {
			return errors.New("unexpected password " + pw)
		}
		if err := WriteGreeting(h.Conn, &Greeting{Params: map[string]string{"server_version": "15.99"}, Key: key, TxStatus: 'I', Negotiate: Negotiation(h.Startup)}); err != nil {
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
	serverTLS, pool := selfSigned(t)
	o := HelloOptions{TLS: serverTLS, RequireTLS: true}

	addr, done := serveOnce(t, func(c net.Conn) error {
		_, err := ReadHello(c, o)
		var pe *ProtocolError
		if errors.As(err, &pe) {
			WriteServerError(c, "FATAL", pe.Code, pe.Message)
		}
		return err
	})
	_, err := pgconn.Connect(ctx, "postgres://app@"+addr+"/appdb?sslmode=disable")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != CodeInvalidAuthorization {
		t.Fatalf("plaintext login: %v, want the server's 28000", err)
	}
	var pe *ProtocolError
	if err := <-done; !errors.As(err, &pe) || pe.Code != CodeInvalidAuthorization {
		t.Fatalf("server side: %v", err)
	}

	want := CancelKey{PID: 7, Secret: []byte{9, 8, 7, 6}}
	addr, done = serveOnce(t, func(c net.Conn) error {
		h, err := ReadHello(c, o)
		if err != nil {
			return err
		}
		if _, onTLS := h.Conn.(*tls.Conn); !onTLS || h.Cancel == nil || h.Cancel.PID != want.PID || !bytes.Equal(h.Cancel.Secret, want.Secret) {
			return errors.New("the cancel request did not arrive over TLS with its key")
		}
		return nil
	})
	if err := SendCancel(ctx, addr, &tls.Config{ServerName: "localhost", RootCAs: pool}, want); err != nil {
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
	addr, done := serveOnce(t, func(c net.Conn) error {
		h, err := ReadHello(c, HelloOptions{})
		if err == nil && h.Cancel != nil {
			return errors.New("the cancel key was sent in plaintext")
		}
		return nil
	})
	if err := SendCancel(ctx, addr, &tls.Config{ServerName: "localhost"}, CancelKey{PID: 1, Secret: []byte{1, 2, 3, 4}}); err == nil {
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
	got := make(chan *Hello, 1)
	go func() {
		h, _ := ReadHello(server, HelloOptions{})
		got <- h
	}()
	var answer [1]byte
	for _, code := range []uint32{CodeGSSENCRequest, CodeSSLRequest} {
		if _, err := client.Write(packet(code)); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Read(answer[:]); err != nil || answer[0] != 'N' {
			t.Fatalf("answer %q, %v; want N", answer[0], err)
		}
	}
	if _, err := client.Write(packet(3<<16, params("user", "u")...)); err != nil {
		t.Fatal(err)
	}
	if h := <-got; h == nil || h.Startup == nil || h.Startup.User() != "u" {
		t.Fatalf("hello %+v", h)
	}

	go func() {
		_, err := ReadHello(server, HelloOptions{})
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Code != CodeProtocolViolation {
			t.Errorf("a second SSLRequest: %v, want a protocol violation", err)
		}
		got <- nil
	}()
	client.Write(packet(CodeSSLRequest))
	client.Read(answer[:])
	client.Write(packet(CodeSSLRequest)) // refused: no answer comes
	<-got
}
