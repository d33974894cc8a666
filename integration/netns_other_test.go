//go:build !linux

package integration

import (
	"fmt"
	"net"
)

// listenInNetns needs Linux network namespaces; elsewhere the black-hole
// tests fail with this (the suite runs on Linux; this keeps the package
// compiling for GOOS=darwin and windows vets).
func listenInNetns(nsPath, addr string) (net.Listener, error) {
	return nil, fmt.Errorf("network namespaces (%s, %s) need Linux", nsPath, addr)
}
