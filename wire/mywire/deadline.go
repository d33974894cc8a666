package mywire

import (
	"context"
	"net"
	"sync"
	"time"
)

// deadlineFrom applies ctx's deadline to c for the duration of a step, and
// cuts the step short when ctx is cancelled. After stop returns, the cut
// has either not happened or has finished, so the caller's own deadline
// changes are not overwritten by a late one.
func deadlineFrom(ctx context.Context, c net.Conn) (stop func()) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	cut := make(chan struct{})
	after := context.AfterFunc(ctx, func() {
		defer close(cut)
		c.SetDeadline(time.Unix(1, 0))
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			if !after() {
				<-cut
			}
		})
	}
}
