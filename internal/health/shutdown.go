package health

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultShutdownAddress is where `rds-iam-proxy shutdown` sends its
// request unless told otherwise. The proxy serves /quitquitquit only when
// its shutdown address is set.
const DefaultShutdownAddress = "127.0.0.1:9802"

// ShutdownOptions configure the shutdown listener.
type ShutdownOptions struct {
	// Quit is called once, on the first POST /quitquitquit, and must start
	// the same shutdown as SIGTERM. It must return promptly (cancel a
	// context, send on a buffered channel): the request is answered after
	// it returns, so a caller that sees success knows shutdown has begun.
	Quit func()
	// Logger; nil discards.
	Logger *slog.Logger
}

// ServeShutdown serves POST /quitquitquit, and nothing else, on ln until
// Close. ln must be a unix socket or a loopback TCP address.
//
// It is a listener of its own, never the admin port: the admin port may
// have to listen on the pod's address for the kubelet's probes, and there a
// check of the peer's address does not keep other pods out. A service mesh
// such as Istio delivers inbound traffic to the application from
// 127.0.0.6, a loopback address, so behind it every pod that reaches the
// admin port would look local. A loopback listener is reachable only from
// this machine (this pod's network namespace); a unix socket only by who
// may open its file.
func ServeShutdown(ln net.Listener, o ShutdownOptions) (*Server, error) {
	if err := localOnly(ln.Addr()); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := serveHTTP(ln, ShutdownHandler(o), 10*time.Second, o.Logger)
	o.Logger.Info("shutdown listener ready", "address", addrText(ln.Addr()))
	return s, nil
}

// localOnly refuses a listener other machines could reach.
func localOnly(a net.Addr) error {
	switch a := a.(type) {
	case *net.UnixAddr:
		return nil
	case *net.TCPAddr:
		if a.IP.IsLoopback() {
			return nil
		}
		return fmt.Errorf("shutdown address %s is not a loopback address: whoever reaches it could stop the proxy. Fix: 127.0.0.1:PORT or unix:PATH", a)
	}
	return fmt.Errorf("shutdown address %s: want a loopback TCP address or a unix socket", a)
}

func addrText(a net.Addr) string {
	if a.Network() == "unix" {
		return "unix:" + a.String()
	}
	return a.String()
}

// ShutdownHandler is the shutdown listener's handler, for ServeShutdown
// and tests.
func ShutdownHandler(o ShutdownOptions) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	q := &quitter{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("/quitquitquit", q.quit)
	return mux
}

type quitter struct {
	o    ShutdownOptions
	once sync.Once
}

// quit starts shutdown on POST. Only POST, so that a link, a prefetch or a
// crawler cannot stop the proxy; and no request carrying an Origin header,
// which browsers add to cross-site (and DNS-rebound) POSTs but curl, the
// shutdown subcommand and Kubernetes preStop hooks do not, so that a web
// page open on the same machine cannot stop it either. The listener itself
// is local only; a TCP peer that is not loopback is refused all the same.
func (q *quitter) quit(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if !localPeer(r) {
		reply(w, http.StatusForbidden, "refused: /quitquitquit is accepted only from this machine")
		return
	}
	if r.Header.Get("Origin") != "" {
		reply(w, http.StatusForbidden, "refused: request from a browser page")
		return
	}
	first := false
	q.once.Do(func() {
		first = true
		q.o.Logger.Info("shutdown requested over /quitquitquit", "remote", r.RemoteAddr)
		q.o.Quit()
	})
	if !first {
		reply(w, http.StatusOK, "already shutting down")
		return
	}
	reply(w, http.StatusOK, "shutting down")
}

// localPeer says whether the request's peer is this machine: a loopback
// TCP address, or a unix socket (whose address is no host:port).
func localPeer(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return true // a unix socket's peer
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
