package proxy

import (
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
)

// TestOnFreshStackKeepsTheCallersStackSmall: goroutines that made a deep
// call on a fresh stack and then wait hold far less stack than goroutines
// that made it themselves (issue 15: the handshake's stack was most of an
// idle session's memory).
func TestOnFreshStackKeepsTheCallersStackSmall(t *testing.T) {
	own := stackPerWaiter(t, false)
	fresh := stackPerWaiter(t, true)
	t.Logf("stack per waiting goroutine: %d bytes after a deep call of its own, %d after one on a fresh stack", own, fresh)
	if own < 16<<10 {
		t.Fatalf("the deep call left only %d bytes of stack on its own goroutine: the test cannot tell", own)
	}
	if fresh > own/4 {
		t.Errorf("%d bytes of stack per goroutine after a deep call on a fresh stack, want at most a quarter of %d", fresh, own)
	}
}

// stackPerWaiter starts goroutines that each make a deep call (on a
// fresh stack or not) and then wait, and returns the stack memory each
// holds once they all wait and a collection has run.
func stackPerWaiter(t *testing.T, fresh bool) uint64 {
	const n = 100
	release := make(chan struct{})
	var ready, done sync.WaitGroup
	runtime.GC()
	before := stackBytes()
	for range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			if fresh {
				onFreshStack(func() { deepCall(64) })
			} else {
				deepCall(64)
			}
			ready.Done()
			<-release
		}()
	}
	ready.Wait()
	runtime.GC()
	after := stackBytes()
	close(release)
	done.Wait()
	if after < before {
		return 0
	}
	return (after - before) / n
}

// deepCall uses about depth KiB of stack.
//
//go:noinline
func deepCall(depth int) byte {
	var pad [1 << 10]byte
	pad[depth%len(pad)] = byte(depth)
	if depth == 0 {
		return pad[0]
	}
	return deepCall(depth-1) + pad[depth%len(pad)]
}

func stackBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func TestOnFreshStackPanicsTheCaller(t *testing.T) {
	defer func() {
		p := recover()
		s, _ := p.(string)
		if !strings.Contains(s, "boom") || !strings.Contains(s, "handshake's goroutine") {
			t.Errorf("recovered %v, want the panic's value and where it happened", p)
		}
	}()
	onFreshStack(func() { panic("boom") })
	t.Error("onFreshStack returned after a panic")
}

func TestOnFreshStackGoexitEndsTheCaller(t *testing.T) {
	returned := make(chan bool, 1)
	go func() {
		ok := false
		defer func() { returned <- ok }()
		onFreshStack(runtime.Goexit)
		ok = true
	}()
	if <-returned {
		t.Error("onFreshStack returned after runtime.Goexit in f")
	}
}

func TestOnFreshStackRuns(t *testing.T) {
	ran := false
	onFreshStack(func() { ran = true })
	if !ran {
		t.Error("f did not run")
	}
}
