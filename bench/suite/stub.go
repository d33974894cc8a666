package main

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// stubPG is an upstream for the 5,000-connection idle run: a server that
// speaks just enough PostgreSQL over TLS to log anyone in (no password
// asked), answers every simple query with an empty result, and otherwise
// idles. 5,000 real backends would measure PostgreSQL, not the proxy.
type stubPG struct {
	ln    net.Listener
	tls   *tls.Config
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startStubPG(certPEM, keyPEM []byte) (*stubPG, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &stubPG{ln: ln, tls: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *stubPG) addr() string { return s.ln.Addr().String() }

func (s *stubPG) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

var stubParams = map[string]string{
	"server_version": "15.0 (stub)", "server_encoding": "UTF8", "client_encoding": "UTF8",
	"DateStyle": "ISO, MDY", "integer_datetimes": "on", "standard_conforming_strings": "on", "TimeZone": "UTC",
}

// serve logs the client in, then answers simple queries until it leaves.
func (s *stubPG) serve(c net.Conn) {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	h, err := pgwire.ReadHello(c, pgwire.HelloOptions{TLS: s.tls, RequireTLS: true})
	if err != nil || h.Startup == nil {
		return
	}
	conn := h.Conn
	if err := pgwire.WriteGreeting(conn, &pgwire.Greeting{Params: stubParams, Key: pgwire.CancelKey{PID: 1, Secret: []byte{0, 0, 0, 1}}, TxStatus: 'I'}); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	var hdr [5]byte
	answer, _ := (&pgproto3.EmptyQueryResponse{}).Encode(nil)
	answer, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(answer)
	for {
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return
		}
		n := int64(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 || n > 1<<20 {
			return
		}
		if _, err := io.CopyN(io.Discard, conn, n); err != nil {
			return
		}
		switch hdr[0] {
		case 'X':
			return
		case 'Q':
			if _, err := conn.Write(answer); err != nil {
				return
			}
		}
	}
}

// close stops accepting, ends every connection and waits for them.
func (s *stubPG) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
