package mywire_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/wiretest"
)

// answerOnce reads one command packet, checks it is want, and answers
// with the packet answer (sequence id seq), or nothing when answer is nil.
func answerOnce(t *testing.T, want []byte, seq byte, answer []byte) net.Conn {
	t.Helper()
	if answer == nil {
		return answerCommand(t, want, nil, nil)
	}
	return answerCommand(t, want, [][]byte{answer}, []byte{seq})
}

// answerCommand reads one command packet (sequence id 0), checks it is
// want, and answers with packets, sequence ids from 1 (or as seqs says,
// when set); then it waits for the client to close.
func answerCommand(t *testing.T, want []byte, packets [][]byte, seqs []byte) net.Conn {
	t.Helper()
	addr, done := wiretest.ServeOnce(t, func(c net.Conn) error {
		s, p, err := mywire.ReadPacket(c, 1<<10)
		if err != nil {
			return err
		}
		if s != 0 || string(p) != string(want) {
			t.Errorf("server got seq %d %q, want seq 0 %q", s, p, want)
		}
		for i, pk := range packets {
			seq := byte(i + 1)
			if seqs != nil {
				seq = seqs[i]
			}
			if err := mywire.WritePacket(c, seq, pk); err != nil {
				return err
			}
		}
		var b [1]byte
		c.Read(b[:]) // until the client closes
		return nil
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); <-done })
	return c
}

// ok is an OK payload with status flags.
func ok(status uint16) []byte { return []byte{0x00, 0, 0, byte(status), byte(status >> 8), 0, 0} }

func TestResetConnection(t *testing.T) {
	for name, tc := range map[string]struct {
		seq    byte
		answer []byte
		want   string // "" = success
	}{
		"ok":                {1, ok(0x0002), ""},
		"still in a txn":    {1, ok(0x0003), "still in a transaction"},
		"error":             {1, mywire.MarshalErr(1047, "Unknown command", true), "1047"},
		"out of step":       {2, ok(0x0002), "sequence id"},
		"not an OK":         {1, []byte{0x01, 0x02}, "not an OK"},
		"no answer in time": {1, nil, "read the answer"},
	} {
		t.Run(name, func(t *testing.T) {
			c := answerOnce(t, []byte{0x1f}, tc.seq, tc.answer)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			err := mywire.ResetConnection(ctx, c)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestInitDB(t *testing.T) {
	c := answerOnce(t, append([]byte{0x02}, "appdb"...), 1, ok(0x0002))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := mywire.InitDB(ctx, c, "appdb"); err != nil {
		t.Fatal(err)
	}
}
