package tlsca

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"sync/atomic"
	"time"
)

// Trust is an upstream's TLS settings and the *tls.Config built from them,
// replaced as a whole when the bundle is refreshed, so a long-running
// proxy picks up CA rotations without a restart. Engines take the current
// pair for each new connection; connections already open are unaffected.
// Safe for concurrent use.
type Trust struct {
	cur atomic.Pointer[trustState]
}

type trustState struct {
	up  Upstream
	cfg *tls.Config
}

// NewTrust checks u and builds its configuration (see [Upstream.Config]).
func NewTrust(u Upstream) (*Trust, error) {
	cfg, err := u.Config()
	if err != nil {
		return nil, err
	}
	t := &Trust{}
	t.cur.Store(&trustState{up: u, cfg: cfg})
	return t, nil
}

// Current returns the settings and the configuration to use for a new
// connection (a nil configuration only for Disable).
func (t *Trust) Current() (Upstream, *tls.Config) {
	s := t.cur.Load()
	return s.up, s.cfg
}

// SetBundle replaces the bundle; new connections use it.
func (t *Trust) SetBundle(b *Bundle) error {
	u := t.cur.Load().up
	u.Bundle = b
	cfg, err := u.Config()
	if err != nil {
		return err
	}
	t.cur.Store(&trustState{up: u, cfg: cfg})
	return nil
}

// KeepFresh loads the bundle again every interval until ctx ends, as
// [Load] does with o (a file is re-read; a download is revalidated with a
// conditional GET, since MaxAge is set to interval), and swaps it in when
// the set of trusted CAs changed. A failed refresh keeps the current
// bundle and logs a warning. Disable (no bundle) and the system's store
// (the system keeps it) return at once.
func (t *Trust) KeepFresh(ctx context.Context, o Options, interval time.Duration) {
	if interval <= 0 {
		return
	}
	if up, _ := t.Current(); up.Bundle == nil || up.Bundle.System {
		return
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o.MaxAge = interval
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		b, err := Load(ctx, o)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("CA bundle refresh failed; keeping the current bundle", "err", err)
			}
			continue
		}
		up, _ := t.Current()
		if sameCAs(up.Bundle, b) {
			// Confirmed current: keep its new fetch time, so the bundle's
			// age (a metric) says when it was last checked.
			if err := t.SetBundle(b); err != nil {
				log.Warn("refreshed CA bundle not applied", "err", err)
			}
			continue
		}
		if err := t.SetBundle(b); err != nil {
			log.Warn("refreshed CA bundle not applied", "err", err)
			continue
		}
		log.Info("CA bundle refreshed; new connections trust the new set", "bundle", b.Describe(), "was", len(up.Bundle.Certs))
	}
}

// sameCAs reports whether a and b trust the same certificates, in order.
func sameCAs(a, b *Bundle) bool {
	if a == nil || b == nil || len(a.Certs) != len(b.Certs) {
		return false
	}
	for i := range a.Certs {
		if !bytes.Equal(a.Certs[i].Raw, b.Certs[i].Raw) {
			return false
		}
	}
	return true
}
