package integration

import (
	"strings"
	"testing"
	"time"
)

// TestFaultLatencyAndBandwidth puts 200 ms of latency each way, then a
// 10 KB/s limit each way, between the proxy (the real binary) and the
// upstream, for Postgres and MySQL.
//
// What the client sees: no error, only slowness. psql and the mariadb
// client log in and query through the slow path (each login takes
// several round trips: 1-3 s at 400 ms; the 30 s connect timeouts of the
// clients and the 3 s upstream TCP timeout of the proxy never fire, since
// the slow path acknowledges everything), and a large result arrives whole
// through the drivers: 2 MB under latency, 50 KB at 10 KB/s, every row
// and byte. Meanwhile the same proxy's clean routes serve other sessions.
// Once the toxic is gone a new login works at once (measured, logged),
// and the proxy's goroutines and fds return to their baseline.
func TestFaultLatencyAndBandwidth(t *testing.T) {
	w.enter(t)
	r := startFaultRig(t)
	forEngine(t, r, func(t *testing.T, e engine) {
		in := e.inj(r)

		slow := in.bothWays(t, "latency", "latency", map[string]any{"latency": 200})
		start := time.Now()
		out, stderr, err := e.cli(t, e.port(r), "SELECT 41 + 1")
		took := time.Since(start)
		if err != nil || strings.TrimSpace(out) != "42" {
			t.Fatalf("login and query at 200 ms each way: %v %q %s", err, out, stderr)
		}
		if took < 400*time.Millisecond {
			t.Fatalf("login and query took %s, under one round trip: the latency toxic is not in the path", took)
		}
		t.Logf("latency 200 ms each way: login + query with the CLI took %s", took.Round(time.Millisecond))
		start = time.Now()
		rows, size, err := e.bigResult(t, e.port(r), 2000)
		if err != nil || rows != 2000 || size != 2000*1000 {
			t.Fatalf("2 MB result at 200 ms each way: %d rows, %d bytes, %v", rows, size, err)
		}
		t.Logf("latency 200 ms each way: 2 MB result (login included) in %s", time.Since(start).Round(time.Millisecond))
		e.otherSessionsWork(t, r)
		slow()
		t.Logf("recovery after the latency ended: %s", e.recovery(t, e.port(r), 10*time.Second).Round(time.Millisecond))

		narrow := in.bothWays(t, "bandwidth", "bandwidth", map[string]any{"rate": 10})
		start = time.Now()
		rows, size, err = e.bigResult(t, e.port(r), 50)
		took = time.Since(start)
		if err != nil || rows != 50 || size != 50*1000 {
			t.Fatalf("50 KB result at 10 KB/s: %d rows, %d bytes, %v", rows, size, err)
		}
		if took < 4*time.Second {
			t.Fatalf("50 KB at 10 KB/s arrived in %s: the bandwidth toxic is not in the path", took)
		}
		t.Logf("10 KB/s each way: 50 KB result (login included) in %s", took.Round(time.Millisecond))
		e.otherSessionsWork(t, r)
		narrow()
		t.Logf("recovery after the bandwidth limit ended: %s", e.recovery(t, e.port(r), 10*time.Second).Round(time.Millisecond))
	})
}
