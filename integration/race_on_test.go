//go:build race

package integration

// raceEnabled: the suite runs with -race, so a go command it runs builds
// with it too, sharing the build cache.
const raceEnabled = true
