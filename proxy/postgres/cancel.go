package postgres

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// cancelTarget is where a client's cancel key leads: an upstream backend's
// own key and how to reach that upstream.
type cancelTarget struct {
	secret   []byte // the client's secret
	upstream Upstream
	key      CancelKey // the upstream's
}

// cancelMap hands each client its own random cancel key and remembers the
// upstream key behind it. Clients never see upstream keys: a key a client
// learns cannot cancel anyone else's query, and keys from different upstreams
// cannot collide.
type cancelMap struct {
	mu sync.Mutex
	m  map[uint32]cancelTarget
}

func newCancelMap() *cancelMap { return &cancelMap{m: map[uint32]cancelTarget{}} }

// register stores the upstream's key and returns the client's key and a
// function that forgets it when the connection ends.
func (c *cancelMap) register(u Upstream, upstreamKey CancelKey) (CancelKey, func(), error) {
	secret := make([]byte, 4) // the client speaks protocol 3.0: 4-byte secrets
	var pidBytes [4]byte
	c.mu.Lock()
	defer c.mu.Unlock()
	for range 100 {
		if _, err := rand.Read(pidBytes[:]); err != nil {
			return CancelKey{}, nil, fmt.Errorf("cancel key: %w", err)
		}
		// Keep the PID positive and non-zero: clients print and parse it as
		// a signed int32.
		pid := binary.BigEndian.Uint32(pidBytes[:]) & 0x7fffffff
		if _, taken := c.m[pid]; taken || pid == 0 {
			continue
		}
		if _, err := rand.Read(secret); err != nil {
			return CancelKey{}, nil, fmt.Errorf("cancel key: %w", err)
		}
		c.m[pid] = cancelTarget{secret: secret, upstream: u, key: upstreamKey}
		return CancelKey{PID: pid, Secret: secret}, func() {
			c.mu.Lock()
			delete(c.m, pid)
			c.mu.Unlock()
		}, nil
	}
	return CancelKey{}, nil, fmt.Errorf("cancel key: no free process id")
}

// lookup finds the target of a client's key, comparing secrets in constant
// time.
func (c *cancelMap) lookup(k CancelKey) (cancelTarget, bool) {
	c.mu.Lock()
	t, ok := c.m[k.PID]
	c.mu.Unlock()
	if !ok || subtle.ConstantTimeCompare(t.secret, k.Secret) != 1 {
		return cancelTarget{}, false
	}
	return t, true
}

// SendCancel delivers a CancelRequest for key to the server at addr. With a
// TLS config it asks for TLS first, as libpq 17 does, and refuses to send the
// key in the clear if the server declines. It waits for the server to close
// the connection, which it does once the request is processed.
func SendCancel(ctx context.Context, addr string, tlsConf *tls.Config, key CancelKey) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial %s for cancel: %w", addr, err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	conn.SetDeadline(deadline)
	var c net.Conn = conn
	if tlsConf != nil {
		var req [8]byte
		binary.BigEndian.PutUint32(req[0:4], 8)
		binary.BigEndian.PutUint32(req[4:8], codeSSL)
		if _, err := conn.Write(req[:]); err != nil {
			return fmt.Errorf("cancel: SSL request: %w", err)
		}
		var answer [1]byte
		if _, err := io.ReadFull(conn, answer[:]); err != nil {
			return fmt.Errorf("cancel: SSL answer: %w", err)
		}
		if answer[0] != 'S' {
			return fmt.Errorf("cancel: upstream %s refused TLS; not sending the cancel key in plaintext", addr)
		}
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("cancel: TLS handshake: %w", err)
		}
		c = tc
	}
	msg := make([]byte, 12+len(key.Secret))
	binary.BigEndian.PutUint32(msg[0:4], uint32(len(msg)))
	binary.BigEndian.PutUint32(msg[4:8], codeCancel)
	binary.BigEndian.PutUint32(msg[8:12], key.PID)
	copy(msg[12:], key.Secret)
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("cancel: send request: %w", err)
	}
	// The server closes when done; an error here (reset, close_notify
	// missing) is normal and means the same.
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 1024))
	return nil
}
