// Package serve runs the proxy as a long-lived process: every configured
// upstream, the admin port (health and metrics), and the shutdown
// sequence. The run command is a thin shell around Run, and the
// integration tests call Run in-process, so the lifecycle they check is
// the one that ships.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	cfgpkg "github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/health"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/memrelease"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/metrics"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// Exit statuses besides Settings.ExitCode (a clean drain); 2 is a bad
// configuration (the run command's).
const (
	ExitFailed = 1 // the proxy could not start, or a listener failed
	ExitCut    = 3 // sessions were still open at max_shutdown_delay and were cut
)

// Options are what a caller adds to the settings.
type Options struct {
	Log    *slog.Logger
	Stderr io.Writer
	// AWSLoadOptions are passed to every upstream's AWS configuration
	// (tests point the SDK at the emulator).
	AWSLoadOptions []func(*config.LoadOptions) error
	// Started, when set, is called once everything listens, with the
	// admin address ("" when off).
	Started func(p *Process)
	// OnDrain, when set, is called when the shutdown starts (the run
	// command restores default signal handling so a second signal exits
	// at once).
	OnDrain func()
	// MFAPrompt asks for an MFA code on the terminal; nil when there is
	// none.
	MFAPrompt func(ctx context.Context, serial string) (string, error)
}

// Process is a running proxy, as Options.Started sees it.
type Process struct {
	Upstreams []*launch.Running
	Admin     *health.Server // nil when off
	Shutdown  *health.Server // the /quitquitquit listener; nil when off
	State     *health.State
	Metrics   *metrics.Metrics
}

// Run serves s until ctx is done (a signal), POST /quitquitquit, or a
// listener fails, then drains. It returns the exit status.
func Run(ctx context.Context, s *cfgpkg.Settings, o Options) int {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stderr := o.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	p := &Process{State: health.NewState(), Metrics: metrics.New()}
	shared := proxy.NewLimit(s.MaxConnections, "all upstreams")
	guard := launch.NewLoginGuard(s.Serving) // one login budget per endpoint, whichever upstream logs in

	stopAll := func(deadline time.Duration) bool {
		sctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		return shutdownAll(sctx, p.Upstreams)
	}
	// The admin port first: /startup answers "starting" (503) while the
	// upstreams load their CA bundles and credentials, rather than
	// refusing connections.
	quit := make(chan struct{})
	quitOnce := sync.OnceFunc(func() { close(quit) })
	if s.AdminAddress != "" {
		ho := health.Options{
			State: p.State, Capacity: capacity(shared), Metrics: p.Metrics.Handler(),
			AllowNonLoopback: s.AllowNonLoopback || s.AdminAllowNonLoopback, Logger: log,
		}
		if s.ReadinessCheckBackend {
			ho.BackendCheck = func(ctx context.Context) error { return probeAll(ctx, p.Upstreams) }
		}
		admin, err := health.Start(s.AdminAddress, ho)
		if err != nil {
			fmt.Fprintf(stderr, "rds-iam-proxy: admin_address: %v\n", err)
			return ExitFailed
		}
		p.Admin = admin
		defer closeListener(admin)
	}
	if s.ShutdownAddress != "" {
		q, err := startShutdown(ctx, s.ShutdownAddress, quitOnce, log)
		if err != nil {
			fmt.Fprintf(stderr, "rds-iam-proxy: shutdown_address: %v\n", err)
			return ExitFailed
		}
		p.Shutdown = q
		defer closeListener(q)
	}
	mfa := authtoken.NewMFASessions() // one MFA code for all upstreams
	for _, u := range s.Upstreams {
		lc := launch.Config{Upstream: u, Serving: s.Serving, Shared: shared, Guard: guard,
			Observer: p.Metrics.Upstream(u.Name, u.Engine.String()), AWSLoadOptions: o.AWSLoadOptions,
			MFAPrompt: o.MFAPrompt, MFASessions: mfa}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		r, err := launch.Start(sctx, lc, log)
		cancel()
		if err != nil {
			stopAll(time.Second)
			if ctx.Err() != nil {
				// A signal during startup is a request to stop, not a
				// failure to report.
				log.Info("stopped during startup", "upstream", u.Name)
				return s.ExitCode
			}
			fmt.Fprintf(stderr, "rds-iam-proxy: %s (%s): %v\n", u.Name, u.Origin(), err)
			return ExitFailed
		}
		p.Upstreams = append(p.Upstreams, r)
		p.Metrics.AddCredentials(u.Name, func() metrics.CredentialStats {
			st := r.Tokens().Stats()
			exp, _ := r.Tokens().Expiry()
			return metrics.CredentialStats{Refreshes: int64(st.Refreshes), RefreshFailures: int64(st.RefreshFailures), TokensBuilt: int64(st.TokensBuilt), Expiry: exp,
				MFAExpiry: r.Tokens().MFAState().Ends}
		})
		p.Metrics.AddCABundle(u.Name, func() (time.Time, int) {
			if b := r.CABundle(); b != nil {
				return b.Fetched, len(b.Certs)
			}
			return time.Time{}, 0
		})
		if pool := r.Pool(); pool != nil {
			p.Metrics.AddSessionPool(u.Name, pool.Idle)
		}
	}

	p.State.SetServing()
	attrs := []any{"upstreams", len(p.Upstreams)}
	if p.Admin != nil {
		attrs = append(attrs, "admin_address", p.Admin.Addr().String())
	}
	if p.Shutdown != nil {
		attrs = append(attrs, "shutdown_address", s.ShutdownAddress)
	}
	log.Info("serving", attrs...)
	defer memrelease.Start(memrelease.Options{Log: log})() // a login storm's memory goes back once logins stop
	if o.Started != nil {
		o.Started(p)
	}

	failed := make(chan error, len(p.Upstreams))
	for _, r := range p.Upstreams {
		go func() {
			if err := <-r.Done(); err != nil {
				failed <- fmt.Errorf("%s: accept failed: %w", r.Name(), err)
			}
		}()
	}
	var why string
	status := s.ExitCode
	select {
	case <-ctx.Done():
		why = "signal"
	case <-quit:
		why = "POST /quitquitquit"
	case err := <-failed:
		why = err.Error()
		status = ExitFailed
		fmt.Fprintln(stderr, "rds-iam-proxy:", err)
	}
	if o.OnDrain != nil {
		o.OnDrain()
	}
	p.State.SetDraining()
	minDelay, maxDelay := time.Duration(s.MinShutdownDelay), time.Duration(s.MaxShutdownDelay)
	log.Info("shutting down: readiness now fails", "why", why, "accepting_for", minDelay, "then_waiting_up_to", maxDelay)
	if minDelay > 0 {
		// Keep serving new clients while load balancers and apps notice
		// the failed readiness; a second signal still ends it at once.
		select {
		case <-time.After(minDelay):
		case err := <-failed:
			fmt.Fprintln(stderr, "rds-iam-proxy:", err)
			status = ExitFailed
		}
	}
	clean := stopAll(maxDelay)
	p.State.SetStopped()
	if !clean {
		fmt.Fprintf(stderr, "rds-iam-proxy: connections still open after %s were closed\n", maxDelay)
		log.Warn("shutdown cut open connections", "max_shutdown_delay", maxDelay)
		return ExitCut
	}
	log.Info("shutdown complete: every connection finished")
	return status
}

// shutdownAll stops every upstream's accepting at once and waits for their
// connections until ctx is done. It reports whether all ended by
// themselves.
func shutdownAll(ctx context.Context, rs []*launch.Running) bool {
	var wg sync.WaitGroup
	var mu sync.Mutex
	clean := true
	for _, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !r.Shutdown(ctx) {
				mu.Lock()
				clean = false
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return clean
}

// capacity reports the limit over all upstreams to readiness. One
// upstream at its own limit does not make the process unready: as a
// sidecar that would take the whole pod out of service for one database.
func capacity(shared *proxy.Limit) func() (open, limit int) {
	return func() (int, int) { return shared.Open(), shared.Max() }
}

// probeAll probes every upstream at once (see launch.Running.Probe).
func probeAll(ctx context.Context, rs []*launch.Running) error {
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Go(func() { errs[i] = r.Probe(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// closeListener closes the admin or shutdown listener on the way out,
// giving its requests in flight two seconds.
func closeListener(s *health.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.Close(ctx)
}

// startShutdown serves POST /quitquitquit on its own local listener: a
// loopback TCP address or a unix socket (mode 0600: only this user may
// stop the proxy).
func startShutdown(ctx context.Context, addr string, quit func(), log *slog.Logger) (*health.Server, error) {
	spec, err := cfgpkg.ParseListen(addr, "", 0)
	if err != nil {
		return nil, err
	}
	if !spec.Loopback() {
		return nil, fmt.Errorf("%s is not a loopback address or a unix socket", addr)
	}
	ln, err := launch.Listen(ctx, spec, launch.ListenOptions{SocketMode: 0o600})
	if err != nil {
		return nil, err
	}
	s, err := health.ServeShutdown(ln, health.ShutdownOptions{Quit: quit, Logger: log})
	if err != nil {
		ln.Close()
		return nil, err
	}
	return s, nil
}
