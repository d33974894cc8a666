package localpg

import (
	"io"
	"strings"
	"sync"
)

// logRingSize bounds the memory kept per server: enough for the startup
// messages that explain a failure, small enough for benchmarks that leave a
// server running for long.
const logRingSize = 64 << 10

// logRing keeps the last logRingSize bytes written to it. The server's
// output is always copied here, even when Options.Log is set, so that
// startup errors can quote it and Start can detect "could not bind".
type logRing struct {
	mu   sync.Mutex
	buf  []byte // len <= logRingSize; oldest byte at start when !full
	next int    // write position once full
	full bool
}

func (r *logRing) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(p)
	if len(p) >= logRingSize {
		r.buf = append(r.buf[:0], p[len(p)-logRingSize:]...)
		r.next, r.full = 0, true
		return n, nil
	}
	for len(p) > 0 {
		if !r.full {
			room := logRingSize - len(r.buf)
			k := min(room, len(p))
			r.buf = append(r.buf, p[:k]...)
			p = p[k:]
			if len(r.buf) == logRingSize {
				r.full, r.next = true, 0
			}
			continue
		}
		k := copy(r.buf[r.next:], p)
		p = p[k:]
		r.next = (r.next + k) % logRingSize
	}
	return n, nil
}

// String returns the buffered output, oldest first.
func (r *logRing) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return string(r.buf)
	}
	return string(r.buf[r.next:]) + string(r.buf[:r.next])
}

// tail returns at most the last n lines of s, trimmed, for error messages:
// the lines that explain a failure are the last ones.
func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// teeWriter sends the server's output to the ring and, if set, to the
// caller's writer. Errors from the caller's writer are ignored: a broken
// log sink must not stall or kill the server (whose stderr pipe would fill).
type teeWriter struct {
	ring  *logRing
	extra io.Writer
}

func (w *teeWriter) Write(p []byte) (int, error) {
	w.ring.Write(p)
	if w.extra != nil {
		_, _ = w.extra.Write(p)
	}
	return len(p), nil
}
