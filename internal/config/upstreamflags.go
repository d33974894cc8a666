package config

import (
	"errors"
	"flag"
	"fmt"
	"reflect"
)

// UpstreamFlags are the flags of a command that works on one upstream
// (token, whoami, doctor, validate, setup): the keys it names from the
// settings table, bound with the table's usage texts, so that a flag is
// written, documented and checked the same way in every command, run
// included.
type UpstreamFlags struct {
	keys []string
	u    Upstream
}

// The key sets of the one-upstream commands.
var (
	// SigningKeys say which token is signed (endpoint, user, region) and
	// as whom (profile and roles): token, setup policy.
	SigningKeys = []string{"engine", "endpoint", "region", "db_user", "profile", "role_arn", "external_id", "role_session_name", "role_duration", "sts_endpoint", "mfa_serial", "mfa_code", "mfa_duration", "dsql_action"}
	// LoginKeys add what logging in needs: where to dial and what TLS
	// trusts. whoami, doctor and validate take them, so that one command
	// line works for each of them and for run.
	LoginKeys = append(append([]string(nil), SigningKeys...), "dial_address", "tls_mode", "tls_server_name", "ca_bundle", "ca_bundle_url", "ca_bundle_region", "cache_dir")
)

// RegisterUpstream adds the flags of keys (upstream keys of the settings
// table) to fs.
func RegisterUpstream(fs *flag.FlagSet, keys ...string) *UpstreamFlags {
	f := &UpstreamFlags{keys: keys}
	v := reflect.ValueOf(&f.u).Elem()
	for _, key := range keys {
		fl, ok := lookup(upstreamFields, key)
		if !ok {
			panic(fmt.Sprintf("config: %q is not an upstream setting", key))
		}
		bindFlag(fs, fl, v.FieldByIndex(fl.index))
		if fl.key == "cache_dir" {
			fs.Var(aliasValue{fs, "cache-dir"}, "ca-cache-dir", "same as --cache-dir")
		}
	}
	return f
}

// Upstream is the upstream the flags (and their RDS_IAM_PROXY_ variables)
// describe, with the engine and name filled in, checked as run checks its
// upstreams. An endpoint is not required here: whoami works without one,
// and doctor reports a missing one as a step; what needs it fails with
// ParseEndpoint's message. The error lists every problem, each naming its
// flag.
func (f *UpstreamFlags) Upstream() (Upstream, error) {
	u := f.u
	u.origin = "flags"
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", field{key: key}.flagName(), fmt.Sprintf(format, args...)))
	}
	if u.Endpoint == "" {
		// Check the rest against a stand-in, then leave it unset.
		u.Endpoint = "unset.invalid"
		u.check(bad)
		u.Endpoint, u.Name = "", ""
	} else {
		u.check(bad)
	}
	if len(errs) > 0 {
		return Upstream{}, errors.Join(errs...)
	}
	return u, nil
}
