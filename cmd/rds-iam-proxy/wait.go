package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/health"
)

// waitPollInterval is how often wait asks /startup: often enough that an
// application starts within a fraction of a second of the proxy, rarely
// enough to be no load.
const waitPollInterval = 200 * time.Millisecond

// cmdWait blocks until the proxy's /startup says every listener is up, so
// that an application container's entrypoint ("rds-iam-proxy wait && exec
// app") does not race the sidecar. It exits 1 after --max.
func cmdWait(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("wait", "rds-iam-proxy wait [--admin-address HOST:PORT] [--max 30s]\n\nWait until the proxy on this machine serves (its /startup answers 200); exit 1 after --max.", stderr)
	addr := fs.String("admin-address", health.DefaultAddress, "the proxy's admin port")
	limit := fs.Duration("max", 30*time.Second, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return exitForFlagError(err, stderr)
	}
	if *limit <= 0 {
		fmt.Fprintln(stderr, "rds-iam-proxy wait: --max must be positive")
		return 2
	}
	url := adminURL(*addr, "/startup")
	ctx, cancel := context.WithTimeout(ctx, *limit)
	defer cancel()
	client := &http.Client{}
	tick := time.NewTicker(waitPollInterval)
	defer tick.Stop()
	var last error
	for {
		last = probeStartup(ctx, client, url)
		if last == nil {
			fmt.Fprintln(stdout, "rds-iam-proxy is serving")
			return 0
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(stderr, "rds-iam-proxy wait: the proxy at %s did not start within %s (last: %v)\n", *addr, *limit, last)
			return 1
		case <-tick.C:
		}
	}
}

// probeStartup asks /startup once, with a short deadline of its own so that
// a hung connection does not eat the whole wait.
func probeStartup(ctx context.Context, client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := client.Do(req)
	if err != nil {
		return unreachable(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// adminURL accepts the admin address as HOST:PORT (as the serving side's
// flag takes it) or as a URL, and names path on it.
func adminURL(addr, path string) string {
	base := strings.TrimSuffix(addr, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	return base + path
}

// unreachable shortens a failed request to its cause: the admin port not
// listening is the usual one, and the URL is already in the message.
func unreachable(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		err = ue.Unwrap()
	}
	return fmt.Errorf("admin port not reachable: %w", err)
}
