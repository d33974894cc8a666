package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// newFlagSet makes a subcommand's flag set.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printHelp(stderr, synopsis, fs) }
	return fs
}

// parseFlags applies RDS_IAM_PROXY_* environment variables, then the command
// line, so flags win over the environment. It returns flag.ErrHelp after
// printing usage for -h.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if catch(fs, fs.Output()) {
		return errCaught
	}
	// The flag package prints its error and the whole page on a bad
	// flag; quiet it, and tell the error once with a suggestion instead
	// (the page only for -h).
	out, help := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := config.ParseArgs(fs, args, os.LookupEnv)
	fs.SetOutput(out)
	fs.Usage = help
	if errors.Is(err, flag.ErrHelp) {
		help()
	}
	return explainFlagError(err, fs)
}

// upstreamConfig is the upstream a one-upstream command's flags describe,
// as launch takes it.
func upstreamConfig(f *config.UpstreamFlags) (launch.Config, error) {
	u, err := f.Upstream()
	return launch.Config{Upstream: u, Serving: config.DefaultServing()}, err
}

// parseUpstreamFlags parses a one-upstream command's flags (as parseFlags)
// and makes the upstream they describe (as upstreamConfig). When ok is
// false the command ends with exit status code: 0 for -h, 2 for a bad flag,
// the problems already told on stderr.
func parseUpstreamFlags(cmd string, fs *flag.FlagSet, flags *config.UpstreamFlags, args []string, stderr io.Writer) (cfg launch.Config, code int, ok bool) {
	if err := parseFlags(fs, args); err != nil {
		return launch.Config{}, exitForFlagError(err, stderr), false
	}
	cfg, err := upstreamConfig(flags)
	if err != nil {
		return launch.Config{}, flagProblems(cmd, err, stderr), false
	}
	return cfg, 0, true
}

// commandFailure returns what a command calls when it gives up: it tells
// err on stderr after the command's name and returns the exit status code.
func commandFailure(cmd string, code int, stderr io.Writer) func(err error) int {
	return func(err error) int {
		fmt.Fprintf(stderr, "rds-iam-proxy %s: %v\n", cmd, err)
		return code
	}
}

// flagProblems reports the problems config found in a command's flags:
// exit status 2, as for any bad flag.
func flagProblems(cmd string, err error, stderr io.Writer) int {
	fmt.Fprintf(stderr, "rds-iam-proxy %s: %s\n", cmd, strings.ReplaceAll(err.Error(), "\n", "\n  "))
	return 2
}

// Help texts of the flags several commands have besides the settings',
// one text per flag wherever it appears.
const (
	timeoutUsage      = "limit for the whole command: AWS calls, logins and checks"
	formatUsage       = "output: text or json"
	resourceIDUsage   = "the DB's resource id (db-... of an instance, cluster-... of an Aurora cluster), for the policy when rds:DescribeDBInstances/DescribeDBClusters may not be called"
	accountHostUsage  = "MySQL: the account's host part, as in 'user'@'host'"
	iamPrincipalUsage = "Aurora DSQL (--engine dsql): the IAM role ARN whose sessions sign tokens, mapped to the role with AWS IAM GRANT (default: a placeholder to replace)"
	databaseUsage     = "the application's database: validate checks it (logging in to it through the proxy); setup sql grants CONNECT on it (Postgres) or makes the default grant on it (MySQL)"
)

// exitForFlagError turns a flag error into an exit status: 0 for -h.
func exitForFlagError(err error, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "rds-iam-proxy:", err)
	return 2
}

// logFlags are the logging flags every serving command has.
type logFlags struct {
	level  string
	format string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", config.Usage("log_level"))
	fs.StringVar(&l.format, "log-format", "text", config.Usage("log_format"))
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	return newLogger(w, l.level, l.format)
}

// newLogger makes the process's logger: text for terminals, JSON for log
// pipelines.
func newLogger(w io.Writer, levelName, format string) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(levelName)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", levelName)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}
