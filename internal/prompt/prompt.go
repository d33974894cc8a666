// Package prompt asks a person for an MFA code on the controlling
// terminal (/dev/tty), as the AWS CLI does: never on stdout, which may be
// piped, and without echoing what is typed. Without a terminal (a sidecar,
// a service) it says so at once, so the caller can fail with the ways out
// instead of waiting.
package prompt

import (
	"context"
	"errors"
)

// ErrNoTerminal means there is no controlling terminal to ask on.
var ErrNoTerminal = errors.New("no terminal to ask on")

// maxCode bounds what is read: a code is six digits.
const maxCode = 64

// MFACode asks "Enter MFA code for SERIAL: " on the terminal, as the AWS CLI
// words it, and returns the line typed (without echo). It gives up when ctx
// ends.
func MFACode(ctx context.Context, serial string) (string, error) {
	return ask(ctx, "Enter MFA code for "+serial+": ")
}
