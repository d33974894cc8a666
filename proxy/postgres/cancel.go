package postgres

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// cancelTarget is where a client's cancel key leads: an upstream backend's
// own key and how to reach that upstream.
type cancelTarget struct {
	secret   []byte // the client's secret
	upstream Upstream
	key      pgwire.CancelKey // the upstream's
}

// cancelMap hands each client its own random cancel key and remembers the
// upstream key behind it. Clients never see upstream keys: a key a client
// learns cannot cancel anyone else's query, and keys from different upstreams
// cannot collide.
type cancelMap struct {
	mu sync.Mutex
	m  map[uint32]cancelTarget
	// inflight are the cancels being forwarded (session reuse waits for
	// them before a session changes hands).
	inflight inflight
}

func newCancelMap() *cancelMap { return &cancelMap{m: map[uint32]cancelTarget{}} }

// register stores the upstream's key and returns the client's key and a
// function that forgets it when the connection ends.
func (c *cancelMap) register(u Upstream, upstreamKey pgwire.CancelKey) (pgwire.CancelKey, func(), error) {
	secret := make([]byte, 4) // the client speaks protocol 3.0: 4-byte secrets
	var pidBytes [4]byte
	c.mu.Lock()
	defer c.mu.Unlock()
	for range 100 {
		if _, err := rand.Read(pidBytes[:]); err != nil {
			return pgwire.CancelKey{}, nil, fmt.Errorf("cancel key: %w", err)
		}
		// Keep the PID positive and non-zero: clients print and parse it as
		// a signed int32.
		pid := binary.BigEndian.Uint32(pidBytes[:]) & 0x7fffffff
		if _, taken := c.m[pid]; taken || pid == 0 {
			continue
		}
		if _, err := rand.Read(secret); err != nil {
			return pgwire.CancelKey{}, nil, fmt.Errorf("cancel key: %w", err)
		}
		c.m[pid] = cancelTarget{secret: secret, upstream: u, key: upstreamKey}
		return pgwire.CancelKey{PID: pid, Secret: secret}, func() {
			c.mu.Lock()
			delete(c.m, pid)
			c.mu.Unlock()
		}, nil
	}
	return pgwire.CancelKey{}, nil, fmt.Errorf("cancel key: no free process id")
}

// lookup finds the target of a client's key, comparing secrets in constant
// time.
func (c *cancelMap) lookup(k pgwire.CancelKey) (cancelTarget, bool) {
	t, ok, done := c.acquire(k)
	if ok {
		done()
	}
	return t, ok
}

// acquire is lookup for a cancel about to be forwarded: it counts as in
// flight to its backend until done runs. Found under the map's lock, it
// cannot be missed by a forget followed by inflight.wait.
func (c *cancelMap) acquire(k pgwire.CancelKey) (t cancelTarget, ok bool, done func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok = c.m[k.PID]
	if !ok || subtle.ConstantTimeCompare(t.secret, k.Secret) != 1 {
		return cancelTarget{}, false, nil
	}
	return t, true, c.inflight.start(backendRef{addr: t.upstream.DialAddr(), pid: t.key.PID})
}
