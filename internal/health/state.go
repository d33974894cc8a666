// Package health serves the proxy's admin port: startup, liveness and
// readiness probes for Kubernetes and scripts, the Prometheus metrics, and
// /quitquitquit. It is separate from the database listeners so that a probe
// or a scrape never competes with clients for the connection limit, and so
// that it can stay up while the listeners drain.
//
// Wiring, in the order a run command does it:
//
//	st := health.NewState()
//	admin, err := health.Start(addr, health.Options{State: st, Metrics: m.Handler(), Quit: cancelRun, ...})
//	// start every listener, then:
//	st.SetServing()
//	// on SIGTERM/SIGINT or Quit, first thing:
//	st.SetDraining()
//	// shut the listeners down and wait for sessions, then:
//	st.SetStopped()
//	admin.Close(ctx)
//
// The admin port starts before the listeners so that /startup can answer
// "starting" rather than refuse connections, and closes after them so that
// /readiness answers "draining" for the whole drain.
package health

import "sync/atomic"

// Phase is where the process is in its life. Phases only move forward.
type Phase int32

const (
	// Starting: flags read, listeners not all up yet.
	Starting Phase = iota
	// Serving: every listener accepts clients.
	Serving
	// Draining: a signal or /quitquitquit arrived; listeners stop taking
	// clients and open sessions get time to finish.
	Draining
	// Stopped: draining is over; the process is about to exit.
	Stopped
)

func (p Phase) String() string {
	switch p {
	case Starting:
		return "starting"
	case Serving:
		return "serving"
	case Draining:
		return "draining"
	case Stopped:
		return "stopped"
	}
	return "unknown"
}

// State is the process's lifecycle as the probes see it. Safe for
// concurrent use; the zero value is Starting.
//
// Phases only move forward, so a late SetServing (the last listener coming
// up just as SIGTERM arrives) cannot turn readiness back on while draining.
type State struct {
	phase atomic.Int32
	// started records that Serving was reached, separately from phase:
	// a proxy told to stop before it ever served has not started, and a
	// script waiting on /startup must not go ahead against it.
	started atomic.Bool
}

// NewState returns a State in Starting.
func NewState() *State { return &State{} }

// Phase is the current phase.
func (s *State) Phase() Phase { return Phase(s.phase.Load()) }

// Started reports whether Serving was ever reached.
func (s *State) Started() bool { return s.started.Load() }

// SetServing marks every listener as up. It does nothing once draining has
// begun.
func (s *State) SetServing() {
	if s.advance(Serving) {
		s.started.Store(true)
	}
}

// SetDraining marks the start of shutdown; readiness fails from now on.
// Call it first thing on SIGTERM/SIGINT, before closing listeners, so that
// load balancers and Services stop routing new work here as early as
// possible.
func (s *State) SetDraining() { s.advance(Draining) }

// SetStopped marks the end of draining.
func (s *State) SetStopped() { s.advance(Stopped) }

// advance moves to p if that is forward, reporting whether it moved.
func (s *State) advance(p Phase) bool {
	for {
		cur := s.phase.Load()
		if Phase(cur) >= p {
			return false
		}
		if s.phase.CompareAndSwap(cur, int32(p)) {
			return true
		}
	}
}
