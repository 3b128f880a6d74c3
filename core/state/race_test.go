//go:build race

package state

// raceEnabled: the race detector is on (the long state tests shorten themselves).
const raceEnabled = true
