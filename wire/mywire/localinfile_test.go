package mywire

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestLoginLocalFiles: CLIENT_LOCAL_FILES goes upstream only when the
// login allows it, however much the client and the server both want it.
func TestLoginLocalFiles(t *testing.T) {
	both := CapProtocol41 | CapSecureConnection | CapPluginAuth | CapLongPassword | CapLocalFiles
	for _, allow := range []bool{false, true} {
		proxySide, server := net.Pipe()
		p := &Pending{Conn: proxySide, Greeting: &Greeting{Caps: both, Scramble: make([]byte, 20), Charset: 33}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.Login(ctx, nil, Login{User: "u", Password: "x", Plugin: PluginNativePassword,
				Client: &HandshakeResponse{Caps: both, Charset: 33}, LocalInfile: allow})
		}()
		server.SetDeadline(time.Now().Add(5 * time.Second))
		_, payload, err := ReadPacket(server, ResponseLimit)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ParseResponse(payload)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Caps&CapLocalFiles != 0; got != allow {
			t.Errorf("LocalInfile %v: CLIENT_LOCAL_FILES sent upstream: %v", allow, got)
		}
		server.Close()
		<-done
		cancel()
	}
}
