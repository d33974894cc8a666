package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
)

// newFlagSet makes a subcommand's flag set.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags (each also as RDS_IAM_PROXY_<FLAG>, e.g. RDS_IAM_PROXY_DIAL_ADDRESS):\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags applies RDS_IAM_PROXY_* environment variables, then the command
// line, so flags win over the environment. It returns flag.ErrHelp after
// printing usage for -h.
func parseFlags(fs *flag.FlagSet, args []string) error {
	return config.ParseArgs(fs, args, os.LookupEnv)
}

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
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&l.format, "log-format", "text", "log format: text or json")
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
