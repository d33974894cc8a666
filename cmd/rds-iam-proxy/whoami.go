package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/prompt"
	"github.com/rds-iam-proxy/rds-iam-proxy/validate"
)

// cmdWhoami shows which identity the proxy would sign tokens as: it
// resolves the upstream's credentials exactly as run does and asks STS
// GetCallerIdentity.
func cmdWhoami(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("whoami", "rds-iam-proxy whoami [--endpoint HOST:PORT] [--profile P] [--role-arn ARN[,ARN]] [flags]\n\nShows the AWS identity the proxy signs tokens as (account, ARN, where the\ncredentials came from, when they expire), checked with sts:GetCallerIdentity.\nIt takes run's flags for one upstream.", stderr)
	flags := config.RegisterUpstream(fs, config.LoginKeys...)
	timeout := fs.Duration("timeout", 30*time.Second, timeoutUsage)
	cfg, code, ok := parseUpstreamFlags("whoami", fs, flags, args, stderr)
	if !ok {
		return code
	}
	fail := commandFailure("whoami", 1, stderr)
	if prompt.Available() {
		// A profile with mfa_serial asks for its code here, as aws does.
		cfg.MFAPrompt = prompt.MFACode
	}
	up, err := launch.ParseIdentity(cfg)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := up.OpenSigner(ctx, nil); err != nil {
		return fail(err)
	}
	defer up.Close()
	if err := up.Tokens.Prepare(ctx); err != nil {
		return fail(err)
	}
	id, err := up.Tokens.WhoAmI(ctx, up.Region)
	if err != nil {
		// Without GetCallerIdentity, the key's account is still worth
		// saying: GetAccessKeyInfo.
		if akid, account, kerr := up.Tokens.AccessKeyAccount(ctx, up.Region); kerr == nil {
			fmt.Fprintf(stdout, "Account:      %s (from sts:GetAccessKeyInfo; sts:GetCallerIdentity failed)\n", account)
			fmt.Fprintf(stdout, "AccessKeyId:  %s\n", akid)
			fmt.Fprintf(stdout, "MFA:          %s\n", validate.MFALine(up.Tokens.MFAState(), id.AccessKeyID, id.CanExpire))
		}
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
	fmt.Fprintf(stdout, "MFA:          %s\n", validate.MFALine(up.Tokens.MFAState(), id.AccessKeyID, id.CanExpire))
	fmt.Fprintf(stdout, "Region:       %s (%s)\n", up.Region, up.RegionSource)
	return 0
}
