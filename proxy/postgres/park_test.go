package postgres

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// TestParkConnUnderTheRelay runs the real relay over a ParkConn: after a
// query and its answer, the client's Terminate never reaches the server,
// the relay ends as if the server had closed, and the upstream connection
// is still open and in step for the next client.
func TestParkConnUnderTheRelay(t *testing.T) {
	client, clientEnd := netpair.TCP(t)   // the client's side, the proxy's side
	upstream, serverEnd := netpair.TCP(t) // the proxy's side, the server's
	park := proxy.NewParkConn(upstream, newTracker('I'))
	done := make(chan error, 1)
	go func() {
		_, err := proxy.Relay(context.Background(), clientEnd, park, proxy.RelayOptions{Farewell: &quitFarewell{farewell: &farewell{}, park: park}})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	client.SetDeadline(deadline)
	serverEnd.SetDeadline(deadline)
	be := pgproto3.NewBackend(serverEnd, serverEnd)
	fe := pgproto3.NewFrontend(client, client)

	fe.Send(&pgproto3.Query{String: "SELECT 1"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := be.Receive(); err != nil {
		t.Fatal(err)
	} else if _, ok := m.(*pgproto3.Query); !ok {
		t.Fatalf("server got %T", m)
	}
	be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := be.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	fe.Send(&pgproto3.Terminate{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	// The client waits for the server to close, as some do: the relay
	// must end without the client closing first.
	if n, err := client.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after its Terminate the client read %d bytes, %v; want EOF and no farewell", n, err)
	}
	client.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("relay: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the relay did not end after the client's clean Terminate")
	}
	if !park.Clean() {
		t.Fatal("a clean leave was not taken for one")
	}
	park.Close() // the connection function's deferred close: must not touch the parked session

	// The server got nothing after the query: no Terminate, no EOF.
	serverEnd.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := serverEnd.Read(make([]byte, 16)); n != 0 || err == io.EOF {
		t.Fatalf("the server got %d more bytes, %v, after the clean Terminate", n, err)
	}
	// The raw connection is in step for the next owner.
	serverEnd.SetReadDeadline(deadline)
	raw := park.Raw()
	raw.SetDeadline(deadline)
	if _, err := raw.Write([]byte("ping")); err != nil {
		t.Fatalf("the parked connection cannot write: %v", err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(serverEnd, got); err != nil || string(got) != "ping" {
		t.Fatalf("server read %q, %v", got, err)
	}
	if _, err := serverEnd.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(raw, got); err != nil || string(got) != "pong" {
		t.Fatalf("the parked connection read %q, %v", got, err)
	}
	raw.Close()
}
