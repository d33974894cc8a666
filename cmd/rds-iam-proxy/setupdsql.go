package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/validate"
)

// dsqlPolicy is setup policy's identity policy for an Aurora DSQL
// cluster: the actions the --db-user roles need (dsql_action's choice
// for each) on the cluster's ARN, in the account given or the caller's.
func dsqlPolicy(ctx context.Context, cfg launch.Config, account string) ([]byte, error) {
	up, err := launch.Parse(cfg)
	if err != nil {
		return nil, err
	}
	id, region, ok := authtoken.DSQLCluster(up.Endpoint.Host)
	if !ok {
		return nil, fmt.Errorf("%s is not an Aurora DSQL cluster endpoint (ID.dsql.REGION.on.aws)", up.Endpoint.Host)
	}
	if cfg.Region != "" {
		region = cfg.Region
	}
	action, err := config.ParseDSQLAction(cfg.DSQLAction)
	if err != nil {
		return nil, fmt.Errorf("--dsql-action %w", err)
	}
	var admin, connect bool
	for _, u := range strings.Split(cfg.DBUser, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if action.Admin(u) {
			admin = true
		} else {
			connect = true
		}
	}
	if account == "" {
		if err := up.OpenSigner(ctx, nil); err != nil {
			return nil, err
		}
		defer up.Close()
		who, err := up.Tokens.Identity(ctx, region)
		if err != nil {
			return nil, fmt.Errorf("cannot find the account (pass --account): %w", err)
		}
		account = who.Account
	}
	return validate.DSQLPolicyJSON(region, account, id, admin, connect)
}
