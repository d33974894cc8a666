// Package srvtest is what the tests of internal/throwaway/localpg and
// internal/throwaway/localmy share: the checks that a failed start explains itself
// and leaves nothing behind, a helper process that starts a server and is
// then killed (to see the server die with it), a self-signed server
// certificate, and a buffer the server's output goroutine and a test can
// share. Only tests import it.
package srvtest
