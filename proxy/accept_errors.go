package proxy

import (
	"errors"
	"syscall"
)

// outOfFiles reports whether Accept failed because the process or system is
// out of file descriptors: a passing state worth waiting out.
func outOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
