package proxy

import "time"

// Claims (issue 15: a storm under the login-rate guard). A client that
// finds no session parked for its key waits for its login's turn in the
// guard; meanwhile the clients before it leave their sessions, and with
// session reuse each is one the waiting client could take at once, as a
// pooler's client waits for a server connection. A claim is that client
// in the key's queue: a session reset (or logged in for the minimum)
// while claims wait goes to the oldest one instead of being parked, so a
// storm of short clients is served by every session its first logins
// made, not only at the guard's rate, and first come, first served.

// Claim is a client's place in a key's queue for the next session left
// for the key (Pool.Claim).
type Claim struct {
	p   *Pool
	key string
	got chan Pooled // one: the session handed over
	// out: handed a session or withdrawn (p.mu): no longer queued.
	out bool
}

// Claim queues a claim for key's next session; a session parked now is
// handed over at once. Nil when the pool is closed.
func (p *Pool) Claim(key string) *Claim {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	k := p.keys[key]
	if k == nil {
		k = &poolKey{ready: make(chan struct{})}
		p.keys[key] = k
	}
	c := &Claim{p: p, key: key, got: make(chan Pooled, 1)}
	k.claims = append(k.claims, c)
	p.handOutLocked(key, k)
	p.gcKey(key, k)
	return c
}

// Got is where the session handed over arrives.
func (c *Claim) Got() <-chan Pooled { return c.got }

// Withdraw leaves the queue. It returns the session handed over before
// it did (nil: none), which is the caller's to use or Discard.
func (c *Claim) Withdraw() Pooled {
	p := c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.out {
		c.out = true
		if k := p.keys[c.key]; k != nil {
			for i, q := range k.claims {
				if q == c {
					k.claims = append(k.claims[:i], k.claims[i+1:]...)
					break
				}
			}
			p.gcKey(c.key, k)
		}
	}
	select {
	case s := <-c.got:
		return s
	default:
		return nil
	}
}

// handOutLocked hands key's parked sessions to its claims, oldest claim
// first, most recently parked session first (as Get takes them), but
// leaves one for each Get waiting for a reset (it was told one would be
// its own, and waits a second at most). A session past its lifetime is
// discarded instead. p.mu is held.
func (p *Pool) handOutLocked(key string, k *poolKey) {
	handed := false
	for len(k.claims) > 0 && len(k.parked) > k.waiters {
		s := k.parked[len(k.parked)-1]
		k.parked = k.parked[:len(k.parked)-1]
		p.idle--
		if p.expired(s.s) {
			go s.s.Discard()
			continue
		}
		c := k.claims[0]
		k.claims = k.claims[1:]
		c.out = true
		c.got <- s.s
		k.used, handed = time.Now(), true
	}
	if handed {
		p.topUpLocked(key, k) // sessions taken: the minimum is made up
	}
}
