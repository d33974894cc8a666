package integration

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowFlood is a crowd of raw TCP clients that never finish their login:
// each sends its login one byte at a time, a byte a second (a slowloris),
// or stops after a few bytes.
type slowFlood struct {
	mu     sync.Mutex
	conns  []net.Conn // nil once cut
	alive  atomic.Int64
	cut    atomic.Int64 // connections the proxy ended
	failed atomic.Int64 // dials that failed
	stop   chan struct{}
	done   sync.WaitGroup
}

// startSlowFlood dials n connections to addr, 100 at a time, and then
// sends each one byte of payload per second; with perSecond 0 it sends the
// whole payload once and then nothing. It returns once every dial is done.
func startSlowFlood(t *testing.T, addr string, n int, payload []byte, perSecond bool) *slowFlood {
	t.Helper()
	f := &slowFlood{conns: make([]net.Conn, n), stop: make(chan struct{})}
	t.Cleanup(f.close)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err != nil {
					f.failed.Add(1)
					continue
				}
				if !perSecond {
					c.SetWriteDeadline(time.Now().Add(time.Second))
					c.Write(payload)
				}
				f.mu.Lock()
				f.conns[i] = c
				f.mu.Unlock()
				f.alive.Add(1)
			}
		})
	}
	wg.Wait()
	if !perSecond {
		return f
	}
	f.done.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for sent := 0; ; sent++ {
			f.mu.Lock()
			for i, c := range f.conns {
				if c == nil {
					continue
				}
				c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				if _, err := c.Write(payload[sent%len(payload) : sent%len(payload)+1]); err != nil {
					c.Close()
					f.conns[i] = nil
					f.alive.Add(-1)
					f.cut.Add(1)
				}
			}
			f.mu.Unlock()
			select {
			case <-f.stop:
				return
			case <-tick.C:
			}
		}
	})
	return f
}

// close ends every connection still open.
func (f *slowFlood) close() {
	select {
	case <-f.stop:
		return
	default:
		close(f.stop)
	}
	f.done.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, c := range f.conns {
		if c != nil {
			c.Close()
			f.conns[i] = nil
		}
	}
}

// pgStartupPacket is a whole Postgres startup message for user.
func pgStartupPacket(user string) []byte {
	body := append([]byte{0, 3, 0, 0}, "user\x00"+user+"\x00database\x00"+appDB+"\x00\x00"...)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body...)
}

// mysqlResponsePacket is the start of a MySQL handshake response: a
// packet header (sequence id 1) and the capability flags.
func mysqlResponsePacket() []byte {
	return []byte{60, 0, 0, 1, 0x85, 0xa6, 0x3f, 0x20, 0, 0, 0, 1, 0x21}
}

// peakSampler reads the sidecar's metrics every 200 ms and keeps each
// series' highest value, without t (it runs on its own goroutine) and
// without keep-alive (an idle admin connection would be a goroutine more).
type peakSampler struct {
	admin  string
	series []string
	extra  func() (string, float64) // another value to track (e.g. the database's connections)
	mu     sync.Mutex
	peak   map[string]float64
	stop   chan struct{}
	done   sync.WaitGroup
}

func startPeakSampler(admin string, extra func() (string, float64), series ...string) *peakSampler {
	p := &peakSampler{admin: admin, series: series, extra: extra, peak: map[string]float64{}, stop: make(chan struct{})}
	p.done.Go(func() {
		for {
			vals := scrape(admin, series...)
			if extra != nil {
				k, v := extra()
				vals[k] = v
			}
			p.mu.Lock()
			for k, v := range vals {
				p.peak[k] = max(p.peak[k], v)
			}
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
	return p
}

// halt stops sampling and returns the peaks.
func (p *peakSampler) halt() map[string]float64 {
	close(p.stop)
	p.done.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

// scrape reads some series from the admin port's /metrics (missing ones
// are left out).
func scrape(admin string, series ...string) map[string]float64 {
	out := map[string]float64{}
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		return out
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(b), "\n") {
		for _, name := range series {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					out[name] = f
				}
			}
		}
	}
	return out
}

// settled waits until the sidecar's fds and goroutines are back within
// slack of the baseline, and fails with the numbers if they do not come
// back within limit.
func settled(t *testing.T, admin string, base map[string]float64, slack map[string]float64, limit time.Duration) {
	t.Helper()
	var now map[string]float64
	deadline := time.Now().Add(limit)
	for {
		now = scrape(admin, "process_open_fds", "go_goroutines")
		ok := len(now) == 2
		for k, v := range now {
			ok = ok && v <= base[k]+slack[k]
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after the flood: %v; baseline %v (slack %v)", limit, now, base, slack)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// baseline waits for the sidecar to be quiet and returns its fds and
// goroutines: the lowest of a few samples, so a scrape in flight does not
// raise it.
func baseline(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	base := map[string]float64{}
	for i := range 5 {
		for k, v := range scrape(admin, "process_open_fds", "go_goroutines") {
			if i == 0 || v < base[k] {
				base[k] = v
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(base) != 2 {
		t.Fatalf("no fd and goroutine metrics: %v", base)
	}
	return base
}

func describe(f *slowFlood) string {
	return fmt.Sprintf("%d still open, %d cut by the proxy, %d dials failed", f.alive.Load(), f.cut.Load(), f.failed.Load())
}
