package bridge

import "time"

// Clock is where the engine gets the time. Production uses the system clock; tests and the sandbox
// use clocks they can move (package bridge/clock). Deadlines never live only in a Clock: they are
// timer rows in the store, and the clock only says when to look at them.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed on this clock.
	After(d time.Duration) <-chan time.Time
}
