package failure

import (
	"errors"
	"strings"
)

// Failure is one refusal before the relay, in words a person can act on.
// Cause and Fix never hold a token or a secret; Err may say more, for the
// log only.
type Failure struct {
	Reason Reason
	// Cause says what went wrong, without the advice: "the upstream
	// db.example at 10.0.0.5:5432 did not complete the login in time".
	Cause string
	// Fix says what to do about it ("" when nothing can be said): "check
	// that the DB is reachable from here".
	Fix string
	// Code, when set, is a server's own code to pass on in place of the
	// one the engine picks for Reason.
	Code Code
	// Err is what went wrong underneath, for the log.
	Err error
}

// Code is a server's own error code, passed through to the client: only
// the field of the engine the failure came from is set.
type Code struct {
	SQLState string // Postgres
	Errno    uint16 // MySQL
}

// New is a Failure with a cause and a fix.
func New(reason Reason, cause, fix string) *Failure {
	return &Failure{Reason: reason, Cause: cause, Fix: fix}
}

// Wrap is New with the underlying error kept for the log.
func Wrap(reason Reason, err error, cause, fix string) *Failure {
	return &Failure{Reason: reason, Cause: cause, Fix: fix, Err: err}
}

// Text joins cause and fix in one sentence, for a text that has room for
// only one (a MySQL ERR, a log line, a CLI error): "CAUSE. Fix: FIX".
func (f *Failure) Text() string { return Join(f.Cause, f.Fix) }

// Error is Text: a Failure reads the same wherever it ends up.
func (f *Failure) Error() string { return f.Text() }

func (f *Failure) Unwrap() error { return f.Err }

// Join writes a cause and its fix as one sentence. It is the one place
// the two meet in text.
func Join(cause, fix string) string {
	if fix == "" {
		return cause
	}
	return strings.TrimSuffix(cause, ".") + FixSeparator + fix
}

// FixSeparator stands between a cause and its fix in one text.
const FixSeparator = ". Fix: "

// As finds a Failure in err's chain.
func As(err error) (*Failure, bool) {
	var f *Failure
	ok := errors.As(err, &f)
	return f, ok
}
