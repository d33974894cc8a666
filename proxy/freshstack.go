package proxy

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// onFreshStack runs f on a goroutine of its own and waits for it to end.
//
// Why: a goroutine's stack grows to the deepest call it has made and
// shrinks only by half per garbage collection, and only while less than a
// quarter of it is in use. A client's handshake is deep (TLS with
// certificate verification, request signing, the engine's login), so the
// goroutine that ran it keeps a 16-32 KiB stack for the whole session,
// most of an idle session's memory (issue 15). Run on a goroutine that
// ends with the handshake, that stack goes back to the runtime's pool at
// once, and the session's own goroutine, which only waits for the
// handshake meanwhile, keeps the small stack it started with.
//
// A panic in f panics the caller with f's value and stack, as if f had
// run there (the server's handler recovers it); runtime.Goexit in f ends
// the caller too.
func onFreshStack(f func()) {
	type end struct {
		returned bool
		panic    any // nil when f neither returned nor panicked: runtime.Goexit
		stack    []byte
	}
	done := make(chan end, 1)
	go func() {
		var e end
		defer func() {
			if !e.returned {
				if e.panic = recover(); e.panic != nil {
					e.stack = debug.Stack()
				}
			}
			done <- e
		}()
		f()
		e.returned = true
	}()
	switch e := <-done; {
	case e.returned:
	case e.panic != nil:
		panic(fmt.Sprintf("%v\n\n(on the handshake's goroutine:)\n%s", e.panic, e.stack))
	default:
		runtime.Goexit()
	}
}
