//go:build !unix

package main

import "context"

// startSocat: socat runs in its own process group here only on Unix; the
// suite runs no socat side elsewhere.
func startSocat(context.Context, string) (string, func(), error) { return "", nil, nil }
