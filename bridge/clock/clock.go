// Package clock provides the clocks the engine and the fakes run on: the system clock, a Fake that
// only moves when told (tests), and an Offset clock that runs in real time but can be jumped forward
// (the sandbox's "jump 24 h" control).
//
// Every clock here satisfies bridge.Clock. The package imports nothing from wxteams.
package clock

import (
	"sort"
	"sync"
	"time"
)

// System is the real clock.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// After is time.After.
func (System) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Fake is a clock that moves only when Advance or Set is called. Waiters whose deadline is reached
// are woken in deadline order. It is safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// After returns a channel that receives when the fake time reaches now+d.
func (f *Fake) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	at := f.now.Add(d)
	if d <= 0 {
		ch <- f.now
		return ch
	}
	f.waiters = append(f.waiters, waiter{at: at, ch: ch})
	return ch
}

// Advance moves the clock forward by d and wakes the waiters it passes.
func (f *Fake) Advance(d time.Duration) { f.Set(f.Now().Add(d)) }

// Set moves the clock to t (never backwards) and wakes the waiters it passes.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.Before(f.now) {
		return
	}
	f.now = t
	sort.Slice(f.waiters, func(i, j int) bool { return f.waiters[i].at.Before(f.waiters[j].at) })
	keep := f.waiters[:0]
	for _, w := range f.waiters {
		if !w.at.After(t) {
			w.ch <- t
			continue
		}
		keep = append(keep, w)
	}
	f.waiters = keep
}

// Offset is the real clock plus an offset that only grows. Jumping it forward makes deadlines in the
// store fall due at once; waiters on the real clock are woken early by Jump so loops look again.
type Offset struct {
	mu      sync.Mutex
	offset  time.Duration
	waiters []chan time.Time
}

// Now returns the real time plus the offset.
func (o *Offset) Now() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return time.Now().Add(o.offset)
}

// Jump moves the clock forward by d.
func (o *Offset) Jump(d time.Duration) {
	if d <= 0 {
		return
	}
	o.mu.Lock()
	o.offset += d
	ws := o.waiters
	o.waiters = nil
	o.mu.Unlock()
	now := o.Now()
	for _, ch := range ws {
		select {
		case ch <- now:
		default:
		}
	}
}

// Offset returns how far the clock has been jumped.
func (o *Offset) Offset() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.offset
}

// After fires after d of real time, or at the next Jump, whichever comes first.
func (o *Offset) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	o.mu.Lock()
	o.waiters = append(o.waiters, ch)
	o.mu.Unlock()
	time.AfterFunc(d, func() {
		select {
		case ch <- o.Now():
		default:
		}
		o.mu.Lock()
		for i, w := range o.waiters {
			if w == ch {
				o.waiters = append(o.waiters[:i], o.waiters[i+1:]...)
				break
			}
		}
		o.mu.Unlock()
	})
	return ch
}
