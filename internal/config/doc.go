// Package config reads what the run command serves: settings and a list of
// upstreams, from a YAML file (--config), RDS_IAM_PROXY_* environment
// variables and flags, in that order of strength (flags win), with one
// validation pass whose messages name the offending key.
//
// One table of settings (the tags on Settings and Upstream) makes the YAML
// keys, the flags and the environment variables, so the three never
// disagree: the key max_shutdown_delay is the flag --max-shutdown-delay and
// the variable RDS_IAM_PROXY_MAX_SHUTDOWN_DELAY.
//
// Upstreams: the file's `upstreams:` list, or the ones given on the command
// line (--upstream SPEC, repeatable; or the single-upstream flags
// --endpoint, --engine, --listen, ...), which replace the file's. Settings
// at the top level (region, tls_mode, db_user, ...) are defaults for every
// upstream: in the file an upstream's own value wins over the file's top
// level; set by a flag or variable, the setting wins over the whole file
// (flags > env > file), and a command-line upstream's own value over it.
package config
