//go:build !linux

package emulator

import (
	"errors"
	"net"
)

// canStopListening: only Linux (see pause_linux.go); elsewhere PauseRefuse
// behaves as PauseReset.
const canStopListening = false

func listenTCP(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

func stopListening(net.Listener) error  { return errors.ErrUnsupported }
func startListening(net.Listener) error { return errors.ErrUnsupported }
