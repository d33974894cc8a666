//go:build !linux

package prompt

import "context"

// Available reports whether there is a terminal to ask on: never here
// (only Linux's /dev/tty handling is written); pass --mfa-code instead.
func Available() bool { return false }

func ask(context.Context, string) (string, error) { return "", ErrNoTerminal }
