//go:build !unix

package integration

import "errors"

// stopProcess: the suite runs on Linux; elsewhere it only compiles.
func stopProcess(int) error { return errors.New("stopping a process needs unix signals") }

func continueProcess(int) {}
