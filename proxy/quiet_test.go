//go:build linux && !386

package proxy

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"
)

// TestQuiet: a socket with nothing waiting is quiet; one with a byte
// waiting, or whose peer has closed, is not; a TLS connection is looked
// through to its socket, and the look takes nothing from the stream.
func TestQuiet(t *testing.T) {
	a, b := netpair.TCP(t)
	if q, known := Quiet(a); !q || !known {
		t.Fatalf("idle socket: quiet %v known %v, want true true", q, known)
	}
	tc := tls.Client(a, &tls.Config{}) // never handshaken: only its NetConn is used
	if q, known := Quiet(tc); !q || !known {
		t.Fatalf("idle socket under TLS: quiet %v known %v, want true true", q, known)
	}
	if q, known := Quiet(tls.Client(newWatchedConn(a.(*net.TCPConn), time.Minute), &tls.Config{})); !q || !known {
		t.Fatalf("idle socket under TLS and the dead-path watch: quiet %v known %v, want true true", q, known)
	}
	if _, err := b.Write([]byte{'N'}); err != nil {
		t.Fatal(err)
	}
	waitQuiet(t, a, false)
	var one [1]byte
	if _, err := a.Read(one[:]); err != nil || one[0] != 'N' {
		t.Fatalf("the byte looked at was taken: read %q, %v", one[0], err)
	}
	waitQuiet(t, a, true)
	b.Close()
	waitQuiet(t, a, false)
	if q, known := Quiet(&net.UnixConn{}); q || known {
		t.Fatalf("a socket it cannot look at: quiet %v known %v, want false false", q, known)
	}
}

// waitQuiet waits for loopback delivery (at most 5 s) until Quiet says want.
func waitQuiet(t *testing.T, c net.Conn, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		q, known := Quiet(c)
		if !known {
			t.Fatal("Quiet does not know for a TCP socket")
		}
		if q == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Quiet stayed %v, want %v", q, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
