package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// credFlags are the flags that choose the identity tokens are signed as,
// on top of the AWS chain: shared by run, token and whoami.
type credFlags struct {
	roles           roleList
	externalID      string
	roleSessionName string
	roleDuration    time.Duration
	stsEndpoint     string
}

func (c *credFlags) register(fs *flag.FlagSet) {
	fs.Var(&c.roles, "role-arn", "assume this role with the AWS chain's credentials before signing; a comma-separated list is a chain (assume the first, then the next with its session), e.g. for another account")
	fs.StringVar(&c.externalID, "external-id", "", "external ID to send with each --role-arn AssumeRole, when the role's trust policy requires one")
	fs.StringVar(&c.roleSessionName, "role-session-name", "", "session name for --role-arn (default: rds-iam-proxy@HOST.USER, as CloudTrail shows it)")
	fs.DurationVar(&c.roleDuration, "role-duration", 0, "session length to ask for --role-arn (15m to 12h, at most 1h for a chained role; default 15m, as the AWS SDKs ask)")
	fs.StringVar(&c.stsEndpoint, "sts-endpoint", "", "base URL for every STS call, e.g. a VPC endpoint (default: the regional STS endpoint, or AWS_ENDPOINT_URL_STS)")
}

func (c *credFlags) apply(cfg *launch.Config) {
	cfg.Roles, cfg.ExternalID, cfg.RoleSessionName, cfg.RoleDuration, cfg.STSEndpoint =
		c.roles, c.externalID, c.roleSessionName, c.roleDuration, c.stsEndpoint
}

// roleList is --role-arn: role ARNs, comma-separated; repeating the flag
// appends.
type roleList []string

func (r *roleList) String() string { return strings.Join(*r, ",") }
func (r *roleList) Set(v string) error {
	arns, err := authtoken.ParseRoleARNs(v)
	if err != nil {
		return err
	}
	*r = append(*r, arns...)
	return nil
}

// cmdWhoami shows which identity the proxy would sign tokens as: it
// fetches credentials exactly as run does and asks STS GetCallerIdentity.
func cmdWhoami(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("whoami", "rds-iam-proxy whoami [--endpoint HOST:PORT] [--profile P] [--role-arn ARN[,ARN]] [flags]\n\nShows the AWS identity the proxy signs tokens as (account, ARN, where the\ncredentials came from, when they expire), checked with sts:GetCallerIdentity.", stderr)
	var up upstreamFlags
	up.register(fs)
	timeout := fs.Duration("timeout", 30*time.Second, "limit for fetching credentials and calling STS")
	if err := parseFlags(fs, args); err != nil {
		return exitForFlagError(err, stderr)
	}
	fail := func(err error) int { fmt.Fprintln(stderr, "rds-iam-proxy whoami:", err); return 1 }
	cfg := up.config()
	host := ""
	if cfg.Endpoint != "" {
		h, _, err := launch.SplitEndpoint(cfg.Endpoint, cfg.Engine)
		if err != nil {
			return fail(err)
		}
		host = h
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	src, err := authtoken.New(ctx, cfg.TokenOptions(host, nil))
	if err != nil {
		return fail(err)
	}
	defer src.Close()
	region, note, err := authtoken.ResolveRegion(cfg.Region, host, src.ChainRegion())
	if err != nil {
		return fail(err)
	}
	id, err := src.WhoAmI(ctx, region)
	if err != nil {
		return fail(err)
	}
	source := id.Source
	if len(id.Roles) > 0 {
		source += " (assumed " + strings.Join(id.Roles, " -> ") + " on top of the AWS chain)"
	}
	fmt.Fprintf(stdout, "Account:      %s\n", id.Account)
	fmt.Fprintf(stdout, "ARN:          %s\n", id.ARN)
	fmt.Fprintf(stdout, "UserId:       %s\n", id.UserID)
	fmt.Fprintf(stdout, "AccessKeyId:  %s\n", id.AccessKeyID)
	fmt.Fprintf(stdout, "Credentials:  %s\n", source)
	if id.CanExpire {
		fmt.Fprintf(stdout, "Expires:      %s (in %s)\n", id.Expires.UTC().Format(time.RFC3339), time.Until(id.Expires).Round(time.Second))
	} else {
		fmt.Fprintf(stdout, "Expires:      never (long-term keys)\n")
	}
	fmt.Fprintf(stdout, "Region:       %s (%s)\n", region, note)
	return 0
}
