package integration

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// rawConn is a hand-driven MySQL client, for what drivers never send.
type rawConn struct {
	t *testing.T
	net.Conn
}

func dialRaw(t *testing.T, port string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &rawConn{t, c}
}

func (c *rawConn) read() (seq byte, payload []byte, err error) {
	var h [4]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(h[0]) | int(h[1])<<8 | int(h[2])<<16
	payload = make([]byte, n)
	_, err = io.ReadFull(c, payload)
	return h[3], payload, err
}

func (c *rawConn) mustRead() []byte {
	c.t.Helper()
	_, p, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

func (c *rawConn) write(seq byte, payload []byte) {
	c.t.Helper()
	h := []byte{byte(len(payload)), byte(len(payload) >> 8), byte(len(payload) >> 16), seq}
	if _, err := c.Write(append(h, payload...)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// login answers the greeting with caps (∩ the server's) and reads the OK.
func (c *rawConn) login(caps uint32) *mywire.Greeting {
	c.t.Helper()
	g, err := mywire.ParseGreeting(c.mustRead())
	if err != nil {
		c.t.Fatal(err)
	}
	resp := &mywire.HandshakeResponse{Caps: (caps | mywire.CapLongPassword) & g.Caps, Charset: 45, User: iamUser,
		Database: appDB, AuthPlugin: mywire.PluginNativePassword}
	b, err := resp.Marshal()
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(1, b)
	seq, p, err := c.read()
	if err != nil || len(p) == 0 || p[0] != 0 || seq != 2 {
		c.t.Fatalf("login: seq %d packet %q err %v; want OK with sequence id 2", seq, p, err)
	}
	return g
}

// TestMySQLDeprecateEOFFollowsTheClient: a client without
// CLIENT_DEPRECATE_EOF gets EOF packets after the column definitions and
// the rows; one with it gets none after the columns and an OK (0xFE
// header) at the end. The upstream session framing follows the client.
func TestMySQLDeprecateEOFFollowsTheClient(t *testing.T) {
	w.enter(t)
	port := startMySQLProxy(t)
	base := mywire.CapProtocol41 | mywire.CapSecureConnection | mywire.CapPluginAuth | mywire.CapLongFlag |
		mywire.CapTransactions | mywire.CapConnectWithDB
	for _, deprecate := range []bool{false, true} {
		caps := base
		if deprecate {
			caps |= mywire.CapDeprecateEOF
		}
		c := dialRaw(t, port)
		c.login(caps)
		c.write(0, append([]byte{0x03}, "SELECT 1 AS a, 'x' AS b"...))
		if p := c.mustRead(); len(p) != 1 || p[0] != 2 {
			t.Fatalf("column count packet %q, want 2", p)
		}
		c.mustRead()
		c.mustRead()
		next := c.mustRead()
		isEOF := len(next) == 5 && next[0] == 0xfe
		if deprecate == isEOF {
			t.Fatalf("deprecate_eof=%v: packet after the columns %q (EOF: %v)", deprecate, next, isEOF)
		}
		row := next
		if !deprecate {
			row = c.mustRead()
		}
		if string(row) != "\x011\x01x" {
			t.Fatalf("row %q, want 1, x", row)
		}
		end := c.mustRead()
		if end[0] != 0xfe || (len(end) == 5) == deprecate {
			t.Fatalf("deprecate_eof=%v: end of rows %q; want %s", deprecate, end, map[bool]string{false: "EOF", true: "OK with a 0xFE header"}[deprecate])
		}
		c.write(0, []byte{0x01}) // COM_QUIT
	}
}

// TestMySQLBadHandshakes: garbage, truncated and oversized packets during
// the handshake get a clear ERR or a close, never a hang or a crash, and
// the proxy keeps serving.
func TestMySQLBadHandshakes(t *testing.T) {
	w.enter(t)
	port := startMySQLProxy(t, func(c *launch.Config) { c.HandshakeTimeout = config.Duration(2 * time.Second) })
	errPacket := func(t *testing.T, c *rawConn) (uint16, string) {
		t.Helper()
		_, p, err := c.read()
		if err != nil {
			t.Fatalf("no ERR packet: %v", err)
		}
		if len(p) < 3 || p[0] != 0xff {
			t.Fatalf("packet %q is not an ERR", p)
		}
		code := binary.LittleEndian.Uint16(p[1:])
		msg := string(p[3:])
		if strings.HasPrefix(msg, "#") {
			msg = msg[6:]
		}
		if !strings.HasPrefix(msg, "rds-iam-proxy: ") {
			t.Fatalf("ERR %d %q is not the proxy's", code, msg)
		}
		return code, msg
	}
	closed := func(t *testing.T, c *rawConn) {
		t.Helper()
		if _, _, err := c.read(); err == nil {
			t.Fatal("the connection stayed open")
		}
	}
	cases := []struct {
		name string
		send func(c *rawConn)
		code uint16
		want string
	}{
		{"garbage", func(c *rawConn) { c.write(1, []byte("hello, this is not MySQL at all")) }, mywire.ErHandshake, "malformed handshake response"},
		{"truncated frame", func(c *rawConn) {
			c.Write([]byte{100, 0, 0, 1, 'a', 'b', 'c'})
			c.Conn.(*net.TCPConn).CloseWrite()
		}, mywire.ErNetReadError, "ended early"},
		{"oversized frame", func(c *rawConn) { c.Write([]byte{0xff, 0xff, 0xff, 1}) }, mywire.ErNetPacketTooLarge, "over the limit"},
		{"auth data longer than the packet", func(c *rawConn) {
			p := binary.LittleEndian.AppendUint32(nil, mywire.CapProtocol41|mywire.CapSecureConnection|mywire.CapPluginAuthLenenc|mywire.CapPluginAuth)
			p = append(p, make([]byte, 28)...)
			p = append(p, "app_user\x00"...)
			p = append(p, 0xfd, 0xff, 0xff, 0x7f) // 8 MB of auth data, announced
			c.write(1, p)
		}, mywire.ErHandshake, "packet ends early"},
		{"string without its NUL", func(c *rawConn) {
			p := binary.LittleEndian.AppendUint32(nil, mywire.CapProtocol41)
			p = append(p, make([]byte, 28)...)
			p = append(p, "app_user-and-no-terminator"...)
			c.write(1, p)
		}, mywire.ErHandshake, "NUL"},
		{"pre-4.1 client", func(c *rawConn) {
			c.write(1, append(make([]byte, 32), "app_user\x00\x00"...))
		}, mywire.ErHandshake, "pre-4.1 protocol"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, port)
			c.mustRead() // greeting
			tc.send(c)
			code, msg := errPacket(t, c)
			if code != tc.code || !strings.Contains(msg, tc.want) {
				t.Fatalf("ERR %d %q; want %d with %q", code, msg, tc.code, tc.want)
			}
			closed(t, c)
		})
	}
	t.Run("TLS request without TLS offered", func(t *testing.T) {
		c := dialRaw(t, port)
		c.mustRead()
		ssl := binary.LittleEndian.AppendUint32(nil, mywire.CapProtocol41|mywire.CapSSL)
		c.write(1, append(ssl, make([]byte, 28)...))
		code, msg := errPacket(t, c)
		if code != mywire.ErHandshake || !strings.Contains(msg, "--ssl-mode=DISABLED") {
			t.Fatalf("ERR %d %q", code, msg)
		}
		closed(t, c)
	})
	t.Run("silent client", func(t *testing.T) {
		c := dialRaw(t, port)
		c.mustRead()
		start := time.Now()
		// Told why before the close: it did not answer within the
		// first-packet timeout (here the handshake timeout, 2s).
		if code, msg := errPacket(t, c); code != mywire.ErHandshake || !strings.Contains(msg, "did not answer the server's greeting within 2s") {
			t.Fatalf("a silent client was sent ERR %d %q", code, msg)
		}
		closed(t, c)
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("a silent client was dropped after %v; the handshake timeout is 2s", took)
		}
	})
	if out, stderr, err := mysqlCLI(t, port, iamUser, "-e", "SELECT 1"); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("the proxy stopped serving after bad handshakes: %v %q %s", err, out, stderr)
	}
}

// checkGreetingConnectionID logs in by hand and checks that the connection
// id in the proxy's greeting is the upstream session's CONNECTION_ID().
func checkGreetingConnectionID(t *testing.T, port string) {
	t.Helper()
	raw := dialRaw(t, port)
	g := raw.login(mywire.CapProtocol41 | mywire.CapSecureConnection | mywire.CapPluginAuth | mywire.CapDeprecateEOF)
	raw.write(0, append([]byte{0x03}, "SELECT CONNECTION_ID()"...))
	raw.mustRead() // column count
	raw.mustRead() // column definition
	row := raw.mustRead()
	if want := fmt.Sprint(g.ConnectionID); len(row) < 1 || string(row[1:]) != want {
		t.Fatalf("CONNECTION_ID() row %q; the greeting said %s", row, want)
	}
}
