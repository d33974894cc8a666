// Package validate says whether IAM database authentication is set up
// right, step by step, and what to run to fix each step that is not: the
// database side (the user, rds_iam or AWSAuthenticationPlugin, grants) and
// the AWS side (credentials, IAM auth on the instance, the rds-db:connect
// policy). RDS itself only ever says "PAM authentication failed" or
// "Access denied"; this package is where the proxy says which step is
// wrong.
package validate

import (
	"encoding/json"
	"fmt"
	"io"
)

// Status is a check's outcome.
type Status string

const (
	OK   Status = "ok"
	Fail Status = "fail"
	Warn Status = "warn"
	// Skip: the check could not run (e.g. "could not check
	// (AccessDenied for rds:DescribeDBInstances)"); not a failure.
	Skip Status = "skip"
)

// Check is one step's outcome.
type Check struct {
	Name   string `json:"name"`             // short, stable: "rds_iam membership"
	Status Status `json:"status"`           // ok, fail, warn, skip
	Detail string `json:"detail,omitempty"` // what was found, in words
	// Fix is what to run to fix a failure or warning: SQL for the
	// database, an AWS CLI command or policy for AWS. Exact and ready to
	// paste.
	Fix string `json:"fix,omitempty"`
}

// Report is a list of checks in the order they ran.
type Report struct {
	Checks []Check `json:"checks"`
}

// Add appends a check.
func (r *Report) Add(c Check) { r.Checks = append(r.Checks, c) }

// OK says whether no check failed (warnings and skips are not failures).
func (r *Report) OK() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return false
		}
	}
	return true
}

// WriteText prints one line per check, with its fix indented below.
func (r *Report) WriteText(w io.Writer) error {
	for _, c := range r.Checks {
		line := fmt.Sprintf("%-4s  %s", c.Status, c.Name)
		if c.Detail != "" {
			line += ": " + c.Detail
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
		if c.Fix != "" {
			if _, err := fmt.Fprintf(w, "      fix: %s\n", c.Fix); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteJSON prints the report as JSON, with "ok" for the whole.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		OK     bool    `json:"ok"`
		Checks []Check `json:"checks"`
	}{r.OK(), r.Checks})
}
