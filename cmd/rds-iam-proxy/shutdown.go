package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/health"
)

// cmdShutdown asks the proxy on this machine to shut down as on SIGTERM,
// through POST /quitquitquit. For Kubernetes Jobs and scripts, where the
// application's container cannot signal the sidecar's process: the Job's
// command ends with "rds-iam-proxy shutdown" so that the pod completes.
func cmdShutdown(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("shutdown", "rds-iam-proxy shutdown [--admin-address HOST:PORT]\n\nAsk the proxy on this machine to drain and exit (POST /quitquitquit on its admin port).", stderr)
	addr := fs.String("admin-address", health.DefaultAddress, "the proxy's admin port")
	timeout := fs.Duration("timeout", 10*time.Second, "give up on the request after this long")
	if err := parseFlags(fs, args); err != nil {
		return exitForFlagError(err, stderr)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := requestShutdown(ctx, adminURL(*addr, "/quitquitquit")); err != nil {
		fmt.Fprintf(stderr, "rds-iam-proxy shutdown: %s: %v\n", *addr, err)
		return 1
	}
	fmt.Fprintln(stdout, "rds-iam-proxy is shutting down")
	return 0
}

func requestShutdown(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return fmt.Errorf("bad admin address: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w (is the proxy running, with its admin port on this address?)", unreachable(err))
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	msg := strings.TrimSpace(string(body))
	switch res.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
		return fmt.Errorf("the proxy does not accept /quitquitquit (%s): start it with quitquitquit enabled", res.Status)
	}
	return fmt.Errorf("refused: %s: %s", res.Status, msg)
}
