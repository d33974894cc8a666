package validate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/dsql"
)

// Doctor's steps that only an Aurora DSQL upstream has.
const (
	StepDSQLPolicy = "dsql policy"
	StepDSQLNotes  = "aurora dsql"
)

// dsqlSteps are doctor's steps for an Aurora DSQL cluster: the shared
// ones (credentials, clock, network, TLS against the system's roots),
// then DSQL's own: the name, the policy action on the cluster's ARN, the
// login as the proxy makes it, and what DSQL lacks.
func (d *doctor) dsqlSteps() []func(context.Context) Check {
	return []func(context.Context) Check{
		d.credentials, d.callerIdentity, d.clock, d.dsqlEndpoint, d.dns, d.tcp, d.tls,
		d.dsqlPolicy, d.dsqlLogin, d.dsqlNotes,
	}
}

// dsqlAdmin says whether the login signs for DbConnectAdmin.
func (d *doctor) dsqlAdmin() bool {
	a, err := config.ParseDSQLAction(d.cfg.DSQLAction)
	if err != nil {
		a = config.DSQLAuto
	}
	return a.Admin(d.o.DBUser)
}

func (d *doctor) dsqlEndpoint(context.Context) Check {
	c := Check{Name: StepEndpoint, Status: Fail}
	id, region, ok := authtoken.DSQLCluster(d.host)
	if !ok {
		c.Detail = fmt.Sprintf("--endpoint %s is not an Aurora DSQL cluster name (ID.dsql.REGION.on.aws): tokens are signed for this name and DSQL accepts only its own", d.host)
		c.Fix = "--endpoint ID.dsql.REGION.on.aws:5432 (aws dsql get-cluster --identifier ID); to connect through a tunnel keep that --endpoint and add --dial-address"
		return c
	}
	if d.regionErr != nil {
		c.Detail, c.Fix = d.regionErr.Error(), "pass --region, the cluster's region"
		return c
	}
	if d.region != region {
		c.Detail = fmt.Sprintf("token region mismatch: tokens are signed for %s, but the cluster %s is in %s", d.region, d.host, region)
		c.Fix = "drop --region (the endpoint's region is used) or pass --region " + region
		return c
	}
	return Check{Name: StepEndpoint, Status: OK, Detail: fmt.Sprintf("%s:%d, Aurora DSQL cluster %s; tokens are signed for %s in %s (%s)",
		d.host, d.port, id, authtoken.DSQLAction(d.dsqlAdmin()), d.region, d.regionNote)}
}

// dsqlPolicy asks IAM's policy simulator whether the signer may do the
// login's action on the cluster's ARN.
func (d *doctor) dsqlPolicy(ctx context.Context) Check {
	id, _, _ := authtoken.DSQLCluster(d.host)
	action := authtoken.DSQLAction(d.dsqlAdmin())
	arn := authtoken.DSQLClusterARN(d.region, d.account, id)
	fix := fmt.Sprintf("allow %s on %s (rds-iam-proxy setup policy --engine dsql prints the policy)", action, arn)
	source, err := PolicySourceARN(d.callerARN)
	if err != nil {
		return Check{Name: StepDSQLPolicy, Status: Skip, Detail: "could not check (" + err.Error() + ")", Fix: fix}
	}
	client := iam.NewFromConfig(d.awsCfg, func(o *iam.Options) {
		if o.Region == "" {
			o.Region = d.stsRegion()
		}
	})
	sim, err := simulateAction(ctx, client, source, action, arn)
	if err != nil {
		var cnc *CouldNotCheck
		if errors.As(err, &cnc) {
			return Check{Name: StepDSQLPolicy, Status: Skip, Detail: cnc.Error(), Fix: "let this identity call iam:SimulatePrincipalPolicy on " + source + ", or " + fix}
		}
		return Check{Name: StepDSQLPolicy, Status: Fail, Detail: err.Error()}
	}
	switch {
	case sim.Decision == "allowed":
		return Check{Name: StepDSQLPolicy, Status: OK, Detail: fmt.Sprintf("%s may %s on %s", source, action, arn)}
	case sim.Decision == "explicitDeny":
		return Check{Name: StepDSQLPolicy, Status: Fail, Detail: fmt.Sprintf("an explicit Deny in the policies of %s refuses %s on %s", source, action, arn),
			Fix: "remove or narrow the Deny statement (the role's policies, permission boundary, the account's SCPs)"}
	case len(sim.Missing) > 0:
		return Check{Name: StepDSQLPolicy, Status: Fail, Detail: fmt.Sprintf("the statement of %s that allows %s on %s is conditioned on %s, which the request does not supply", source, action, arn, strings.Join(sim.Missing, ", ")),
			Fix: "drop the condition; " + fix}
	}
	return Check{Name: StepDSQLPolicy, Status: Fail, Detail: fmt.Sprintf("no policy of %s allows %s on %s", source, action, arn), Fix: fix}
}

// dsqlLogin logs in the proxy's way (a DSQL token, the database
// postgres) and explains a refusal as the proxy does.
func (d *doctor) dsqlLogin(ctx context.Context) Check {
	target := fmt.Sprintf("%s@%s:%d", d.o.DBUser, d.host, d.port)
	err := d.tokenLogin(ctx)
	if err == nil {
		return Check{Name: StepLogin, Status: OK, Detail: fmt.Sprintf("logged in as %s (database postgres) with a %s token signed by %s for %s", target, authtoken.DSQLAction(d.dsqlAdmin()), d.callerARN, d.region)}
	}
	c := Check{Name: StepLogin, Status: Fail}
	if ce, ok := errors.AsType[*authtoken.CredentialsError](err); ok {
		c.Detail, c.Fix = ce.Cause(), ce.Fix()
		return c
	}
	if f := dsql.ExplainLogin(d.host, d.region, d.o.DBUser, d.dsqlAdmin(), authtoken.Identity{ARN: d.callerARN, Account: d.account}, err); f != nil {
		c.Detail, c.Fix = f.Cause, f.Fix
		return c
	}
	if f, ok := d.tlsUp.Explain(err, time.Now()); ok {
		c.Detail, c.Fix = f.Cause, f.Fix
		return c
	}
	c.Detail = fmt.Sprintf("cannot log in as %s: %v", target, err)
	return c
}

// dsqlNotes says what an application moving to DSQL meets: the features
// it lacks, the optimistic concurrency conflicts, the session lifetime.
func (d *doctor) dsqlNotes(context.Context) Check {
	return Check{Name: StepDSQLNotes, Status: OK,
		Detail: DSQLMissingFeatures + "; " + DSQLOCCAdvice + "; sessions end after an hour",
		Fix:    "keep your pool's max connection lifetime under an hour (pgxpool MaxConnLifetime, HikariCP maxLifetime, SQLAlchemy pool_recycle)"}
}
