//go:build race

package testbed

// raceEnabled reports whether the test binary runs with the race detector.
const raceEnabled = true
