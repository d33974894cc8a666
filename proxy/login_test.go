package proxy

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"
)

// heldCut is a client connection whose cuts (a read deadline in the past)
// stop half way until the test lets them go on: it holds a drain's cut
// after it has started and before it has taken effect, which is where
// the race of the drain with the start of the relay lies.
type heldCut struct {
	net.Conn
	started  chan struct{} // closed when a cut starts
	goOn     chan struct{} // close to let it finish
	finished chan struct{} // closed when it has taken effect
}

func (c *heldCut) SetReadDeadline(t time.Time) error {
	if !t.IsZero() && t.Before(time.Now()) {
		select {
		case <-c.started:
		default:
			close(c.started)
		}
		<-c.goOn
		defer close(c.finished)
	}
	return c.Conn.SetReadDeadline(t)
}

// TestLoginDrainAsRelayStartsKeepsSession: a drain that starts just as a
// login finishes must not kill the session that login hands to the relay.
// The drain's cut is held after it started (its callback is running);
// Relaying then begins. Whatever the order, once Relaying returns the
// session's reads must work: a late cut must not land after Relaying
// cleared the deadlines. The interleaving is forced, not hoped for: the
// cut goes on only once Relaying has returned or has waited a while.
func TestLoginDrainAsRelayStartsKeepsSession(t *testing.T) {
	peer, b := netpair.TCP(t)
	client := &heldCut{Conn: b, started: make(chan struct{}), goOn: make(chan struct{}), finished: make(chan struct{})}
	drain, startDrain := context.WithCancel(context.Background())
	ctx := context.WithValue(context.Background(), drainKey{}, drain)
	s := Settings{HandshakeTimeout: 10 * time.Second, FirstPacketTimeout: 10 * time.Second, Observer: NopObserver{}}
	l := s.BeginLogin(ctx, client)
	defer l.End()
	l.FirstPacket()

	startDrain()
	select {
	case <-client.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the drain never cut the login's reads")
	}
	relaying := make(chan struct{})
	go func() {
		l.Relaying(client, client)
		close(relaying)
	}()
	select {
	case <-relaying: // Relaying did not wait for the cut in flight
	case <-time.After(300 * time.Millisecond): // it waits, as it should
	}
	close(client.goOn)
	for _, step := range []struct {
		done <-chan struct{}
		what string
	}{{client.finished, "the cut"}, {relaying, "Relaying"}} {
		select {
		case <-step.done:
		case <-time.After(10 * time.Second):
			t.Fatal(step.what + " hangs")
		}
	}

	peer.Write([]byte("q"))
	b.SetWriteDeadline(time.Time{})
	got := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 1))
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("the session's first read failed: %v (the drain's cut landed after Relaying)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session's first read hangs")
	}
}
