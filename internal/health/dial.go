package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// DialCheck returns a BackendCheck that opens a TCP connection to every
// address (each upstream's dial address) at once and closes it. It proves
// the network path only, not TLS or IAM: those would sign a token and log
// in on every probe. Even a bare dial is noticed by the server: MySQL logs
// "Got an error reading communication packets" for each one
// (GoogleCloudPlatform/cloud-sql-proxy#1652), one more reason the check is
// opt-in.
func DialCheck(addrs ...string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		errs := make([]error, len(addrs))
		var wg sync.WaitGroup
		for i, addr := range addrs {
			wg.Go(func() {
				var d net.Dialer
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					errs[i] = fmt.Errorf("dial %s: %w", addr, err)
					return
				}
				c.Close()
			})
		}
		wg.Wait()
		return errors.Join(errs...)
	}
}
