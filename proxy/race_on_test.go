//go:build race

package proxy

// raceEnabled: under the race detector sync.Pool drops a quarter of what
// is Put back (on purpose, to shake out reuse bugs), so a pooled buffer
// costs an allocation now and then; allocation counts allow for it.
const raceEnabled = true
