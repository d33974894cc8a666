package launch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
)

// Following an Aurora global database's primary region. Its writer
// endpoint (NAME.global-XXXX.global.rds.amazonaws.com) names no region,
// and a token signed for any region but the primary cluster's is refused,
// so after a cross-region switchover a proxy that signed for AWS_REGION
// would fail every login. The primary comes from the RDS API
// (DescribeGlobalClusters: the member with IsWriter, its region from its
// ARN); the proxy asks again on a timer and at once when a token is
// refused.

// globalRefresh is how often a global database's primary is asked for
// [choice: a control-plane call twice a minute costs nothing and a
// refused token triggers a look at once anyway].
const globalRefresh = 30 * time.Second

// globalMinGap keeps refused logins (a storm of them after a switchover)
// from turning into a storm of API calls.
const globalMinGap = time.Second

// globalRegion is the region of a global database's primary cluster now;
// it implements proxy.RegionFollower.
type globalRegion struct {
	name   string // the global cluster identifier
	lookup func(ctx context.Context, apiRegion string) (string, error)
	every  time.Duration

	region atomic.Pointer[string]
	kick   chan struct{}

	mu      sync.Mutex
	lastErr string // the last lookup failure, logged once until it changes
}

func newGlobalRegion(name string, lookup func(context.Context, string) (string, error), region string) *globalRegion {
	g := &globalRegion{name: name, lookup: lookup, every: globalRefresh, kick: make(chan struct{}, 1)}
	g.region.Store(&region)
	return g
}

// Region is the primary's region as last seen.
func (g *globalRegion) Region() string { return *g.region.Load() }

// Rejected asks for a look at once (without blocking a login).
func (g *globalRegion) Rejected() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// run follows the primary until ctx ends.
func (g *globalRegion) run(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(g.every)
	defer t.Stop()
	var last time.Time // the first refusal is looked into at once
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-g.kick:
			if wait := globalMinGap - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		last = time.Now()
		g.refresh(ctx, log)
	}
}

// refresh asks once, within a bound, and logs a change of primary.
func (g *globalRegion) refresh(ctx context.Context, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	old := g.Region()
	region, err := g.lookup(ctx, old)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return // shutting down
		}
		if msg := err.Error(); msg != g.lastErr {
			g.lastErr = msg
			log.Warn("cannot look up the global database's primary region; still signing for the last one", "global_cluster", g.name, "region", old, "err", err)
		}
		return
	}
	g.lastErr = ""
	if region != old {
		g.region.Store(&region)
		log.Info("the global database's primary moved: tokens are now signed for its region", "global_cluster", g.name, "from", old, "to", region)
	}
}

// describeGlobalPrimary is the lookup against the RDS API, asked in
// apiRegion (any region the global database has a member in).
func (u *Upstream) describeGlobalPrimary(name string) func(context.Context, string) (string, error) {
	return func(ctx context.Context, apiRegion string) (string, error) {
		client := rds.NewFromConfig(u.Tokens.AWSConfig(), func(o *rds.Options) { o.Region = apiRegion })
		out, err := client.DescribeGlobalClusters(ctx, &rds.DescribeGlobalClustersInput{GlobalClusterIdentifier: aws.String(name)})
		if err != nil {
			return "", fmt.Errorf("rds:DescribeGlobalClusters %s in %s: %w", name, apiRegion, err)
		}
		for _, gc := range out.GlobalClusters {
			for _, m := range gc.GlobalClusterMembers {
				if m.IsWriter != nil && *m.IsWriter {
					// arn:PARTITION:rds:REGION:ACCOUNT:cluster:ID
					if f := strings.Split(aws.ToString(m.DBClusterArn), ":"); len(f) > 3 && f[3] != "" {
						return f[3], nil
					}
					return "", fmt.Errorf("global database %s: the writer's ARN %q names no region", name, aws.ToString(m.DBClusterArn))
				}
			}
		}
		return "", fmt.Errorf("global database %s has no writer member now (a switchover or failover in progress?)", name)
	}
}

// findGlobalRegion settles the region for a global writer endpoint: the
// primary cluster's, followed from then on; unless --region was given,
// which is kept (and not followed). It runs after FindRegion, whose
// region (AWS_REGION or the profile) is where the API is asked.
func (u *Upstream) findGlobalRegion(ctx context.Context, log *slog.Logger) {
	name := authtoken.GlobalClusterName(u.Endpoint.Host)
	if name == "" {
		return
	}
	if u.Config.Region != "" {
		u.RegionSource = fmt.Sprintf("given explicitly; %s is a global database endpoint: without --region the proxy would follow its primary's region across switchovers", u.Endpoint.Host)
		return
	}
	lookup := u.describeGlobalPrimary(name)
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	primary, err := lookup(lctx, u.Region)
	if err != nil {
		u.RegionSource = fmt.Sprintf("from the AWS configuration: the primary of global database %s could not be looked up (%v). Fix: allow rds:DescribeGlobalClusters on arn:%s:rds::ACCOUNT:global-cluster:%s, or pass --region (not followed across switchovers)",
			name, err, authtoken.Partition(u.Region), name)
		if log != nil {
			log.Warn("signing for the AWS configuration's region; will keep looking for the global database's primary", "global_cluster", name, "region", u.Region, "err", err)
		}
	} else {
		u.Region = primary
		u.RegionSource = fmt.Sprintf("the primary cluster of global database %s (rds:DescribeGlobalClusters), followed across switchovers", name)
	}
	u.global = newGlobalRegion(name, lookup, u.Region)
}
