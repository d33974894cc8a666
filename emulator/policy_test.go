package emulator

import (
	"strings"
	"testing"
)

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"", "", true},
		{"", "x", false},
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a*c", "ac", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbbd", false},
		{"*/app_*", "db-ABC/app_user", true},
		{"*/app_*", "db-ABC/admin", false},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXcYb", false},
		{"**a", "bbba", true},
		{"arn:aws:rds-db:*:*:dbuser:db-*/*", "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-X/u", true},
		{strings.Repeat("*a", 20) + "b", strings.Repeat("a", 60), false}, // no exponential blow-up
	}
	for _, tt := range tests {
		if got := wildcardMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestPolicyAllows(t *testing.T) {
	const (
		res   = "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-EMULATEDINSTANCE1/app_user"
		other = "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-EMULATEDINSTANCE1/admin"
	)
	allow := func(actions []string, resources ...string) Statement {
		return Statement{Effect: "Allow", Action: actions, Resource: resources}
	}
	deny := func(actions []string, resources ...string) Statement {
		return Statement{Effect: "Deny", Action: actions, Resource: resources}
	}
	connect := []string{"rds-db:connect"}
	cond := func(s Statement, op, key string, values ...string) Statement {
		s.Condition = map[string]map[string][]string{op: {key: values}}
		return s
	}
	ctx := map[string]string{
		"aws:PrincipalArn": "arn:aws:iam::123456789012:role/app",
		"aws:userid":       "AROAEXAMPLE:sess",
	}

	tests := []struct {
		name     string
		stmts    []Statement
		action   string
		resource string
		ctx      map[string]string
		want     bool
		wantWhy  string
	}{
		{"empty policy", nil, "rds-db:connect", res, ctx, false, "no statement allows"},
		{"exact allow", []Statement{allow(connect, res)}, "rds-db:connect", res, ctx, true, "allowed by statement 1"},
		{"action case-insensitive", []Statement{allow([]string{"RDS-DB:Connect"}, res)}, "rds-db:connect", res, ctx, true, "statement 1"},
		{"action wildcard", []Statement{allow([]string{"rds-db:*"}, res)}, "rds-db:connect", res, ctx, true, "statement 1"},
		{"action ?", []Statement{allow([]string{"rds-db:connec?"}, res)}, "rds-db:connect", res, ctx, true, "statement 1"},
		{"other action", []Statement{allow([]string{"rds:*"}, res)}, "rds-db:connect", res, ctx, false, "no statement allows"},
		{"resource wildcard user", []Statement{allow(connect, "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-EMULATEDINSTANCE1/*")}, "rds-db:connect", res, ctx, true, "statement 1"},
		{"resource case-sensitive", []Statement{allow(connect, strings.ToUpper(res))}, "rds-db:connect", res, ctx, false, "no statement allows"},
		{"other user", []Statement{allow(connect, other)}, "rds-db:connect", res, ctx, false, "no statement allows"},
		{"wrong region", []Statement{allow(connect, strings.Replace(res, "us-east-1", "us-west-2", 1))}, "rds-db:connect", res, ctx, false, "no statement allows"},
		{"no resource", []Statement{allow(connect)}, "rds-db:connect", res, ctx, false, "no statement allows"},
		{"no action", []Statement{allow(nil, res)}, "rds-db:connect", res, ctx, false, "no statement allows"},
		{"explicit deny wins", []Statement{allow(connect, "*"), deny(connect, res)}, "rds-db:connect", res, ctx, false, "explicit Deny in statement 2"},
		{"deny elsewhere", []Statement{allow(connect, "*"), deny(connect, other)}, "rds-db:connect", res, ctx, true, "allowed by statement 1"},
		{"unknown effect ignored", []Statement{{Effect: "allow", Action: connect, Resource: []string{res}}}, "rds-db:connect", res, ctx, false, "no statement allows"},
		{"StringEquals holds", []Statement{cond(allow(connect, res), "StringEquals", "aws:PrincipalArn", "arn:aws:iam::123456789012:role/app")}, "rds-db:connect", res, ctx, true, "statement 1"},
		{"StringEquals key name case-insensitive", []Statement{cond(allow(connect, res), "StringEquals", "AWS:principalarn", "arn:aws:iam::123456789012:role/app")}, "rds-db:connect", res, ctx, true, "statement 1"},
		{"StringEquals other value", []Statement{cond(allow(connect, res), "StringEquals", "aws:PrincipalArn", "arn:aws:iam::123456789012:role/other")}, "rds-db:connect", res, ctx, false, "no statement allows"},
		{"StringEquals any of values", []Statement{cond(allow(connect, res), "StringEquals", "aws:PrincipalArn", "x", "arn:aws:iam::123456789012:role/app")}, "rds-db:connect", res, ctx, true, "statement 1"},
		{"StringEquals missing key", []Statement{cond(allow(connect, res), "StringEquals", "aws:PrincipalTag/team", "db")}, "rds-db:connect", res, ctx, false, "no statement allows"},
		{"StringLike", []Statement{cond(allow(connect, res), "StringLike", "aws:userid", "AROA*:sess")}, "rds-db:connect", res, ctx, true, "statement 1"},
		{"StringLike no match", []Statement{cond(allow(connect, res), "StringLike", "aws:userid", "AIDA*")}, "rds-db:connect", res, ctx, false, "no statement allows"},
		{"StringNotEquals missing key holds", []Statement{cond(allow(connect, res), "StringNotEquals", "aws:PrincipalTag/team", "db")}, "rds-db:connect", res, ctx, true, "statement 1"},
		{"StringNotLike deny", []Statement{allow(connect, res), cond(deny(connect, res), "StringNotLike", "aws:userid", "AIDA*")}, "rds-db:connect", res, ctx, false, "explicit Deny in statement 2"},
		{"unknown operator never matches", []Statement{cond(allow(connect, res), "StringEqualsIgnoreCase", "aws:userid", "aroaexample:sess")}, "rds-db:connect", res, ctx, false, "no statement allows"},
		{"unknown operator deny does not apply", []Statement{allow(connect, res), cond(deny(connect, res), "Bool", "aws:MultiFactorAuthPresent", "false")}, "rds-db:connect", res, ctx, true, "statement 1"},
		{"SourceIp allow never matches for connect", []Statement{cond(allow(connect, res), "IpAddress", "aws:SourceIp", "10.0.0.0/8")}, "rds-db:connect", res, ctx, false, "no statement allows"},
		{"SourceIp ignored even if ctx has it", []Statement{cond(allow(connect, res), "StringEquals", "aws:SourceIp", "10.0.0.1")}, "rds-db:connect", res, map[string]string{"aws:SourceIp": "10.0.0.1"}, false, "no statement allows"},
		{"SourceVpc negated allow never matches", []Statement{cond(allow(connect, res), "StringNotEquals", "aws:SourceVpc", "vpc-1")}, "rds-db:connect", res, ctx, false, "no statement allows"},
		{"SourceVpce deny never matches", []Statement{allow(connect, res), cond(deny(connect, res), "StringNotEquals", "aws:SourceVpce", "vpce-1")}, "rds-db:connect", res, ctx, true, "statement 1"},
		{"VpcSourceIp never matches", []Statement{cond(allow(connect, res), "StringLike", "aws:VpcSourceIp", "*")}, "rds-db:connect", res, ctx, false, "no statement allows"},
		{"SourceIp is fine for other actions", []Statement{cond(allow([]string{"s3:GetObject"}, "*"), "StringEquals", "aws:SourceIp", "10.0.0.1")}, "s3:GetObject", "arn:aws:s3:::b/k", map[string]string{"aws:SourceIp": "10.0.0.1"}, true, "statement 1"},
		{"two operators both must hold", []Statement{{Effect: "Allow", Action: connect, Resource: []string{res}, Condition: map[string]map[string][]string{
			"StringEquals": {"aws:PrincipalArn": {"arn:aws:iam::123456789012:role/app"}},
			"StringLike":   {"aws:userid": {"AIDA*"}},
		}}}, "rds-db:connect", res, ctx, false, "no statement allows"},
		{"first allow reported", []Statement{deny(connect, other), allow(connect, "*"), allow(connect, res)}, "rds-db:connect", res, ctx, true, "allowed by statement 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := Policy{Statements: tt.stmts}.Allows(tt.action, tt.resource, tt.ctx)
			if got != tt.want || !strings.Contains(why, tt.wantWhy) {
				t.Errorf("Allows = %v, %q; want %v, containing %q", got, why, tt.want, tt.wantWhy)
			}
		})
	}
}

func TestPolicyClone(t *testing.T) {
	p := Policy{Statements: []Statement{{
		Effect: "Allow", Action: []string{"a"}, Resource: []string{"r"},
		Condition: map[string]map[string][]string{"StringEquals": {"k": {"v"}}},
	}}}
	c := p.clone()
	p.Statements[0].Action[0] = "x"
	p.Statements[0].Resource[0] = "x"
	p.Statements[0].Condition["StringEquals"]["k"][0] = "x"
	p.Statements[0].Condition["StringLike"] = nil
	s := c.Statements[0]
	if s.Action[0] != "a" || s.Resource[0] != "r" || s.Condition["StringEquals"]["k"][0] != "v" || len(s.Condition) != 1 {
		t.Errorf("clone shares memory with the original: %+v", s)
	}
}
