package proxy

import "time"

// Farewell lets an engine end a session that the upstream broke off (a
// reset, a dead network path, a close without the server's goodbye) with
// an error in the client's protocol. Without it the client sees only a
// closed socket ("server closed the connection unexpectedly", "Lost
// connection to server") and nothing says why. It follows the bytes each
// way, so that it speaks only where a message may start, never inside
// one.
//
// The relay calls FromUpstream with each chunk after the client has been
// sent it, and FromClient with each chunk after the upstream has been sent
// it. They run on different goroutines; Message runs on FromUpstream's,
// after its last call.
type Farewell interface {
	FromUpstream(p []byte)
	FromClient(p []byte)
	// Message is what to send the client now that the upstream is gone
	// because of err (io.EOF: it closed), or nil when nothing can be sent
	// cleanly: in the middle of a message, or after the server's own
	// goodbye.
	Message(err error) []byte
}

// farewellWrite bounds the write of a farewell to a client that may have
// stopped reading.
const farewellWrite = 2 * time.Second
