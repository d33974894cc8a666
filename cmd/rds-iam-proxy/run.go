package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/prompt"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/serve"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", runSynopsis, stderr)
	flags := config.Register(fs)
	if err := parseFlags(fs, args); err != nil {
		return exitForFlagError(err, stderr)
	}
	s, err := flags.Load()
	if err != nil {
		fmt.Fprintf(stderr, "rds-iam-proxy: the configuration has problems:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 2
	}
	log, err := newLogger(stderr, s.LogLevel, s.LogFormat)
	if err != nil {
		fmt.Fprintln(stderr, "rds-iam-proxy:", err)
		return 2
	}
	o := serve.Options{
		Log: log, Stderr: stderr,
		// A second SIGINT/SIGTERM during the drain exits at once.
		OnDrain: func() { signal.Reset(os.Interrupt, syscall.SIGTERM) },
	}
	if prompt.Available() {
		// MFA codes are asked on the terminal, as the AWS CLI asks them.
		o.MFAPrompt = prompt.MFACode
	}
	return serve.Run(ctx, s, o)
}

const runSynopsis = `rds-iam-proxy [run] --endpoint HOST:PORT [flags]
rds-iam-proxy [run] --upstream key=value,... [--upstream ...] [flags]
rds-iam-proxy [run] --config FILE [flags]

Serves PostgreSQL and MySQL clients on local addresses and logs each one in to
its RDS endpoint with a fresh IAM token over verify-full TLS.

Settings come from the YAML file (--config), then RDS_IAM_PROXY_<FLAG>
variables, then flags: the later wins. Upstreams given by flags (--endpoint
or --upstream) replace the file's. Settings such as --region or --tls-mode
are every upstream's default: within the file an upstream's own value wins
over the file's top level; given as a flag or variable, the setting wins
over the whole file, and an --upstream's own value wins over the flag.`
