package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// DefaultAddress is where the admin port listens unless told otherwise;
// the wait and shutdown subcommands use the same default.
const DefaultAddress = "127.0.0.1:9801"

// DefaultBackendTimeout bounds the opt-in backend check: under the usual
// Kubernetes probe timeout, so the probe gets our answer instead of its own
// timeout.
const DefaultBackendTimeout = 3 * time.Second

// Options are what the admin port reports on and acts with.
type Options struct {
	// State is the lifecycle; required.
	State *State
	// Capacity, if set, returns the open client connections and their
	// limit (0: none). At or over the limit the proxy is not ready: new
	// clients would be refused, so better to send them elsewhere. With
	// several upstreams, report the one closest to its limit.
	Capacity func() (open, limit int)
	// BackendCheck, if set, runs on every readiness probe (opt-in), with
	// BackendTimeout, e.g. a TCP dial to each upstream. Off by default
	// because a database outage then marks every proxy unready at once,
	// which takes the applications out of their Services without fixing
	// anything; Cloud SQL Auth Proxy removed the dial from its readiness
	// check for this reason (GoogleCloudPlatform/cloud-sql-proxy#2207).
	BackendCheck func(ctx context.Context) error
	// BackendTimeout bounds BackendCheck; 0 means DefaultBackendTimeout.
	BackendTimeout time.Duration
	// BackendCacheTTL is how long a BackendCheck result answers further
	// probes (0: DefaultBackendCacheTTL; negative: not at all). Probes
	// arriving while a check runs always wait for it rather than start
	// their own. So however often and from however many places
	// /readiness is asked, the upstreams see at most one check per TTL.
	BackendCacheTTL time.Duration
	// Metrics serves /metrics; nil: 404.
	Metrics http.Handler
	// AllowNonLoopback permits listening beyond loopback, which Kubernetes
	// probes need (the kubelet connects to the pod IP). Anyone who can
	// reach the port can then read the metrics. /quitquitquit is never
	// served here (see ServeShutdown).
	AllowNonLoopback bool
	// Logger; nil discards.
	Logger *slog.Logger
}

// Handler returns the admin endpoints as one handler, for Start and for
// tests and callers that mount them on their own server.
func Handler(o Options) http.Handler {
	if o.State == nil {
		o.State = NewState()
	}
	if o.BackendTimeout <= 0 {
		o.BackendTimeout = DefaultBackendTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BackendCacheTTL == 0 {
		o.BackendCacheTTL = DefaultBackendCacheTTL
	}
	h := &handlers{o: o}
	if o.BackendCheck != nil {
		h.backend = &sharedCheck{check: o.BackendCheck, timeout: o.BackendTimeout, ttl: o.BackendCacheTTL}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /startup", h.startup)
	mux.HandleFunc("GET /liveness", h.liveness)
	mux.HandleFunc("GET /readiness", h.readiness)
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	return mux
}

type handlers struct {
	o       Options
	backend *sharedCheck
}

// startup is 200 once every listener has been up, and stays 200 while
// draining: a Kubernetes startup probe only gates the other probes, and
// `rds-iam-proxy wait` only needs to know the proxy came up.
func (h *handlers) startup(w http.ResponseWriter, _ *http.Request) {
	if !h.o.State.Started() {
		reply(w, http.StatusServiceUnavailable, "starting")
		return
	}
	reply(w, http.StatusOK, "ok")
}

// liveness is 200 while the process can answer HTTP at all. It must never
// depend on the database or AWS: a failing liveness probe restarts the
// container, and restarting every proxy in the fleet during an RDS or STS
// outage turns the outage into crash loops and fixes nothing. Cloud SQL Auth
// Proxy once checked instance connections in its liveness probe
// (GoogleCloudPlatform/cloud-sql-proxy#995) and went back to a process-only
// check (#1271). Draining is still alive: the kubelet must not kill a
// proxy that is finishing its sessions.
func (h *handlers) liveness(w http.ResponseWriter, _ *http.Request) {
	reply(w, http.StatusOK, "ok")
}

func (h *handlers) readiness(w http.ResponseWriter, r *http.Request) {
	if err := h.ready(r.Context()); err != nil {
		reply(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	reply(w, http.StatusOK, "ok")
}

// ready says why the proxy should not get new clients, cheapest checks
// first so that a draining proxy answers without touching the network.
func (h *handlers) ready(ctx context.Context) error {
	if p := h.o.State.Phase(); p != Serving {
		return errors.New(p.String())
	}
	if h.o.Capacity != nil {
		if open, limit := h.o.Capacity(); limit > 0 && open >= limit {
			return fmt.Errorf("connection limit reached (%d/%d)", open, limit)
		}
	}
	if h.backend != nil {
		err, fresh := h.backend.result(ctx)
		if err != nil {
			if fresh {
				h.o.Logger.Warn("readiness: backend check failed", "err", err)
			}
			return fmt.Errorf("backend check failed: %w", err)
		}
	}
	return nil
}

func reply(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// Server is a running admin port.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Start listens on addr ("" means DefaultAddress) and serves Handler(o)
// until Close. It refuses an address that is not loopback unless
// o.AllowNonLoopback: the port reveals the upstreams' names and counts.
func Start(addr string, o Options) (*Server, error) {
	if addr == "" {
		addr = DefaultAddress
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if !o.AllowNonLoopback {
		if err := checkLoopback(addr); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin port: listen on %s: %w", addr, err)
	}
	// The name may have resolved to something else than it looked like.
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() && !o.AllowNonLoopback {
		ln.Close()
		return nil, fmt.Errorf("admin port: %s is %s, not a loopback address; allow it explicitly to expose the admin port", addr, tcp.IP)
	}
	timeout := o.BackendTimeout
	if timeout <= 0 {
		timeout = DefaultBackendTimeout
	}
	s := serveHTTP(ln, Handler(o), timeout+30*time.Second, o.Logger) // a scrape under load, or a slow backend check
	o.Logger.Info("admin port ready", "address", ln.Addr().String())
	return s, nil
}

// serveHTTP serves h on ln until Close.
func serveHTTP(ln net.Listener, h http.Handler, writeTimeout time.Duration, log *slog.Logger) *Server {
	s := &Server{
		srv: &http.Server{
			Handler: h,
			// Probes, scrapes and shutdown requests are small and quick;
			// these bound what a stuck or hostile client can hold open.
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s
}

// checkLoopback refuses addresses that are visibly not loopback before
// anything is bound: an empty host (every interface) or a literal IP beyond
// loopback. Names other than localhost are checked after listening.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if host == "" {
		return fmt.Errorf("admin address %q listens on every interface; use 127.0.0.1:PORT, or allow non-loopback addresses explicitly", addr)
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() {
		return fmt.Errorf("admin address %q is not a loopback address; allow non-loopback addresses explicitly to expose the admin port", addr)
	}
	return nil
}

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Done delivers the serve loop's end: nil after Close, an error if serving
// failed.
func (s *Server) Done() <-chan error { return s.done }

// Close stops the admin port: it lets requests in flight (a scrape, the
// /quitquitquit that started this shutdown) finish until ctx is done, then
// cuts them. Close it last, after draining, so probes keep answering
// "draining" meanwhile.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("admin port: %w", err), s.srv.Close())
	}
	return err
}
