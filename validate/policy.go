package validate

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
)

// policyDocument is an IAM policy in the field order AWS shows.
type policyDocument struct {
	Version   string            `json:"Version"`
	Statement []policyStatement `json:"Statement"`
}

type policyStatement struct {
	Sid       string                       `json:"Sid,omitempty"`
	Effect    string                       `json:"Effect"`
	Principal map[string]any               `json:"Principal,omitempty"`
	Action    any                          `json:"Action"`
	Resource  any                          `json:"Resource,omitempty"`
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

var (
	resourceIDRE = regexp.MustCompile(`^(db|cluster|prx)-[A-Za-z0-9]+$`)
	accountRE    = regexp.MustCompile(`^[0-9]{12}$`)
)

// ConnectTarget is what an rds-db:connect policy names.
type ConnectTarget struct {
	Region  string
	Account string // the DB's account, 12 digits
	// ResourceID is the DbiResourceId (db-...) of an instance, the
	// DbClusterResourceId (cluster-...) of an Aurora cluster, or an RDS
	// Proxy's (prx-...): not the instance's or cluster's name.
	ResourceID string
	Users      []string // database user names, case-sensitive
}

// ARNs are the dbuser ARNs of the target's users.
func (t ConnectTarget) ARNs() []string {
	out := make([]string, len(t.Users))
	for i, u := range t.Users {
		out[i] = authtoken.DBUserARN(t.Region, t.Account, t.ResourceID, u)
	}
	return out
}

func (t ConnectTarget) check() error {
	var errs []error
	if t.Region == "" {
		errs = append(errs, errors.New("no region"))
	}
	if !accountRE.MatchString(t.Account) {
		errs = append(errs, fmt.Errorf("account %q is not 12 digits", t.Account))
	}
	if !resourceIDRE.MatchString(t.ResourceID) {
		errs = append(errs, fmt.Errorf("resource id %q is not db-..., cluster-... or prx-... (it is the DbiResourceId or DbClusterResourceId, not the DB's name)", t.ResourceID))
	}
	if len(t.Users) == 0 {
		errs = append(errs, errors.New("no database user"))
	}
	for _, u := range t.Users {
		if u == "" || strings.ContainsAny(u, "/*? ") {
			errs = append(errs, fmt.Errorf("database user %q is not a plain user name", u))
		}
	}
	return errors.Join(errs...)
}

// ConnectPolicyJSON is the identity policy that allows rds-db:connect as
// each of t.Users on t's DB, indented, ready to attach to the role or user
// that signs tokens.
func ConnectPolicyJSON(t ConnectTarget) ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	doc := policyDocument{Version: "2012-10-17", Statement: []policyStatement{{
		Sid: "RdsIamConnect", Effect: "Allow", Action: "rds-db:connect", Resource: t.ARNs(),
	}}}
	return json.MarshalIndent(doc, "", "  ")
}

// CrossAccountTrustJSON is the trust policy of a role in the DB's account
// that principal (a role or user ARN, or an account id for the whole
// account) in another account may assume; with externalID when the trust
// requires one. The principal also needs sts:AssumeRole on the role in
// its own account's policy. partition is the DB's (authtoken.Partition of
// its region; "" when unknown): an account id becomes that partition's
// root ARN, and an ARN of another partition is refused, since a role can
// only be assumed from within its own partition.
func CrossAccountTrustJSON(principal, externalID, partition string) ([]byte, error) {
	switch {
	case accountRE.MatchString(principal):
		if partition == "" {
			partition = "aws"
		}
		principal = "arn:" + partition + ":iam::" + principal + ":root"
	case authtoken.IsPartition(authtoken.ARNPartition(principal)) && strings.Contains(principal, ":iam::"):
		if p := authtoken.ARNPartition(principal); partition != "" && p != partition {
			return nil, fmt.Errorf("trusted principal %q is in partition %s, the DB's region is in %s: a role can only be assumed from its own partition (give a principal of arn:%s:iam::ACCOUNT)", principal, p, partition, partition)
		}
	default:
		return nil, fmt.Errorf("trusted principal %q: give an IAM role or user ARN, or a 12-digit account id", principal)
	}
	st := policyStatement{Effect: "Allow", Principal: map[string]any{"AWS": principal}, Action: "sts:AssumeRole"}
	if externalID != "" {
		st.Condition = map[string]map[string]string{"StringEquals": {"sts:ExternalId": externalID}}
	}
	return json.MarshalIndent(policyDocument{Version: "2012-10-17", Statement: []policyStatement{st}}, "", "  ")
}

// IRSATrustJSON is the trust policy of a role for an EKS service account
// (IRSA): providerARN is the cluster's IAM OIDC provider
// (arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID),
// serviceAccount is NAMESPACE/NAME.
func IRSATrustJSON(providerARN, serviceAccount string) ([]byte, error) {
	_, issuer, ok := strings.Cut(providerARN, ":oidc-provider/")
	if !ok || issuer == "" || !authtoken.IsPartition(authtoken.ARNPartition(providerARN)) {
		return nil, fmt.Errorf("OIDC provider %q: give its ARN, arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID (aws eks describe-cluster --query cluster.identity.oidc.issuer)", providerARN)
	}
	ns, name, ok := strings.Cut(serviceAccount, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("service account %q: give NAMESPACE/NAME", serviceAccount)
	}
	st := policyStatement{Effect: "Allow", Principal: map[string]any{"Federated": providerARN},
		Action: "sts:AssumeRoleWithWebIdentity",
		Condition: map[string]map[string]string{"StringEquals": {
			issuer + ":sub": "system:serviceaccount:" + ns + ":" + name,
			issuer + ":aud": "sts.amazonaws.com",
		}}}
	return json.MarshalIndent(policyDocument{Version: "2012-10-17", Statement: []policyStatement{st}}, "", "  ")
}

// PodIdentityTrustJSON is the trust policy of a role for EKS Pod Identity.
func PodIdentityTrustJSON() ([]byte, error) {
	st := policyStatement{Effect: "Allow", Principal: map[string]any{"Service": "pods.eks.amazonaws.com"},
		Action: []string{"sts:AssumeRole", "sts:TagSession"}}
	return json.MarshalIndent(policyDocument{Version: "2012-10-17", Statement: []policyStatement{st}}, "", "  ")
}
