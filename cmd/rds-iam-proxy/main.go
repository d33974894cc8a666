// Command rds-iam-proxy lets PostgreSQL and MySQL clients log in to RDS and
// Aurora with IAM authentication without handling tokens: it listens on localhost,
// signs a fresh IAM token for every connection and logs in upstream over
// verify-full TLS. This file only dispatches; each subcommand has its own
// file.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `rds-iam-proxy: log in to RDS and Aurora with IAM, from any PostgreSQL or MySQL client.

Usage:
  rds-iam-proxy [run] --endpoint HOST:PORT [flags]   serve clients on localhost (default command)
  rds-iam-proxy [run] --config FILE | --upstream ... several upstreams, health, metrics
  rds-iam-proxy token --endpoint HOST:PORT --db-user USER
                                                     print one IAM auth token
  rds-iam-proxy whoami [--role-arn ARN] [flags]      show the AWS identity tokens are signed as
  rds-iam-proxy doctor --endpoint HOST:PORT --db-user USER
                                                     check every step of an IAM login; name the broken one
  rds-iam-proxy demo [--check] [--engine mysql|all]  the whole path on this machine: a throwaway
                                                     Postgres (or MariaDB), emulated AWS, the proxy
  rds-iam-proxy emulate --backend HOST:PORT          emulated STS, IMDS and RDS IAM front
  rds-iam-proxy validate --endpoint HOST:PORT --db-user USER --database DB
  rds-iam-proxy validate --admin-dsn DSN --db-user USER
                                                     check the database side of IAM auth, with fix SQL
  rds-iam-proxy setup sql --db-user USER [--require SCHEMA.*:PRIVS]
                                                     print the SQL that creates an IAM database user
  rds-iam-proxy setup policy --endpoint HOST:PORT --db-user USER
                                                     print the IAM policy allowing rds-db:connect
  rds-iam-proxy wait [--max 30s]                     wait until the proxy serves (app entrypoints)
  rds-iam-proxy shutdown                             ask the proxy to drain and exit (Jobs, scripts)
  rds-iam-proxy version                              print version, commit and build date
  rds-iam-proxy completion bash|zsh|fish             print a shell completion script

Run "rds-iam-proxy help COMMAND" (or COMMAND --help) for a command's flags.
Every flag can also be set as an environment variable: --dial-address is
RDS_IAM_PROXY_DIAL_ADDRESS. AWS credentials and region come from the usual
AWS chain (AWS_PROFILE, AWS_REGION, ~/.aws/config, instance profile, IRSA, ...).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(runMain(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// runMain dispatches to a subcommand and returns the exit status.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	// The subcommands, each in its own file with the same signature.
	commands := map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{
		"run":      cmdRun,
		"token":    cmdToken,
		"demo":     cmdDemo,
		"whoami":   cmdWhoami,
		"doctor":   cmdDoctor,
		"emulate":  cmdEmulate,
		"validate": cmdValidate,
		"setup":    cmdSetup,
		"wait":     cmdWait,
		"shutdown": cmdShutdown,
	}
	if run, ok := commands[cmd]; ok {
		return run(ctx, args, stdout, stderr)
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, currentStamp())
		return 0
	case "help":
		return cmdHelp(ctx, args, stdout, stderr)
	case "completion":
		return cmdCompletion(ctx, args, stdout, stderr)
	}
	fmt.Fprintf(stderr, "rds-iam-proxy: unknown command %q%s\n\n%s", cmd, didYouMean(cmd, topCommands(), ""), usage)
	return 2
}
