package mywire

import (
	"context"
	"net"
)

// ComPing is COM_PING: the server answers OK and nothing changes.
const ComPing = 0x0e

// Ping sends COM_PING on a session no client is using and reads its OK,
// under ctx's deadline: a parked session is checked with it before a
// client is greeted with its connection id.
func Ping(ctx context.Context, c net.Conn) error {
	return command(ctx, c, []byte{ComPing}, "COM_PING")
}

// SessionCaps are the capabilities (and MariaDB's extended ones) that a
// login for client on the server that sent g sends upstream where they
// frame commands and results, the same as Pending.Login computes them,
// without the flags that shape only the login. A session logged in for
// one client may be handed to another only when both have the same:
// after the login, client and server must agree on every packet's shape.
func SessionCaps(client *HandshakeResponse, g *Greeting, localInfile bool) (caps, ext uint32) {
	caps = upstreamCaps(client.Caps, g.Caps, client.Database, len(client.Attrs) > 0, true) &^ handshakeOnly
	if !localInfile {
		caps &^= CapLocalFiles
	}
	if hasExtCaps(caps) && hasExtCaps(g.Caps) && hasExtCaps(client.Caps) {
		ext = client.ExtCaps & g.ExtCaps
	}
	return caps, ext
}
