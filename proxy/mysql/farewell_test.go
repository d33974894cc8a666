package mysql

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// pkt is one packet: 3-byte length, sequence id, payload.
func pkt(seq byte, payload string) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
}

// TestFarewellAnswersOnlyAWaitingCommand: the farewell is an ERR packet
// with the sequence id after the client's command, sent only while that
// command waits for its first answer; never inside or after a reply, nor
// while the command is still arriving, nor to an idle client that sends
// no command (TestFarewellAnswersTheNextCommand).
func TestFarewellAnswersOnlyAWaitingCommand(t *testing.T) {
	query := pkt(0, "\x03SELECT SLEEP(3)")
	long := pkt(0, "\x03"+strings.Repeat("x", 300))
	cases := []struct {
		name           string
		client, server []byte
		speak          bool
		seq            byte
	}{
		{"idle", nil, nil, false, 0},
		{"idle after a reply", query, pkt(1, "\x00\x00\x00\x02\x00\x00\x00"), false, 0},
		{"a command waits", query, nil, true, 1},
		{"a command in two packets waits", append(pkt(0, strings.Repeat("y", 10)), pkt(1, "z")...), nil, true, 2},
		{"a command still arriving", long[:100], nil, false, 0},
		{"a reply has begun", query, pkt(1, "\x01"), false, 0},
		{"a reply is cut in a packet", query, pkt(1, "\x01")[:2], false, 0},
	}
	for _, tc := range cases {
		for _, chunk := range []int{1, 5, 1 << 20} {
			f := newFarewell()
			f.nextWait = 10 * time.Millisecond
			feed := func(b []byte, into func([]byte)) {
				for len(b) > 0 {
					n := min(chunk, len(b))
					into(b[:n])
					b = b[n:]
				}
			}
			feed(tc.client, f.FromClient)
			feed(tc.server, f.FromUpstream)
			got := f.Message(io.EOF)
			if (got != nil) != tc.speak {
				t.Fatalf("%s (chunks of %d): message %q, want one: %v", tc.name, chunk, got, tc.speak)
			}
			if got == nil {
				continue
			}
			seq, p, err := mywire.ReadPacket(strings.NewReader(string(got)), mywire.ResultLimit)
			if err != nil || seq != tc.seq || len(p) < 9 || p[0] != 0xff {
				t.Fatalf("%s: seq %d payload %q, %v; want an ERR with seq %d", tc.name, seq, p, err, tc.seq)
			}
			e := mywire.ParseErr(p)
			if e.Code != mywire.ErUpstreamConnect || e.State != "08S01" || !strings.Contains(e.Message, "rds-iam-proxy: the upstream closed the connection") || !strings.Contains(e.Message, "Fix: ") {
				t.Fatalf("%s: %+v", tc.name, e)
			}
		}
	}
}

// TestFarewellDemoted: a command waiting on a writer the router demoted is
// answered with 1053 and the proxy's words, which say to connect again.
func TestFarewellDemoted(t *testing.T) {
	f := newFarewell()
	f.FromClient(pkt(0, "\x03SELECT SLEEP(10)"))
	got := f.Message(proxy.ErrDemoted)
	_, p, err := mywire.ReadPacket(strings.NewReader(string(got)), mywire.ResultLimit)
	if err != nil || len(p) < 9 || p[0] != 0xff {
		t.Fatalf("message %q: %v; want an ERR", got, err)
	}
	e := mywire.ParseErr(p)
	if e.Code != mywire.ErServerShutdown || e.State != "08S01" || !strings.Contains(e.Message, "failed over") || !strings.Contains(e.Message, "connect again") {
		t.Fatalf("%+v, want 1053 naming the failover and the fix", e)
	}
}

// TestFarewellAnswersTheNextCommand: a session idle when the upstream
// broke off (just logged in, or after a reply) answers the command the
// client sends next, within the wait, with the sequence id after it; a
// client that sends none is only closed.
func TestFarewellAnswersTheNextCommand(t *testing.T) {
	okReply := pkt(1, "\x00\x00\x00\x02\x00\x00\x00")
	for name, before := range map[string][2][]byte{
		"just logged in": {nil, nil},
		"after a reply":  {pkt(0, "\x03SELECT 1"), okReply},
	} {
		f := newFarewell()
		f.FromClient(before[0])
		f.FromUpstream(before[1])
		go func() {
			time.Sleep(50 * time.Millisecond)
			f.FromClient(pkt(0, "\x03INSERT INTO hits VALUES (1)"))
		}()
		got := f.Message(proxy.ErrDemoted)
		seq, p, err := mywire.ReadPacket(strings.NewReader(string(got)), mywire.ResultLimit)
		if err != nil || seq != 1 || len(p) < 9 || p[0] != 0xff || mywire.ParseErr(p).Code != mywire.ErServerShutdown {
			t.Fatalf("%s: message %q (seq %d, %v); want ERR 1053 at seq 1, answering the next command", name, got, seq, err)
		}
	}
	f := newFarewell()
	f.nextWait = 50 * time.Millisecond
	start := time.Now()
	if got := f.Message(io.EOF); got != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("no command: message %q after %s; want none after the wait", got, time.Since(start))
	}
}

// BenchmarkFarewellFromUpstream: following the framing of 16 KB relay
// chunks of small rows, the relay's added cost per chunk.
func BenchmarkFarewellFromUpstream(b *testing.B) {
	var chunk []byte
	for seq := byte(1); len(chunk) < 16<<10; seq++ {
		chunk = append(chunk, pkt(seq, strings.Repeat("r", 60))...)
	}
	chunk = chunk[:16<<10]
	f := newFarewell()
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		f.FromUpstream(chunk)
	}
}

// slowAfterWrite deschedules the goroutine that wrote to the upstream
// right after the write, as a loaded machine may: the server's answer is
// relayed before that goroutine runs again.
type slowAfterWrite struct{ net.Conn }

func (c slowAfterWrite) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	time.Sleep(100 * time.Millisecond)
	return n, err
}

// TestFarewellNotInsideAResultSet: the farewell must hear the client's
// command before the server's answer to it, however the two relay
// goroutines are scheduled; otherwise a break at a packet boundary inside
// the result set gets an ERR the client reads as packets out of order.
func TestFarewellNotInsideAResultSet(t *testing.T) {
	client, proxyClient := netpair.TCP(t)
	proxyUpstream, server := netpair.TCP(t)
	go proxy.Relay(context.Background(), proxyClient, slowAfterWrite{proxyUpstream}, proxy.RelayOptions{Farewell: newFarewell(), Linger: time.Second})
	query := pkt(0, "\x03SELECT * FROM big")
	client.Write(query)
	if _, err := io.ReadFull(server, make([]byte, len(query))); err != nil {
		t.Fatal(err)
	}
	start := append(pkt(1, "\x01"), pkt(2, "coldef")...) // the result set begins
	server.Write(start)
	time.Sleep(300 * time.Millisecond)
	server.(*net.TCPConn).SetLinger(0)
	server.Close() // a reset at a packet boundary inside the result set
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	all, _ := io.ReadAll(client)
	if len(all) != len(start) {
		t.Fatalf("the client got %d bytes, want the %d of the partial result set and nothing after: %q", len(all), len(start), all)
	}
}
