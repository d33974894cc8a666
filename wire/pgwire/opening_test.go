package pgwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func packet(code uint32, body ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	b = binary.BigEndian.AppendUint32(b, code)
	return append(b, body...)
}

func params(kv ...string) []byte {
	var b []byte
	for _, s := range kv {
		b = append(append(b, s...), 0)
	}
	return append(b, 0)
}

func TestReadOpening(t *testing.T) {
	v3 := uint32(3 << 16)
	cases := []struct {
		name  string
		in    []byte
		check func(*opening) bool
		err   string
	}{
		{"startup 3.0", packet(v3, params("user", "u", "database", "d", "application_name", "a")...),
			func(o *opening) bool {
				return o.startup.Minor == 0 && o.startup.User() == "u" && o.startup.Database() == "d" && o.startup.RuntimeParams()["application_name"] == "a" && len(o.startup.RuntimeParams()) == 1
			}, ""},
		{"startup 3.2 with options", packet(v3|2, params("user", "u", "_pq_.x", "1")...),
			func(o *opening) bool {
				return o.startup.Minor == 2 && o.startup.Database() == "u" && len(o.startup.ProtocolOptions) == 1 && o.startup.Params["_pq_.x"] == ""
			}, ""},
		{"ssl", packet(CodeSSLRequest), func(o *opening) bool { return o.code == CodeSSLRequest }, ""},
		{"gss", packet(CodeGSSENCRequest), func(o *opening) bool { return o.code == CodeGSSENCRequest }, ""},
		{"cancel", packet(CodeCancelRequest, 0, 0, 0, 7, 1, 2, 3, 4), func(o *opening) bool {
			return o.cancel.PID == 7 && bytes.Equal(o.cancel.Secret, []byte{1, 2, 3, 4})
		}, ""},
		{"cancel 3.2 long key", packet(CodeCancelRequest, append([]byte{0, 0, 0, 7}, bytes.Repeat([]byte{9}, 32)...)...), func(o *opening) bool {
			return len(o.cancel.Secret) == 32
		}, ""},
		{"cancel too short", packet(CodeCancelRequest, 0, 0), nil, "invalid cancel request"},
		{"ssl with body", packet(CodeSSLRequest, 1), nil, "invalid length 9"},
		{"huge", []byte{0, 1, 0, 0}, nil, "invalid startup packet length 65536"},
		{"tiny", []byte{0, 0, 0, 7}, nil, "invalid startup packet length 7"},
		{"tls", []byte{0x16, 3, 1, 0}, nil, "started TLS directly"},
		{"v2", packet(2 << 16), nil, "unsupported frontend protocol 2.0"},
		{"no user", packet(v3, params("database", "d")...), nil, "no PostgreSQL user name"},
		{"empty user", packet(v3, params("user", "")...), nil, "no PostgreSQL user name"},
		{"no terminator", packet(v3, 'u', 0, 'x', 0), nil, "layout"},
		{"value missing", packet(v3, 'u', 0), nil, "has no value"},
		{"trailing bytes", packet(v3, append(params("user", "u"), 'x')...), nil, "after the terminator"},
		{"truncated", []byte{0, 0, 0, 100, 0, 3}, nil, "read startup packet"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := readOpening(bytes.NewReader(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(o) {
				t.Fatalf("unexpected result %+v %+v", o, o.startup)
			}
		})
	}
}

// TestReadOpeningIsExact: bytes after the packet stay unread (a TLS
// ClientHello after an SSLRequest must reach the TLS layer).
func TestReadOpeningIsExact(t *testing.T) {
	r := bytes.NewReader(append(packet(CodeSSLRequest), "NEXT"...))
	if _, err := readOpening(r); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 4 {
		t.Fatalf("%d bytes left, want 4", r.Len())
	}
}

// TestOpeningErrorsCarryTheServersCode: each way a client breaks the
// opening comes back as a *ProtocolError with the SQLSTATE PostgreSQL
// answers it with, and the two a caller may word its own way (direct TLS,
// another protocol version) can be told apart.
func TestOpeningErrorsCarryTheServersCode(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		code string
		is   func(error) bool
	}{
		{"not postgres", []byte("GET / HTTP/1.1\r\n"), CodeProtocolViolation, nil},
		{"direct TLS", []byte{0x16, 3, 1, 0}, CodeProtocolViolation, func(err error) bool { return errors.Is(err, ErrDirectTLS) }},
		{"protocol 2", packet(2 << 16), CodeFeatureNotSupported, func(err error) bool {
			var v *VersionError
			return errors.As(err, &v) && v.Major == 2 && v.Minor == 0
		}},
		{"no user", packet(3<<16, params("database", "d")...), CodeInvalidAuthorization, nil},
	}
	for _, c := range cases {
		_, err := readOpening(bytes.NewReader(c.in))
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Code != c.code {
			t.Errorf("%s: %v, want a *ProtocolError with code %s", c.name, err, c.code)
			continue
		}
		if c.is != nil && !c.is(err) {
			t.Errorf("%s: %v does not carry its specific cause", c.name, err)
		}
	}
}

// FuzzReadOpening: any input ends in a result or an error, never a panic,
// and never reads more than the packet's bounded length.
func FuzzReadOpening(f *testing.F) {
	f.Add(packet(3<<16, params("user", "u")...))
	f.Add(packet(CodeCancelRequest, 0, 0, 0, 1, 2, 3, 4, 5))
	f.Add(packet(CodeSSLRequest))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		o, err := readOpening(r)
		if read := len(in) - r.Len(); read > maxStartupLen {
			t.Fatalf("read %d bytes", read)
		}
		if err == nil && o.startup != nil && o.startup.User() == "" {
			t.Fatal("startup without user accepted")
		}
	})
}
