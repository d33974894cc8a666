package emulator

import (
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// simulatePrincipalPolicy is iam:SimulatePrincipalPolicy over the
// emulated identity policies: for each action and resource it answers
// allowed, explicitDeny or implicitDeny, as IAM's policy simulator does.
// Condition keys a statement needs that the request does not supply are
// listed as MissingContextValues; for rds-db:connect that includes the
// network keys (aws:SourceIp, aws:SourceVpc, ...), which RDS never
// supplies, so such a statement never matches.
func (a *AWS) simulatePrincipalPolicy(who principal, params url.Values, reqID string, log *slog.Logger) (any, *stsError) {
	source := params.Get("PolicySourceArn")
	if source == "" {
		return nil, validationError("policySourceArn", "Member must not be null", "")
	}
	if serr := a.authorize(who, "iam:SimulatePrincipalPolicy", source); serr != nil {
		return nil, serr
	}
	a.mu.Lock()
	var policy Policy
	var found bool
	if u, ok := a.users[source]; ok {
		policy, found = u.policy, true
	} else if r, ok := a.roles[source]; ok {
		policy, found = r.policy, true
	}
	a.mu.Unlock()
	if !found {
		return nil, newSTSError(http.StatusNotFound, "NoSuchEntity",
			fmt.Sprintf("The user or role with ARN %s cannot be found.", source), "")
	}
	actions := memberList(params, "ActionNames")
	if len(actions) == 0 {
		return nil, validationError("actionNames", "Member must not be null", "")
	}
	resources := memberList(params, "ResourceArns")
	if len(resources) == 0 {
		resources = []string{"*"}
	}
	ctx := contextEntries(params)
	resp := &simulateResponse{Xmlns: iamNamespace}
	resp.ResponseMetadata.RequestID = reqID
	for _, act := range actions {
		for _, res := range resources {
			ok, why := policy.Allows(act, res, ctx)
			decision := "allowed"
			switch {
			case ok:
			case strings.HasPrefix(why, "explicit Deny"):
				decision = "explicitDeny"
			default:
				decision = "implicitDeny"
			}
			er := evaluationResult{Action: act, Resource: res, Decision: decision}
			if !ok {
				er.Missing = policy.missingContextKeys(act, res, ctx)
			}
			resp.Result.Results = append(resp.Result.Results, er)
			log.Info("iam policy simulated", "caller", who.arn, "source", source, "action", act, "resource", res, "decision", decision, "why", why)
		}
	}
	return resp, nil
}

// missingContextKeys lists the condition keys of the statements that match
// action and resource, which a request for action never supplies (no keys
// are supplied by the simulator, and RDS supplies no network keys).
func (p Policy) missingContextKeys(action, resource string, supplied map[string]string) []string {
	var keys []string
	for _, s := range p.Statements {
		if !slices.ContainsFunc(s.Action, func(pat string) bool {
			return wildcardMatch(strings.ToLower(pat), strings.ToLower(action))
		}) || !slices.ContainsFunc(s.Resource, func(pat string) bool { return wildcardMatch(pat, resource) }) {
			continue
		}
		for _, kv := range s.Condition {
			for k := range kv {
				if _, given := supplied[k]; given {
					continue
				}
				if !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
		}
	}
	slices.Sort(keys)
	return keys
}

// contextEntries reads SimulatePrincipalPolicy's ContextEntries (the
// condition keys a caller asks the simulation to assume, e.g.
// aws:MultiFactorAuthPresent=true); a key with several values takes the
// first.
func contextEntries(params url.Values) map[string]string {
	var out map[string]string
	for i := 1; ; i++ {
		p := fmt.Sprintf("ContextEntries.member.%d.", i)
		name := params.Get(p + "ContextKeyName")
		if name == "" {
			return out
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = params.Get(p + "ContextKeyValues.member.1")
	}
}

// memberList reads a query-protocol list: NAME.member.1, NAME.member.2, ...
func memberList(params url.Values, name string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := params[fmt.Sprintf("%s.member.%d", name, i)]
		if !ok || len(v) == 0 {
			return out
		}
		out = append(out, v[0])
	}
}

type evaluationResult struct {
	Action   string   `xml:"EvalActionName"`
	Resource string   `xml:"EvalResourceName"`
	Decision string   `xml:"EvalDecision"`
	Missing  []string `xml:"MissingContextValues>member,omitempty"`
}

type simulateResponse struct {
	XMLName xml.Name `xml:"SimulatePrincipalPolicyResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		IsTruncated bool               `xml:"IsTruncated"`
		Results     []evaluationResult `xml:"EvaluationResults>member"`
	} `xml:"SimulatePrincipalPolicyResult"`
	ResponseMetadata responseMetadata `xml:"ResponseMetadata"`
}
