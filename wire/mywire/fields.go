package mywire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// errShort is a packet that ends inside a field.
var errShort = errors.New("packet ends early")

// reader walks a packet's fields; the first failure sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail(errShort)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte1() byte {
	b := r.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) uint16() uint16 {
	b := r.bytes(2)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(b)
}

func (r *reader) uint32() uint32 {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

// cstring reads a NUL-terminated string; at the end of the packet a
// missing NUL is tolerated when lenient (some servers omit the last one).
func (r *reader) cstring(lenient bool) string {
	if r.err != nil {
		return ""
	}
	for i, c := range r.b {
		if c == 0 {
			s := string(r.b[:i])
			r.b = r.b[i+1:]
			return s
		}
	}
	if !lenient {
		r.fail(errors.New("string without its terminating NUL"))
		return ""
	}
	s := string(r.b)
	r.b = nil
	return s
}

// lenenc reads a length-encoded integer.
func (r *reader) lenenc() uint64 {
	switch first := r.byte1(); {
	case r.err != nil:
		return 0
	case first < 0xfb:
		return uint64(first)
	case first == 0xfc:
		return uint64(r.uint16())
	case first == 0xfd:
		b := r.bytes(3)
		if b == nil {
			return 0
		}
		return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16
	case first == 0xfe:
		b := r.bytes(8)
		if b == nil {
			return 0
		}
		return binary.LittleEndian.Uint64(b)
	default:
		r.fail(fmt.Errorf("invalid length-encoded integer prefix 0x%x", first))
		return 0
	}
}

// lenencBytes reads a length-encoded string.
func (r *reader) lenencBytes() []byte {
	n := r.lenenc()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail(errShort)
		return nil
	}
	return r.bytes(int(n))
}

func (r *reader) rest() []byte {
	if r.err != nil {
		return nil
	}
	v := r.b
	r.b = nil
	return v
}

func appendUint16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func appendUint32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }

func appendCString(b []byte, s string) []byte { return append(append(b, s...), 0) }

// appendLenenc appends a length-encoded integer.
func appendLenenc(b []byte, v uint64) []byte {
	switch {
	case v < 0xfb:
		return append(b, byte(v))
	case v <= 0xffff:
		return append(b, 0xfc, byte(v), byte(v>>8))
	case v <= 0xffffff:
		return append(b, 0xfd, byte(v), byte(v>>8), byte(v>>16))
	default:
		return binary.LittleEndian.AppendUint64(append(b, 0xfe), v)
	}
}
