package tlsca

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// dnsAnswering is a resolver whose DNS server (in process, over the
// resolver's Dial hook) answers every A query with ip and every other
// query with no records: a name that resolves where the test says,
// whatever /etc/hosts and the machine's DNS would say.
func dnsAnswering(t *testing.T, ip net.IP) *net.Resolver {
	t.Helper()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		client, server := net.Pipe()
		go serveDNSOnce(server, ip.To4())
		return client, nil
	}}
}

// serveDNSOnce answers one DNS query on c, framed as over TCP (a two-byte
// length first: a net.Pipe is not a PacketConn, so Go's resolver speaks
// the stream form), then closes c.
func serveDNSOnce(c net.Conn, ip4 net.IP) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var n [2]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return
	}
	q := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(c, q); err != nil || len(q) < 12 {
		return
	}
	// The question: labels up to a zero length, then type and class.
	end := 12
	for end < len(q) && q[end] != 0 {
		end += int(q[end]) + 1
	}
	end += 5
	if end > len(q) {
		return
	}
	qtype := binary.BigEndian.Uint16(q[end-4:])
	resp := make([]byte, 0, end+16)
	resp = append(resp, q[0], q[1], 0x81, 0x80) // id; response, recursion desired and available, no error
	resp = append(resp, 0, 1)                   // one question
	answers := 0
	if qtype == 1 && ip4 != nil {
		answers = 1
	}
	resp = append(resp, 0, byte(answers), 0, 0, 0, 0)
	resp = append(resp, q[12:end]...)
	if answers == 1 {
		resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4) // name at offset 12, A, IN, TTL 60, 4 bytes
		resp = append(resp, ip4...)
	}
	binary.BigEndian.PutUint16(n[:], uint16(len(resp)))
	c.Write(append(n[:], resp...))
}

// loopbackListener accepts connections on 127.0.0.1 until the test ends.
func loopbackListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln
}

// TestPlaintextDialerChecksTheAddressDialed: a plaintext upstream connects
// only to loopback addresses, decided on the address resolved at connect
// time: a name (even one under .localhost) that resolves elsewhere is
// refused before connect(2), with a message that names the address, the
// name and the fix.
func TestPlaintextDialerChecksTheAddressDialed(t *testing.T) {
	ln := loopbackListener(t)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	dialOK := func(name string, dial func(context.Context, string) (net.Conn, error), addr string) {
		t.Helper()
		c, err := dial(ctx, addr)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c.Close()
	}
	dialOK("loopback literal", PlaintextDialer(nil), ln.Addr().String())
	dialOK("name resolving to loopback", PlaintextDialer(dnsAnswering(t, net.IPv4(127, 0, 0, 1))), "db.localhost:"+port)

	refused := func(name string, dial func(context.Context, string) (net.Conn, error), addr string, want ...string) {
		t.Helper()
		start := time.Now()
		c, err := dial(ctx, addr)
		if err == nil {
			c.Close()
			t.Fatalf("%s: connected to %s", name, addr)
		}
		var r *PlaintextRefusedError
		if !errors.As(err, &r) {
			t.Fatalf("%s: %v, want a PlaintextRefusedError", name, err)
		}
		// Refused before connecting: no SYN to wait for.
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: refusal took %v", name, d)
		}
		for _, w := range append(want, "not a loopback address", "Fix: dial 127.0.0.1 or ::1") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", name, err, w)
			}
		}
		if f, ok := (Upstream{Host: "db.localhost", Mode: Disable}).Explain(err, time.Now()); !ok || f.Text() != r.Error() {
			t.Errorf("%s: Explain = %v, %v", name, f, ok)
		}
	}
	refused("remote literal", PlaintextDialer(nil), "192.0.2.10:5432", "192.0.2.10:5432")
	refused(".localhost name resolving elsewhere", PlaintextDialer(dnsAnswering(t, net.IPv4(192, 0, 2, 10))), "db.localhost:"+port,
		"192.0.2.10:"+port+" (db.localhost:"+port+" resolved to it)")
}

// TestCheckPlaintextDial: a dial hook (a tunnel, a test) for a plaintext
// upstream must hand back a connection to a loopback TCP peer; anything
// else is closed before a byte is written to it.
func TestCheckPlaintextDial(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ln := loopbackListener(t)
	var d net.Dialer
	c, err := CheckPlaintextDial(func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	})(ctx, ln.Addr().String())
	if err != nil {
		t.Fatalf("loopback peer refused: %v", err)
	}
	c.Close()

	client, server := net.Pipe()
	defer server.Close()
	_, err = CheckPlaintextDial(func(context.Context, string) (net.Conn, error) { return client, nil })(ctx, "db.localhost:5432")
	var r *PlaintextRefusedError
	if !errors.As(err, &r) || !strings.Contains(err.Error(), "pipe") {
		t.Fatalf("pipe peer: %v, want a refusal naming the pipe", err)
	}
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := server.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("the refused connection was not closed unused: read %d, %v", n, err)
	}
}
