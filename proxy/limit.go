package proxy

import (
	"fmt"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
)

// Limit caps how many client connections are served at once: one
// upstream's (--max-connections in its config), or all upstreams' together.
// Over a limit the engine tells the client in its own protocol ("too many
// connections") rather than closing silently.
type Limit struct {
	slots chan struct{}
	max   int
	scope string // "" for one upstream, or "all upstreams"
}

// NewLimit returns a limit of max connections, or nil (no limit) for
// max <= 0. scope names what it covers in the client's message.
func NewLimit(max int, scope string) *Limit {
	if max <= 0 {
		return nil
	}
	return &Limit{slots: make(chan struct{}, max), max: max, scope: scope}
}

// Open is how many connections hold a slot.
func (l *Limit) Open() int {
	if l == nil {
		return 0
	}
	return len(l.slots)
}

// Max is the limit (0: none).
func (l *Limit) Max() int {
	if l == nil {
		return 0
	}
	return l.max
}

// TakeAll reserves a slot in every limit without waiting. When one is full
// it gives back what it took and returns that limit's failure for the
// client; otherwise release frees the slots.
func TakeAll(limits ...*Limit) (release func(), refused *failure.Failure) {
	var taken []*Limit
	release = func() {
		for _, l := range taken {
			<-l.slots
		}
	}
	for _, l := range limits {
		if l == nil {
			continue
		}
		select {
		case l.slots <- struct{}{}:
			taken = append(taken, l)
		default:
			release()
			return nil, l.message()
		}
	}
	return release, nil
}

func (l *Limit) message() *failure.Failure {
	what := "the proxy's limit"
	if l.scope != "" {
		what = "the proxy's limit for " + l.scope
	}
	return failure.New(failure.Limit, fmt.Sprintf("too many connections: %s of %d is reached", what, l.max),
		"close idle connections or raise --max-connections")
}
