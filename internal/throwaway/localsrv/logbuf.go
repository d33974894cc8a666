package localsrv

import (
	"io"
	"strings"
	"sync"
)

// LogRingSize bounds the memory kept per server: enough for the startup
// messages that explain a failure, small enough for benchmarks that leave a
// server running for long.
const LogRingSize = 64 << 10

// LogRing keeps the last LogRingSize bytes written to it. A server's
// output is always copied into one, even when the caller has a log of its
// own, so that startup errors can quote it. The zero value is ready.
type LogRing struct {
	mu   sync.Mutex
	buf  []byte // len <= LogRingSize; oldest byte at start when !full
	next int    // write position once full
	full bool
}

func (r *LogRing) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(p)
	if len(p) >= LogRingSize {
		r.buf = append(r.buf[:0], p[len(p)-LogRingSize:]...)
		r.next, r.full = 0, true
		return n, nil
	}
	for len(p) > 0 {
		if !r.full {
			room := LogRingSize - len(r.buf)
			k := min(room, len(p))
			r.buf = append(r.buf, p[:k]...)
			p = p[k:]
			if len(r.buf) == LogRingSize {
				r.full, r.next = true, 0
			}
			continue
		}
		k := copy(r.buf[r.next:], p)
		p = p[k:]
		r.next = (r.next + k) % LogRingSize
	}
	return n, nil
}

// String returns the buffered output, oldest first.
func (r *LogRing) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return string(r.buf)
	}
	return string(r.buf[r.next:]) + string(r.buf[:r.next])
}

// Tail returns at most the last n lines of s, trimmed, for error messages:
// the lines that explain a failure are the last ones.
func Tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Tee returns a writer that sends a server's output to ring and, if set,
// to extra. Errors from extra are ignored: a broken log sink must not
// stall or kill the server (whose stderr pipe would fill).
func Tee(ring *LogRing, extra io.Writer) io.Writer {
	return &teeWriter{ring: ring, extra: extra}
}

type teeWriter struct {
	ring  *LogRing
	extra io.Writer
}

func (w *teeWriter) Write(p []byte) (int, error) {
	_, _ = w.ring.Write(p)
	if w.extra != nil {
		_, _ = w.extra.Write(p)
	}
	return len(p), nil
}
