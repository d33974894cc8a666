package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/validate"
)

const setupPolicySynopsis = `rds-iam-proxy setup policy --endpoint HOST:PORT --db-user USER[,USER] [flags]
rds-iam-proxy setup policy --kind trust (--trust-principal ARN|ACCOUNT | --oidc-provider ARN --service-account NS/NAME | --pod-identity)

Prints one IAM policy document (JSON) on stdout, ready for
aws iam put-role-policy --policy-document file://...:

  --kind identity (default): allows rds-db:connect as each --db-user on the DB,
    arn:PARTITION:rds-db:REGION:ACCOUNT:dbuser:RESOURCE_ID/USER (PARTITION:
    aws, aws-us-gov or aws-cn, from the region). The resource id
    (db-... of an instance, cluster-... of an Aurora cluster) is looked up
    with rds:DescribeDBInstances/DescribeDBClusters when permitted, else
    taken from --resource-id.
  --kind trust: the trust policy of the role that signs tokens: for a
    principal in another account (--trust-principal), an EKS service account
    (IRSA: --oidc-provider, --service-account) or EKS Pod Identity.

  With --engine dsql (Aurora DSQL) the identity policy allows
  dsql:DbConnectAdmin (for admin) and/or dsql:DbConnect (other roles) on
  arn:aws:dsql:REGION:ACCOUNT:cluster/ID.`

// cmdSetupPolicy is "setup policy": it prints the identity policy for
// rds-db:connect, or a role's trust policy.
func cmdSetupPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("setup policy", setupPolicySynopsis, stderr)
	kind := fs.String("kind", "identity", "which policy: identity (rds-db:connect) or trust (who may assume the role)")
	flags := config.RegisterUpstream(fs, config.SigningKeys...)
	resourceID := fs.String("resource-id", "", resourceIDUsage)
	account := fs.String("account", "", "the DB's account id (default: from the RDS API, else the caller's account)")
	trustPrincipal := fs.String("trust-principal", "", "--kind trust: the role/user ARN or account id in another account that may assume the role")
	trustExternalID := fs.String("trust-external-id", "", "--kind trust: external ID the trust policy requires of --trust-principal")
	oidcProvider := fs.String("oidc-provider", "", "--kind trust: the EKS cluster's IAM OIDC provider ARN (IRSA)")
	serviceAccount := fs.String("service-account", "", "--kind trust: NAMESPACE/NAME of the service account (IRSA)")
	podIdentity := fs.Bool("pod-identity", false, "--kind trust: a trust policy for EKS Pod Identity")
	timeout := fs.Duration("timeout", 30*time.Second, timeoutUsage)
	cfg, code, ok := parseUpstreamFlags("setup policy", fs, flags, args, stderr)
	if !ok {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "rds-iam-proxy setup policy: "+format+"\n", a...)
		return code
	}
	var (
		doc []byte
		err error
	)
	switch *kind {
	case "trust":
		switch {
		case *trustPrincipal != "":
			doc, err = validate.CrossAccountTrustJSON(*trustPrincipal, *trustExternalID, trustPartition(cfg))
		case *oidcProvider != "" || *serviceAccount != "":
			doc, err = validate.IRSATrustJSON(*oidcProvider, *serviceAccount)
		case *podIdentity:
			doc, err = validate.PodIdentityTrustJSON()
		default:
			return fail(2, "--kind trust needs --trust-principal, --oidc-provider with --service-account, or --pod-identity")
		}
		if err != nil {
			return fail(2, "%v", err)
		}
	case "identity":
		if cfg.DBUser == "" {
			return fail(2, "pass --db-user USER[,USER]")
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		if cfg.Engine == config.DSQL {
			if doc, err = dsqlPolicy(ctx, cfg, *account); err != nil {
				return fail(1, "%v", err)
			}
			break
		}
		target, err := connectTarget(ctx, cfg, *resourceID, *account)
		if err != nil {
			return fail(1, "%v", err)
		}
		for _, u := range strings.Split(cfg.DBUser, ",") {
			if u = strings.TrimSpace(u); u != "" {
				target.Users = append(target.Users, u)
			}
		}
		if doc, err = validate.ConnectPolicyJSON(target); err != nil {
			return fail(2, "%v", err)
		}
	default:
		return fail(2, "--kind %q: use identity or trust", *kind)
	}
	fmt.Fprintln(stdout, string(doc))
	return 0
}

// connectTarget finds the region, account and resource id the policy
// names: the flags, else the RDS API, else (the account) STS.
func connectTarget(ctx context.Context, cfg launch.Config, resourceID, account string) (validate.ConnectTarget, error) {
	up, err := launch.Parse(cfg)
	if err != nil {
		return validate.ConnectTarget{}, err
	}
	if err := up.OpenSigner(ctx, nil); err != nil {
		return validate.ConnectTarget{}, err
	}
	defer up.Close()
	host, region := up.Endpoint.Host, up.Region
	t := validate.ConnectTarget{Region: region, Account: account, ResourceID: resourceID}
	if t.ResourceID == "" {
		info, err := validate.DescribeEndpoint(ctx, up.RDS(), host)
		if err != nil {
			var cnc *validate.CouldNotCheck
			if errors.As(err, &cnc) {
				return t, fmt.Errorf("cannot look up the resource id of %s: %s. Fix: pass --resource-id (aws rds describe-db-instances --query 'DBInstances[].[Endpoint.Address,DbiResourceId]', or describe-db-clusters --query 'DBClusters[].[Endpoint,DbClusterResourceId]' for Aurora)", host, cnc.Error())
			}
			return t, fmt.Errorf("cannot look up the resource id of %s: %w", host, err)
		}
		t.ResourceID = info.ResourceID
		if t.Account == "" {
			t.Account = info.Account()
		}
	}
	if t.Account == "" {
		id, err := up.Tokens.Identity(ctx, region)
		if err != nil {
			return t, fmt.Errorf("cannot find the account (pass --account): %w", err)
		}
		t.Account = id.Account
	}
	return t, nil
}

// trustPartition is the partition a trust policy's principal must be in:
// the DB's region's (--region, else the endpoint's name, else AWS_REGION);
// "" when none is known, which keeps the commercial partition.
func trustPartition(cfg launch.Config) string {
	region := cfg.Region
	if region == "" && cfg.Endpoint != "" {
		host, _, err := net.SplitHostPort(cfg.Endpoint)
		if err != nil {
			host = cfg.Endpoint
		}
		region = authtoken.RegionFromEndpoint(host)
	}
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		return ""
	}
	return authtoken.Partition(region)
}
