package api

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/wxteams/wxteams/compliance"
)

// A call refused for want of a valid token is archived, but anyone on the network can make one, and
// the admin stream is never purged. So such calls cost the archive a bounded amount: in each window
// the first few are archived one by one with their path and query cut short, and the rest are
// counted by network address and archived as one record when the window ends. Calls with a valid
// token (answered, or refused for a missing role) are archived in full, one record each.

// RefusedLimits bound what calls without a valid token cost the archive. At most InFull+1 records
// per Window and per replica, each of a bounded size, are archived for them.
type RefusedLimits struct {
	Window time.Duration // [1 min]
	InFull int           // calls archived one by one per window [10]
	// QueryMax is how many bytes of such a call's path and query are kept [256].
	QueryMax int
	// Callers is how many addresses a window's summary names with their counts [16]; the calls of
	// the others are counted together.
	Callers int
}

func (l *RefusedLimits) defaults() {
	if l.Window <= 0 {
		l.Window = time.Minute
	}
	if l.InFull <= 0 {
		l.InFull = 10
	}
	if l.QueryMax <= 0 {
		l.QueryMax = 256
	}
	if l.Callers <= 0 {
		l.Callers = 16
	}
}

// refusals counts one replica's refused unauthenticated calls in fixed windows.
type refusals struct {
	lim     RefusedLimits
	clock   Clock
	archive func(compliance.Event)

	mu      sync.Mutex
	start   time.Time      // the current window's start; zero before the first call
	inFull  int            // calls archived one by one in this window
	further map[string]int // calls beyond those, by address
	others  int            // calls beyond those from addresses the summary has no room to name
	timer   chan struct{}  // closed to stop the pending summary's timer; nil when none waits
	closed  bool
}

// admit takes a refused call from addr at now. It reports whether the call is to be archived one by
// one, and returns the summary of a window that ended unsummarised (nil if none).
func (r *refusals) admit(now time.Time, addr string) (bool, *compliance.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ended *compliance.Event
	if r.start.IsZero() || !now.Before(r.start.Add(r.lim.Window)) {
		ended = r.summaryLocked(now)
		r.start, r.inFull = now, 0
	}
	if r.inFull < r.lim.InFull {
		r.inFull++
		return true, ended
	}
	if r.further == nil {
		r.further = map[string]int{}
	}
	switch _, named := r.further[addr]; {
	case named || len(r.further) < r.lim.Callers:
		r.further[addr]++
	default:
		r.others++
	}
	if r.timer == nil && !r.closed {
		stop, start := make(chan struct{}), r.start
		r.timer = stop
		wait := r.clock.After(start.Add(r.lim.Window).Sub(now))
		go func() {
			select {
			case <-wait:
				r.flush(start)
			case <-stop:
			}
		}()
	}
	return false, ended
}

// flush archives the summary of the window that started at start, if it is still unsummarised.
func (r *refusals) flush(start time.Time) {
	r.mu.Lock()
	var ev *compliance.Event
	if r.start.Equal(start) {
		ev = r.summaryLocked(r.clock.Now())
	}
	r.mu.Unlock()
	if ev != nil {
		r.archive(*ev)
	}
}

// close archives what the current window has not summarised yet and stops the timer.
func (r *refusals) close() {
	r.mu.Lock()
	r.closed = true
	ev := r.summaryLocked(r.clock.Now())
	r.mu.Unlock()
	if ev != nil {
		r.archive(*ev)
	}
}

// summaryLocked takes the counted calls out as one record ("N further refused calls from these
// addresses"); nil when there are none.
func (r *refusals) summaryLocked(now time.Time) *compliance.Event {
	if r.timer != nil {
		close(r.timer)
		r.timer = nil
	}
	n := r.others
	callers := make([]string, 0, len(r.further)+1)
	for addr, count := range r.further {
		n += count
		callers = append(callers, addr+" ×"+strconv.Itoa(count))
	}
	if n == 0 {
		return nil
	}
	sort.Strings(callers)
	if r.others > 0 {
		callers = append(callers, "other addresses ×"+strconv.Itoa(r.others))
	}
	ev := &compliance.Event{Stream: compliance.AdminStream, At: now, Kind: compliance.KindAccess, Actor: "unauthenticated",
		Meta: compliance.Meta{
			Reason:  fmt.Sprintf("%d further calls without a valid token, refused from %s to %s (not archived one by one)", n, r.start.UTC().Format(time.RFC3339), r.start.Add(r.lim.Window).UTC().Format(time.RFC3339)),
			Count:   n,
			ErrCode: 401,
			Callers: callers,
		}}
	r.further, r.others = nil, 0
	return ev
}

// callerAddress is the address a request came from, without its port, at most 64 bytes.
func callerAddress(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	if host == "" {
		host = "unknown"
	}
	return cut(host, 64)
}

// cut shortens s to at most n bytes (on a UTF-8 boundary), saying how long it was.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	end := n
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + "… (" + strconv.Itoa(len(s)) + " bytes, cut)"
}

// refused archives a call refused for want of a valid token, within the limits.
func (a *API) refused(ctx context.Context, c *call, status int, remote string) {
	addr := callerAddress(remote)
	full, ended := a.refusals.admit(a.cfg.Clock.Now(), addr)
	if ended != nil {
		a.archive(ctx, *ended)
	}
	if !full {
		return
	}
	a.archive(ctx, compliance.Event{Stream: compliance.AdminStream, At: a.cfg.Clock.Now(), Kind: compliance.KindAccess, Actor: c.actor,
		Meta: compliance.Meta{Reason: c.what, Query: cut(c.detail, a.cfg.Refused.QueryMax), ErrCode: status, Callers: []string{addr}}})
}
