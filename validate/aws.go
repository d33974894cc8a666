package validate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/smithy-go"
)

// CouldNotCheck is an AWS question that got no usable answer: the caller
// may not ask (AccessDenied), AWS throttled it, or it did not answer. It
// is not a failure of the setup being checked; doctor reports it as
// "could not check (AccessDenied for rds:DescribeDBInstances)".
type CouldNotCheck struct {
	Action string // e.g. "rds:DescribeDBInstances"
	Code   string // the AWS error code, or what went wrong
	Err    error
}

func (e *CouldNotCheck) Error() string {
	return fmt.Sprintf("could not check (%s for %s)", e.Code, e.Action)
}

func (e *CouldNotCheck) Unwrap() error { return e.Err }

// notFound is the DB an endpoint names not existing in the account and
// region asked.
type notFound struct {
	action, id string
	err        error
}

func (e *notFound) Error() string { return fmt.Sprintf("%s: %s not found", e.action, e.id) }
func (e *notFound) Unwrap() error { return e.err }

// classify turns an AWS API error into a CouldNotCheck, or a notFound for
// the codes that mean the DB does not exist.
func classify(err error, action, id string) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "DBInstanceNotFound", "DBInstanceNotFoundFault", "DBClusterNotFoundFault", "DBClusterNotFound":
			return &notFound{action: action, id: id, err: err}
		}
		return &CouldNotCheck{Action: action, Code: api.ErrorCode(), Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &CouldNotCheck{Action: action, Code: "no answer in time", Err: err}
	}
	return &CouldNotCheck{Action: action, Code: "no answer: " + err.Error(), Err: err}
}

// DBInfo is what the RDS API says about the DB an endpoint names.
type DBInfo struct {
	Kind       string // "instance" or "cluster"
	Identifier string // the instance's or cluster's identifier
	// ClusterID is the cluster an instance belongs to (Aurora), whose
	// resource id and IAM setting then apply.
	ClusterID string
	// ResourceID is the id dbuser ARNs name: the cluster's
	// (cluster-...) for Aurora, the instance's (db-...) otherwise.
	ResourceID string
	IAMAuth    bool
	Engine     string
	Address    string // the endpoint address the API lists
	Port       int
	ARN        string
	Action     string // the API action that answered, for messages
}

// Account is the DB's account, from its ARN.
func (d DBInfo) Account() string {
	parts := strings.Split(d.ARN, ":")
	if len(parts) > 4 {
		return parts[4]
	}
	return ""
}

// EndpointKind says what an RDS endpoint name is: "cluster" (Aurora
// writer, reader or custom endpoint: NAME.cluster-...), "proxy" (RDS Proxy:
// NAME.proxy-...) or "instance"; id is its first label (the identifier of
// an instance or cluster).
func EndpointKind(host string) (kind, id string) {
	labels := strings.Split(strings.ToLower(strings.TrimSuffix(host, ".")), ".")
	if len(labels) < 2 {
		return "instance", labels[0]
	}
	switch {
	case strings.HasPrefix(labels[1], "cluster-"):
		return "cluster", labels[0]
	case strings.HasPrefix(labels[1], "proxy-") || len(labels) > 2 && labels[1] == "endpoint" && strings.HasPrefix(labels[2], "proxy-"):
		return "proxy", labels[0]
	}
	return "instance", labels[0]
}

// DescribeEndpoint asks the RDS API about the DB host names: the instance
// (DescribeDBInstances), its Aurora cluster or the cluster the endpoint is
// (DescribeDBClusters). Errors are *CouldNotCheck when the question could
// not be answered, or wrap a "not found".
func DescribeEndpoint(ctx context.Context, c *rds.Client, host string) (DBInfo, error) {
	kind, id := EndpointKind(host)
	switch kind {
	case "proxy":
		return DBInfo{}, &CouldNotCheck{Action: "rds:DescribeDBProxies", Code: "an RDS Proxy endpoint: its IAM setting is the proxy's (aws rds describe-db-proxies)"}
	case "cluster":
		return describeCluster(ctx, c, id, host)
	}
	const action = "rds:DescribeDBInstances"
	out, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
	if err != nil {
		return DBInfo{}, classify(err, action, id)
	}
	if len(out.DBInstances) == 0 {
		return DBInfo{}, &notFound{action: action, id: id}
	}
	in := out.DBInstances[0]
	info := DBInfo{Kind: "instance", Identifier: aws.ToString(in.DBInstanceIdentifier), ResourceID: aws.ToString(in.DbiResourceId),
		IAMAuth: aws.ToBool(in.IAMDatabaseAuthenticationEnabled), Engine: aws.ToString(in.Engine), ARN: aws.ToString(in.DBInstanceArn),
		ClusterID: aws.ToString(in.DBClusterIdentifier), Action: action}
	if in.Endpoint != nil {
		info.Address, info.Port = aws.ToString(in.Endpoint.Address), int(aws.ToInt32(in.Endpoint.Port))
	}
	if info.ClusterID != "" {
		// Aurora: IAM auth and the resource id are the cluster's.
		cl, err := describeCluster(ctx, c, info.ClusterID, "")
		if err != nil {
			return info, err
		}
		info.ResourceID, info.IAMAuth, info.Action = cl.ResourceID, cl.IAMAuth, cl.Action
	}
	return info, nil
}

// describeCluster describes cluster id; when it is not found and host is
// set (a custom endpoint's first label is not the cluster's), it looks for
// the cluster that lists host among its endpoints.
func describeCluster(ctx context.Context, c *rds.Client, id, host string) (DBInfo, error) {
	const action = "rds:DescribeDBClusters"
	out, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(id)})
	if err != nil {
		err = classify(err, action, id)
		var nf *notFound
		if host == "" || !errors.As(err, &nf) {
			return DBInfo{}, err
		}
		all, lerr := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{})
		if lerr != nil {
			return DBInfo{}, classify(lerr, action, id)
		}
		for _, cl := range all.DBClusters {
			if hasEndpoint(cl, host) {
				return clusterInfo(cl), nil
			}
		}
		return DBInfo{}, err
	}
	if len(out.DBClusters) == 0 {
		return DBInfo{}, &notFound{action: action, id: id}
	}
	return clusterInfo(out.DBClusters[0]), nil
}

func hasEndpoint(cl rdstypes.DBCluster, host string) bool {
	for _, e := range append([]string{aws.ToString(cl.Endpoint), aws.ToString(cl.ReaderEndpoint)}, cl.CustomEndpoints...) {
		if strings.EqualFold(e, host) {
			return true
		}
	}
	return false
}

func clusterInfo(cl rdstypes.DBCluster) DBInfo {
	return DBInfo{Kind: "cluster", Identifier: aws.ToString(cl.DBClusterIdentifier), ResourceID: aws.ToString(cl.DbClusterResourceId),
		IAMAuth: aws.ToBool(cl.IAMDatabaseAuthenticationEnabled), Engine: aws.ToString(cl.Engine),
		Address: aws.ToString(cl.Endpoint), Port: int(aws.ToInt32(cl.Port)), ARN: aws.ToString(cl.DBClusterArn),
		Action: "rds:DescribeDBClusters"}
}

// PolicySourceARN is the IAM principal whose policies decide what a
// caller may do: the role of an assumed-role session, or the user. It
// fails for the root user and federated users, which the policy simulator
// cannot take. A role with a path (role/path/name) cannot be told from
// its session ARN; the simulator then answers NoSuchEntity.
func PolicySourceARN(callerARN string) (string, error) {
	parts := strings.SplitN(callerARN, ":", 6)
	if len(parts) != 6 {
		return "", fmt.Errorf("caller %q is not an ARN", callerARN)
	}
	partition, account, res := parts[1], parts[4], parts[5]
	switch {
	case parts[2] == "sts" && strings.HasPrefix(res, "assumed-role/"):
		role, _, _ := strings.Cut(strings.TrimPrefix(res, "assumed-role/"), "/")
		return "arn:" + partition + ":iam::" + account + ":role/" + role, nil
	case parts[2] == "iam" && strings.HasPrefix(res, "user/"):
		return callerARN, nil
	}
	return "", fmt.Errorf("the policy simulator cannot take %s (root or a federated user)", callerARN)
}

// Simulation is the policy simulator's answer for one action on one
// resource.
type Simulation struct {
	Decision string   // "allowed", "explicitDeny", "implicitDeny"
	Missing  []string // condition keys the decision needed and did not get
}

// SimulateConnect asks iam:SimulatePrincipalPolicy whether source's
// policies allow rds-db:connect on the dbuser ARN, with the condition keys
// in entries supplied (the simulator supplies none of the caller's own,
// such as aws:MultiFactorAuthPresent). Errors are *CouldNotCheck.
func SimulateConnect(ctx context.Context, c *iam.Client, source, dbUserARN string, entries ...iamtypes.ContextEntry) (Simulation, error) {
	return simulateAction(ctx, c, source, "rds-db:connect", dbUserARN, entries...)
}

// simulateAction asks IAM whether source may do action on resource.
func simulateAction(ctx context.Context, c *iam.Client, source, doAction, resource string, entries ...iamtypes.ContextEntry) (Simulation, error) {
	const action = "iam:SimulatePrincipalPolicy"
	out, err := c.SimulatePrincipalPolicy(ctx, &iam.SimulatePrincipalPolicyInput{
		PolicySourceArn: aws.String(source), ActionNames: []string{doAction}, ResourceArns: []string{resource},
		ContextEntries: entries})
	if err != nil {
		return Simulation{}, classify(err, action, source)
	}
	if len(out.EvaluationResults) == 0 {
		return Simulation{}, &CouldNotCheck{Action: action, Code: "no evaluation result"}
	}
	r := out.EvaluationResults[0]
	return Simulation{Decision: string(r.EvalDecision), Missing: r.MissingContextValues}, nil
}

// unsupportedConnectKeys are condition keys AWS does not supply for
// rds-db:connect: a statement conditioned on them never matches.
func unsupportedConnectKeys(keys []string) []string {
	var out []string
	for _, k := range keys {
		switch strings.ToLower(k) {
		case "aws:sourceip", "aws:sourcevpc", "aws:sourcevpce", "aws:vpcsourceip":
			out = append(out, k)
		}
	}
	return out
}
