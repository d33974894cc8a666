package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/health"
)

// cmdShutdown asks the proxy on this machine to shut down as on SIGTERM,
// through POST /quitquitquit on its shutdown listener (--shutdown-address,
// a loopback port or a unix socket of its own, never the admin port). For
// Kubernetes Jobs and scripts, where the application's container cannot
// signal the sidecar's process: the Job's command ends with
// "rds-iam-proxy shutdown" so that the pod completes.
func cmdShutdown(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("shutdown", "rds-iam-proxy shutdown [--shutdown-address HOST:PORT|unix:PATH]\n\nAsk the proxy on this machine to drain and exit (POST /quitquitquit on its shutdown listener,\nwhich it serves when started with the same --shutdown-address).", stderr)
	addr := fs.String("shutdown-address", health.DefaultShutdownAddress, "the proxy's shutdown listener: loopback HOST:PORT or unix:PATH (its shutdown_address)")
	fs.String("admin-address", "", "no longer used: /quitquitquit is not served on the admin port (pass --shutdown-address)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up on the request after this long")
	if err := parseFlags(fs, args); err != nil {
		return exitForFlagError(err, stderr)
	}
	// Given on the command line, it is a script written for the old
	// place; RDS_IAM_PROXY_ADMIN_ADDRESS in the environment is the
	// proxy's own setting (and wait's), not a mistake.
	if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(strings.TrimLeft(a, "-"), "admin-address") }) {
		fmt.Fprintln(stderr, "rds-iam-proxy shutdown: --admin-address: /quitquitquit is no longer served on the admin port, which may be reachable from other pods. Fix: start the proxy with --shutdown-address 127.0.0.1:9802 (or unix:PATH) and pass the same --shutdown-address here")
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := requestShutdown(ctx, *addr); err != nil {
		fmt.Fprintf(stderr, "rds-iam-proxy shutdown: %s: %v\n", *addr, err)
		return 1
	}
	fmt.Fprintln(stdout, "rds-iam-proxy is shutting down")
	return 0
}

// requestShutdown POSTs /quitquitquit to addr: HOST:PORT or unix:PATH.
func requestShutdown(ctx context.Context, addr string) error {
	client := http.DefaultClient
	url := adminURL(addr, "/quitquitquit")
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		client = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}}
		url = "http://rds-iam-proxy/quitquitquit"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return fmt.Errorf("bad shutdown address: %w", err)
	}
	res, err := client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap()
		}
		return fmt.Errorf("shutdown listener not reachable: %w (is the proxy running, started with --shutdown-address %s?)", err, addr)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	msg := strings.TrimSpace(string(body))
	switch res.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
		return fmt.Errorf("no /quitquitquit here (%s): is this the admin port? The proxy serves it only on its --shutdown-address", res.Status)
	}
	return fmt.Errorf("refused: %s: %s", res.Status, msg)
}
