package topology

import (
	"slices"
	"time"
)

// View is what one look at a cluster's topology found.
type View struct {
	// Writer is the server id of the confirmed writer: it reports itself
	// writer and is writable. "" while none is (a failover in progress).
	Writer string
	// Readers are the other live members' server ids, sorted.
	Readers []string
	// At is when the view was taken.
	At time.Time
}

// Same reports whether v and o name the same writer and readers.
func (v View) Same(o View) bool {
	return v.Writer == o.Writer && slices.Equal(v.Readers, o.Readers)
}
