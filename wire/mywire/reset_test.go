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

// answerCommand reads one command packet (sequence id 0), checks it is
// want, and answers with packets, sequence ids from 1 (or as seqs says,
// when set); then it waits for the client to close.
func answerCommand(t *testing.T, want []byte, packets [][]byte, seqs []byte) net.Conn {
	t.Helper()
	return answerCommands(t, [][]byte{want}, packets, seqs)
}

// answerCommands is answerCommand for commands sent at once: it reads
// them all (each sequence id 0, in order) before it answers any, so a
// client that waits for an answer between them times out.
func answerCommands(t *testing.T, wants [][]byte, packets [][]byte, seqs []byte) net.Conn {
	t.Helper()
	addr, done := wiretest.ServeOnce(t, func(c net.Conn) error {
		for _, want := range wants {
			s, p, err := mywire.ReadPacket(c, 1<<10)
			if err != nil {
				return err
			}
			if s != 0 || string(p) != string(want) {
				t.Errorf("server got seq %d %q, want seq 0 %q", s, p, want)
			}
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

// TestResetSession: both commands arrive before the server answers either
// (one round trip; answerCommands reads both first, so a client that
// waited for the first answer would time out), in order, each with
// sequence id 0; either answer not an OK fails it.
func TestResetSession(t *testing.T) {
	for name, tc := range map[string]struct {
		answers [][]byte
		seqs    []byte
		want    string // "" = success
	}{
		"ok":                 {[][]byte{ok(0x0002), ok(0x0002)}, []byte{1, 1}, ""},
		"reset refused":      {[][]byte{mywire.MarshalErr(1047, "Unknown command", true), ok(0x0002)}, []byte{1, 1}, "COM_RESET_CONNECTION: ERROR 1047"},
		"database gone":      {[][]byte{ok(0x0002), mywire.MarshalErr(1049, "Unknown database 'appdb'", true)}, []byte{1, 1}, "COM_INIT_DB: ERROR 1049"},
		"still in a txn":     {[][]byte{ok(0x0003), ok(0x0003)}, []byte{1, 1}, "still in a transaction"},
		"no second answer":   {[][]byte{ok(0x0002)}, []byte{1}, "read the answer to COM_INIT_DB"},
		"no answer in time":  {nil, nil, "read the answer to COM_RESET_CONNECTION"},
		"second out of step": {[][]byte{ok(0x0002), ok(0x0002)}, []byte{1, 2}, "sequence id"},
	} {
		t.Run(name, func(t *testing.T) {
			c := answerCommands(t, [][]byte{{0x1f}, append([]byte{0x02}, "appdb"...)}, tc.answers, tc.seqs)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			err := mywire.ResetSession(ctx, c, "appdb")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}
