package authtoken

import (
	"context"
	"errors"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Refresh tunes how credentials are refreshed in the background. Zero
// fields take the defaults.
type Refresh struct {
	// Window: refresh this long before expiry (default 5 minutes). For
	// credentials that live no longer than the window, half their
	// remaining lifetime is used instead, so short sessions are refreshed
	// too.
	Window time.Duration
	// Jitter is the fraction of the window by which each refresh is
	// moved earlier at random (default 0.1), so many proxies started
	// together do not call STS in the same second.
	Jitter float64
	// MinInterval is the least time between two refresh attempts, and the
	// first retry delay after a failure; retries back off doubling up to
	// MaxBackoff (defaults 10 seconds and 2 minutes).
	MinInterval time.Duration
	MaxBackoff  time.Duration
	// Timeout bounds one refresh, retries included, and each AWS request
	// in it (default 10 seconds: AWS answers in milliseconds, and a login
	// waiting for a refresh should fail well within a client's timeout).
	Timeout time.Duration
	// Margin: credentials this close to expiry are not used for a new
	// token without first trying a refresh (default 10 seconds).
	Margin time.Duration
}

func (r Refresh) withDefaults() Refresh {
	if r.Window <= 0 {
		r.Window = 5 * time.Minute
	}
	if r.Jitter <= 0 {
		r.Jitter = 0.1
	}
	if r.MinInterval <= 0 {
		r.MinInterval = 10 * time.Second
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = 2 * time.Minute
	}
	if r.Timeout <= 0 {
		r.Timeout = 10 * time.Second
	}
	if r.Margin <= 0 {
		r.Margin = 10 * time.Second
	}
	return r
}

// Stats are a Source's counters, for logs and metrics. Read them with
// Source.Stats.
type Stats struct {
	Refreshes       uint64 // credential fetches attempted (first fetch included)
	RefreshFailures uint64 // of those, failed
	TokensBuilt     uint64 // tokens signed
}

type counters struct {
	refreshes, refreshFailures, tokensBuilt atomic.Uint64
}

// held is the credentials a Source signs with, and when it got them.
type held struct {
	creds   aws.Credentials
	fetched time.Time
}

// usable reports whether h may sign a new token without a refresh first.
func (h *held) usable(now time.Time, margin time.Duration) bool {
	return h != nil && (!h.creds.CanExpire || now.Before(h.creds.Expires.Add(-margin)))
}

// valid reports whether h may still sign: it has not expired, and will
// not within signLife. RDS checks the signing credentials when the token
// is presented, after the dial and TLS, so a token signed a moment
// before they expire is rejected as if it were wrong ("PAM
// authentication failed"); better to say the credentials expired.
func (h *held) valid(now time.Time) bool {
	return h != nil && (!h.creds.CanExpire || now.Add(signLife).Before(h.creds.Expires))
}

// signLife is how long credentials must stay valid after signing a
// token: the time an upstream login takes, with room for a loaded
// machine.
const signLife = 5 * time.Second

// current returns credentials to sign with. While the held ones are usable
// it never waits; otherwise it fetches (one fetch at a time), falling back
// to still-valid credentials if the fetch fails.
func (s *Source) current(ctx context.Context) (aws.Credentials, error) {
	if h := s.cur.Load(); h.usable(time.Now(), s.refresh.Margin) {
		return h.creds, nil
	}
	select {
	case s.fetchSem <- struct{}{}:
	case <-ctx.Done():
		return aws.Credentials{}, &CredentialsError{Err: ctx.Err(), roles: s.roles}
	}
	defer func() { <-s.fetchSem }()
	// Someone else may have fetched while we waited.
	if h := s.cur.Load(); h.usable(time.Now(), s.refresh.Margin) {
		return h.creds, nil
	}
	h := s.cur.Load()
	var err error
	if failedAt, lastErr := s.lastFailure(); lastErr != nil && !h.valid(time.Now()) && time.Since(failedAt) < s.refresh.MinInterval {
		// Rate limit: a fetch failed a moment ago and nothing valid is
		// held; fail fast instead of calling AWS again.
		err = lastErr
	} else {
		err = s.fetchLocked(ctx)
	}
	h = s.cur.Load()
	if err == nil {
		return h.creds, nil
	}
	if h.valid(time.Now()) {
		return h.creds, nil
	}
	ce := &CredentialsError{Err: err, roles: s.roles}
	if h != nil {
		ce.expiredAt, ce.source = h.creds.Expires, h.creds.Source
	}
	return aws.Credentials{}, ce
}

// fetchLocked gets new credentials from the chain; the caller holds
// fetchSem. On success it starts the background refresher if the
// credentials can expire.
func (s *Source) fetchLocked(ctx context.Context) error {
	s.stats.refreshes.Add(1)
	if s.cur.Load() != nil {
		s.invalidate()
	}
	ctx, cancel := context.WithTimeout(ctx, s.refresh.Timeout)
	defer cancel()
	c, err := s.provider.Retrieve(ctx)
	if err != nil {
		s.stats.refreshFailures.Add(1)
		s.failMu.Lock()
		if isTimeout(err) {
			if s.failCause != nil {
				// Out of time; the last real answer says why, likely.
				err = &timeoutError{err: err, before: s.failCause}
			}
		} else {
			s.failCause = err
		}
		s.failedAt, s.failErr = time.Now(), err
		s.failMu.Unlock()
		return err
	}
	s.failMu.Lock()
	s.failErr, s.failCause = nil, nil
	s.failMu.Unlock()
	prev := s.cur.Swap(&held{creds: c, fetched: time.Now()})
	if prev == nil || prev.creds.AccessKeyID != c.AccessKeyID {
		attrs := []any{"source", c.Source, "access_key_id", c.AccessKeyID}
		if c.CanExpire {
			attrs = append(attrs, "expires", c.Expires.UTC().Format(time.RFC3339))
		}
		s.log.Info("AWS credentials obtained", attrs...)
	}
	if c.CanExpire {
		s.startRefresher()
	}
	return nil
}

func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// noteCause remembers a failure seen under a role chain (the chain's own
// credentials failing), so a fetch that then runs out of time can say why.
func (s *Source) noteCause(err error) {
	if isTimeout(err) {
		return
	}
	s.failMu.Lock()
	defer s.failMu.Unlock()
	s.failCause = err
}

// lastFailure is the last failed fetch since the last success, if any.
func (s *Source) lastFailure() (time.Time, error) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	return s.failedAt, s.failErr
}

// startRefresher starts the background loop once.
func (s *Source) startRefresher() {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed || s.refresherStarted.Swap(true) {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.refreshLoop()
	}()
}

// nextRefresh is when to refresh h, failures being the failed attempts
// since the last success.
func (s *Source) nextRefresh(h *held, lastAttempt time.Time, failures int) time.Time {
	r := s.refresh
	if failures > 0 {
		backoff := r.MinInterval << min(failures-1, 16)
		return lastAttempt.Add(min(backoff, r.MaxBackoff))
	}
	window := r.Window
	if life := h.creds.Expires.Sub(h.fetched); window >= life {
		window = life / 2
	}
	at := h.creds.Expires.Add(-window)
	at = at.Add(-time.Duration(rand.Float64() * r.Jitter * float64(window)))
	if earliest := lastAttempt.Add(r.MinInterval); at.Before(earliest) {
		at = earliest
	}
	return at
}

// refreshLoop refreshes credentials ahead of expiry until Close. A failed
// refresh is logged and counted; the held credentials keep serving while
// they are valid.
func (s *Source) refreshLoop() {
	failures := 0
	last := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		h := s.cur.Load()
		if h == nil || !h.creds.CanExpire {
			return
		}
		timer.Reset(time.Until(s.nextRefresh(h, last, failures)))
		select {
		case <-s.done:
			return
		case <-timer.C:
		}
		last = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), s.refresh.Timeout)
		go func() {
			select {
			case <-s.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		var err error
		select {
		case s.fetchSem <- struct{}{}:
			err = s.fetchLocked(ctx)
			<-s.fetchSem
		case <-ctx.Done():
			err = ctx.Err()
		}
		cancel()
		if err == nil {
			failures = 0
			continue
		}
		if errors.Is(err, context.Canceled) {
			select {
			case <-s.done:
				return
			default:
			}
		}
		failures++
		x := (&CredentialsError{Err: err, roles: s.roles, source: h.creds.Source}).explain()
		cause := failure.Join(x.cause, x.fix)
		attrs := []any{"err", cause, "source", h.creds.Source, "failures", failures}
		switch now := time.Now(); {
		case h.valid(now):
			attrs = append(attrs, "serving_until", h.creds.Expires.Add(-signLife).UTC().Format(time.RFC3339))
			s.log.Warn("AWS credentials refresh failed; the current credentials keep serving until shortly before they expire", attrs...)
		case now.Before(h.creds.Expires):
			attrs = append(attrs, "expires", h.creds.Expires.UTC().Format(time.RFC3339))
			s.log.Error("AWS credentials refresh failed and the current credentials expire too soon to sign with: new connections fail until a refresh succeeds", attrs...)
		default:
			s.log.Error("AWS credentials refresh failed and the current credentials have expired: new connections fail until a refresh succeeds", attrs...)
		}
	}
}

// Stats returns a snapshot of the counters.
func (s *Source) Stats() Stats {
	return Stats{
		Refreshes:       s.stats.refreshes.Load(),
		RefreshFailures: s.stats.refreshFailures.Load(),
		TokensBuilt:     s.stats.tokensBuilt.Load(),
	}
}

// Close stops the background refresher. Tokens can still be built
// afterwards; credentials are then fetched when needed.
func (s *Source) Close() {
	s.closeMu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.closeMu.Unlock()
	s.wg.Wait()
}

// Expiry is when the held credentials expire; ok is false when none are
// held or they never expire.
func (s *Source) Expiry() (expires time.Time, ok bool) {
	h := s.cur.Load()
	if h == nil || !h.creds.CanExpire {
		return time.Time{}, false
	}
	return h.creds.Expires, true
}
