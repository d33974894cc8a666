package mywire

import (
	"context"
	"net"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/conncut"
)

// deadlineFrom applies ctx's deadline to c for the duration of a step, and
// cuts the step short when ctx is cancelled. After stop returns the cut has
// either not happened or has finished (see conncut), so the caller's own
// deadline changes are not overwritten by a late one.
func deadlineFrom(ctx context.Context, c net.Conn) (stop func()) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	cut := conncut.All(ctx, c)
	return func() { cut.Stop() }
}
