package mywire

import (
	"context"
	"fmt"
	"net"
	"time"

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

// exchange bounds one request and answer on a session no client is
// using: ctx's deadline on c (and its cancellation cutting c) for the
// exchange; done, deferred with the exchange's error, lifts both, names
// ctx's cause in a failure and clears the deadline after a success (the
// session is used again).
func exchange(ctx context.Context, c net.Conn) (done func(*error)) {
	stop := deadlineFrom(ctx, c)
	return func(err *error) {
		stop()
		if *err != nil && ctx.Err() != nil {
			*err = fmt.Errorf("%w (%w)", *err, ctx.Err())
		}
		if *err == nil {
			c.SetDeadline(time.Time{})
		}
	}
}
