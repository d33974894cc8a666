package mywire

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// Greeting is the server's first packet (Protocol::HandshakeV10).
type Greeting struct {
	ServerVersion string // MariaDB's starts "5.5.5-" for old clients' sake; kept as is
	ConnectionID  uint32 // mirrored to the client so KILL QUERY <id> hits the right session
	Scramble      []byte // auth-plugin-data, 20 bytes
	Caps          uint32
	ExtCaps       uint32 // MariaDB extended capabilities; only when hasExtCaps(Caps)
	Charset       byte   // default collation id
	Status        uint16
	AuthPlugin    string
}

// ParseGreeting decodes a greeting payload. A server that refuses the
// connection outright (too many connections, host blocked) sends an ERR
// packet instead: that comes back as a *ServerError.
func ParseGreeting(p []byte) (*Greeting, error) {
	if len(p) > 0 && p[0] == 0xff {
		return nil, ParseErr(p)
	}
	r := &reader{b: p}
	if v := r.byte1(); r.err == nil && v != 10 {
		return nil, fmt.Errorf("server greeting: protocol version %d, want 10", v)
	}
	g := &Greeting{ServerVersion: r.cstring(false), ConnectionID: r.uint32()}
	part1 := r.bytes(8)
	r.byte1() // filler
	g.Caps = uint32(r.uint16())
	if r.err != nil {
		return nil, fmt.Errorf("server greeting: %w", r.err)
	}
	g.Scramble = append([]byte(nil), part1...)
	if len(r.b) == 0 {
		return nil, errors.New("server greeting: a pre-4.1 server is not supported")
	}
	g.Charset = r.byte1()
	g.Status = r.uint16()
	g.Caps |= uint32(r.uint16()) << 16
	authLen := int(r.byte1())
	r.bytes(6)
	ext := r.uint32()
	if hasExtCaps(g.Caps) {
		g.ExtCaps = ext
	}
	if g.Caps&CapSecureConnection != 0 {
		n := max(13, authLen-8)
		part2 := r.bytes(n)
		if r.err == nil {
			// The last byte is a NUL terminator, not scramble.
			if part2[n-1] == 0 {
				part2 = part2[:n-1]
			}
			g.Scramble = append(g.Scramble, part2...)
		}
	}
	if g.Caps&CapPluginAuth != 0 {
		g.AuthPlugin = r.cstring(true)
	}
	if r.err != nil {
		return nil, fmt.Errorf("server greeting: %w", r.err)
	}
	return g, nil
}

// Marshal encodes g as a greeting payload. Scramble must be 20 bytes.
func (g *Greeting) Marshal() []byte {
	b := make([]byte, 0, 128)
	b = append(b, 10)
	b = appendCString(b, g.ServerVersion)
	b = appendUint32(b, g.ConnectionID)
	b = append(b, g.Scramble[:8]...)
	b = append(b, 0)
	b = appendUint16(b, uint16(g.Caps))
	b = append(b, g.Charset)
	b = appendUint16(b, g.Status)
	b = appendUint16(b, uint16(g.Caps>>16))
	if g.Caps&CapPluginAuth != 0 {
		b = append(b, byte(len(g.Scramble)+1))
	} else {
		b = append(b, 0)
	}
	b = append(b, 0, 0, 0, 0, 0, 0)
	if hasExtCaps(g.Caps) {
		b = appendUint32(b, g.ExtCaps)
	} else {
		b = append(b, 0, 0, 0, 0)
	}
	if g.Caps&CapSecureConnection != 0 {
		b = append(b, g.Scramble[8:]...)
		b = append(b, 0)
	}
	if g.Caps&CapPluginAuth != 0 {
		b = appendCString(b, g.AuthPlugin)
	}
	return b
}

// NewScramble returns 20 random bytes in 1..127, as servers make them:
// some clients treat the scramble as a NUL-terminated string.
func NewScramble() ([]byte, error) {
	s := make([]byte, 20)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("make a scramble: %w", err)
	}
	for i := range s {
		s[i] = s[i]%127 + 1
	}
	return s, nil
}

// Mirror is the greeting a relaying front shows a client for the server's
// greeting: the same version, connection id (so KILL QUERY <id> hits the
// right session), charset, status and capabilities (without compression,
// multi-factor auth, and TLS unless offerTLS), with the front's own
// scramble and plugin.
func Mirror(server *Greeting, scramble []byte, plugin string, offerTLS bool) *Greeting {
	g := *server
	g.Caps = clientGreetingCaps(server.Caps, offerTLS)
	g.Scramble = scramble
	g.AuthPlugin = plugin
	return &g
}
