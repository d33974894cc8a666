package validate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/sqlquote"
)

// DSQLMissingFeatures is what an Aurora DSQL cluster does not have, named
// wherever a check or a setup would need one of them.
const DSQLMissingFeatures = "Aurora DSQL has no sequences, triggers, temporary tables, foreign keys or extensions, and one database, postgres"

// DSQLOCCAdvice is what to do about DSQL's optimistic concurrency
// conflicts; the proxy passes server errors through unchanged, so the
// commands and the README say it.
const DSQLOCCAdvice = "Aurora DSQL uses optimistic concurrency: a transaction that conflicts with another fails at COMMIT with SQLSTATE 40001 (OC000, OC001); retry the whole transaction"

// dsqlPrincipalPlaceholder stands for the IAM role that signs tokens when
// the caller names none.
const dsqlPrincipalPlaceholder = "arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME"

// dsqlSetup is the SQL that makes o.User a DSQL role that o.Principal's
// tokens log in as: the role with LOGIN, its AWS IAM GRANT mapping, and
// the grants (a role other than admin has none until given: public's
// USAGE included). admin needs none of it.
func dsqlSetup(o SetupOptions) ([]string, error) {
	if o.User == "admin" {
		return nil, errors.New("admin is Aurora DSQL's own role: it logs in with a dsql:DbConnectAdmin token and needs no setup (rds-iam-proxy setup policy --engine dsql prints the policy)")
	}
	if len(o.RequireSequences) > 0 {
		return nil, errors.New("no sequences on Aurora DSQL: drop --require-sequences")
	}
	if o.Database != "" && o.Database != "postgres" {
		return nil, fmt.Errorf("--database %s: an Aurora DSQL cluster has one database, postgres", o.Database)
	}
	tables, _, err := pgRequirements(o.Require, nil)
	if err != nil {
		return nil, err
	}
	principal := o.IAMPrincipal
	if principal == "" {
		principal = dsqlPrincipalPlaceholder
	}
	u := sqlquote.PGRole(o.User)
	out := []string{
		"CREATE ROLE " + u + " WITH LOGIN;",
		"AWS IAM GRANT " + u + " TO '" + strings.ReplaceAll(principal, "'", "''") + "';",
	}
	for _, s := range schemasOf(tables) {
		out = append(out, pgGrantUsage(s, o.User))
	}
	for _, r := range tables {
		out = append(out, pgGrant(r, r.Privileges, "TABLE", o.User))
	}
	return out, nil
}

// dsqlHeader is the comment SetupSQL puts before DSQL's statements.
func dsqlHeader(o SetupOptions) string {
	var b strings.Builder
	b.WriteString("-- Run as admin, connected to postgres (through the proxy: psql -h 127.0.0.1 -p 6432 -U admin postgres).\n")
	if o.IAMPrincipal == "" {
		b.WriteString("-- Replace " + dsqlPrincipalPlaceholder + " with the role whose sessions sign tokens (--iam-principal).\n")
	}
	b.WriteString("-- Mappings are listed in sys.iam_pg_role_mappings. " + DSQLMissingFeatures + ".\n")
	return b.String()
}

// DSQLPolicyJSON is the identity policy that lets a principal log in to
// the cluster: dsql:DbConnectAdmin when admin is among the roles it logs
// in as, dsql:DbConnect when another is, on
// arn:aws:dsql:REGION:ACCOUNT:cluster/ID.
func DSQLPolicyJSON(region, account, clusterID string, admin, connect bool) ([]byte, error) {
	var errs []error
	if region == "" {
		errs = append(errs, errors.New("no region"))
	}
	if !accountRE.MatchString(account) {
		errs = append(errs, fmt.Errorf("account %q is not 12 digits", account))
	}
	if clusterID == "" {
		errs = append(errs, errors.New("no cluster id (the endpoint is ID.dsql.REGION.on.aws)"))
	}
	if !admin && !connect {
		errs = append(errs, errors.New("no role to log in as (--db-user)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var actions []string
	if admin {
		actions = append(actions, authtoken.DSQLAction(true))
	}
	if connect {
		actions = append(actions, authtoken.DSQLAction(false))
	}
	var action any = actions
	if len(actions) == 1 {
		action = actions[0]
	}
	doc := policyDocument{Version: "2012-10-17", Statement: []policyStatement{{
		Sid: "DsqlConnect", Effect: "Allow", Action: action, Resource: []string{authtoken.DSQLClusterARN(region, account, clusterID)},
	}}}
	return json.MarshalIndent(doc, "", "  ")
}
