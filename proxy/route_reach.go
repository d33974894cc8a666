package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/topology"
)

// InstanceTLS is conf for a login to the Aurora instance d: every
// instance's certificate names its own endpoint, so TLS verifies d.Host.
// Both engines' routed logins and probes use it.
func InstanceTLS(conf *tls.Config, d Destination) (*tls.Config, error) {
	if conf == nil {
		return nil, errors.New("an Aurora cluster's instances are reached over verify-full TLS only")
	}
	conf = conf.Clone()
	conf.ServerName = d.Host
	return conf, nil
}

// Reach runs dial against the instance a new connection would be routed
// to now, for an engine that must talk to the cluster before the login
// (MySQL: the server's greeting comes first), so that the greeting does
// not come from where the cluster's stale DNS points (a demoted writer
// that may be restarting). A dial the network breaks off marks that
// writer down and waits for the topology's next view, within the
// failover wait, as a routed login does. reached false: the topology is
// not read, or no instance was confirmed in time; the caller then dials
// the endpoint by its DNS name, and the login that follows waits for the
// writer as usual.
func (r *Router) Reach(ctx context.Context, dial func(context.Context, Destination) error) (reached bool, err error) {
	r.init()
	deadline := time.Now().Add(r.Wait)
	for {
		v, have, changed := r.mon.Current()
		if !have {
			return false, nil
		}
		v = r.usable(v)
		if d, writer, ok := r.peek(v); ok {
			err := dial(ctx, d)
			if err == nil || !connectionLevel(err) || time.Now().After(deadline) || ctx.Err() != nil {
				return true, err
			}
			if writer && !r.Reader {
				r.mu.Lock()
				r.downHost, r.downAt = d.Host, time.Now()
				r.mu.Unlock()
			}
			r.mon.Suspect()
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return false, nil
		}
		tm := time.NewTimer(min(wait, 100*time.Millisecond))
		select {
		case <-changed:
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			return false, ctx.Err()
		}
		tm.Stop()
	}
}

// Peek is the instance a new connection would be routed to now, without
// taking a place there; ok false: the topology is not read yet, or names
// no instance to go to. An engine that takes a parked session before the
// login (MySQL, see Holder) takes one of this instance's.
func (r *Router) Peek() (d Destination, ok bool) {
	r.init()
	v, have, _ := r.mon.Current()
	if !have {
		return d, false
	}
	d, _, ok = r.peek(r.usable(v))
	return d, ok
}

// peek is the instance choose would take in v, without taking a place.
func (r *Router) peek(v topology.View) (d Destination, writer, ok bool) {
	r.mu.Lock()
	id, writer := r.targetLocked(v)
	r.mu.Unlock()
	if id == "" {
		return d, false, false
	}
	d, err := r.instance(id)
	return d, writer, err == nil
}

// ExplainAt explains a failed dial or login to the Aurora instance d the
// way Serve explains one to t, but naming the instance (for an engine's
// own steps towards it, such as MySQL's greeting); what it does not know
// is returned as is.
func ExplainAt(t Target, d Destination, user string, err error) error {
	return explainAt(t, d, user, err)
}
