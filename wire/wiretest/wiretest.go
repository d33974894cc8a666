// Package wiretest holds what the codec tests of wire/pgwire and
// wire/mywire need alike: a one-connection loopback server and a TLS
// configuration from a throwaway CA. Tests only; it may use the emulator,
// which the codecs themselves must not import.
package wiretest

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
)

// ServeOnce accepts one connection on a loopback listener and hands it to
// serve, with a 10 s deadline on the connection; serve's result comes back
// on done.
func ServeOnce(t testing.TB, serve func(net.Conn) error) (addr string, done <-chan error) {
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

// ServerTLS is a TLS server configuration for "localhost" from a throwaway
// CA named caName, and the pool that trusts it.
func ServerTLS(t testing.TB, caName string) (*tls.Config, *x509.CertPool) {
	t.Helper()
	ca, err := emulator.NewCA(caName)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ServerCert("localhost")
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, ca.Pool()
}
