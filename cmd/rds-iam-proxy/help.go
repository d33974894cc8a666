package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

// commandInfo is one command as help and completion list it.
type commandInfo struct {
	name    string // as typed: "run", "setup sql"
	summary string
}

// commandList is every command, in the order help lists them. Commands
// with flags are asked for their flag set (flagSetOf), so a flag is
// listed from the code that parses it; TestCommandListComplete checks the
// list against the dispatcher and the overview.
var commandList = []commandInfo{
	{"run", "serve clients on localhost (the default command)"},
	{"token", "print one IAM auth token"},
	{"whoami", "show the AWS identity tokens are signed as"},
	{"doctor", "check every step of an IAM login; name the broken one"},
	{"validate", "check the database side of IAM auth, with fix SQL"},
	{"setup sql", "print the SQL that creates an IAM database user"},
	{"setup policy", "print the IAM policy allowing rds-db:connect (or a role's trust policy)"},
	{"wait", "wait until the proxy serves (app entrypoints)"},
	{"shutdown", "ask the proxy to drain and exit (Jobs, scripts)"},
	{"demo", "the whole path on this machine: a throwaway database, emulated AWS, the proxy"},
	{"emulate", "emulated STS, IMDS and RDS IAM front before a real database"},
	{"version", "print the version, commit and build date"},
	{"completion", "print the shell completion script: bash, zsh or fish"},
	{"help", "show the overview, or one command's page: help COMMAND"},
}

// topCommands are the first words of the commands ("setup" once).
func topCommands() []string {
	var out []string
	for _, c := range commandList {
		w, _, _ := strings.Cut(c.name, " ")
		if len(out) == 0 || out[len(out)-1] != w {
			out = append(out, w)
		}
	}
	return out
}

// printHelp is a command's page: its synopsis, then its flags with the
// two dashes they are written with.
func printHelp(w io.Writer, synopsis string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s\n\nFlags (each also as RDS_IAM_PROXY_<FLAG>, e.g. RDS_IAM_PROXY_DIAL_ADDRESS):\n", synopsis)
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if kind != "" {
			line += " " + kind
		}
		fmt.Fprintln(w, line)
		usage = strings.ReplaceAll(usage, "\n", "\n    \t")
		if !isZeroDefault(f, kind) {
			if kind == "string" {
				usage += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				usage += fmt.Sprintf(" (default %v)", f.DefValue)
			}
		}
		fmt.Fprintf(w, "    \t%s\n", usage)
	})
}

// isZeroDefault says whether f's default is its type's zero value, which
// help leaves out (as the flag package does).
func isZeroDefault(f *flag.Flag, kind string) bool {
	switch f.DefValue {
	case "", "0", "0s", "false", "[]":
		return true
	}
	return kind == "" && f.DefValue == "false"
}

// cmdHelp is "help [COMMAND [SUBCOMMAND]]": the overview, or a command's
// own page on stdout (what COMMAND --help prints on stderr).
func cmdHelp(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 0
	}
	switch args[0] {
	case "help", "-h", "--help", "-help":
		fmt.Fprintln(stdout, "rds-iam-proxy help [COMMAND [SUBCOMMAND]]\n\nShows the overview of the commands, or one command's page with its flags.")
		return 0
	case "version":
		fmt.Fprintln(stdout, "rds-iam-proxy version\n\nPrints the version, the commit it was built from, the build date, and Go's version and platform.")
		return 0
	case "completion":
		fmt.Fprint(stdout, completionHelp)
		return 0
	}
	for _, c := range topCommands() {
		if c == args[0] {
			page := append(append([]string(nil), args...), "--help")
			return runMain(ctx, page, stdout, stdout)
		}
	}
	fmt.Fprintf(stderr, "rds-iam-proxy help: unknown command %q%s\n", args[0], didYouMean(args[0], topCommands(), ""))
	return 2
}
