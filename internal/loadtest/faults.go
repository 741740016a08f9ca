package loadtest

import (
	"slices"
	"time"

	"github.com/wxteams/wxteams/bridge/wechat/wechatfake"
)

// The fault mode (Options.Faults): faults injected into the fakes throughout the load. Afterwards
// the archive is held against what the fakes saw (archive.go).

const customSendPath = "/cgi-bin/message/custom/send"

// fault is one kind of fault and how to inject it once.
type fault struct {
	name   string
	inject func(*World)
}

func wechatFaults(f wechatfake.Fault, n int) func(*World) {
	return func(w *World) { w.WeChat.Fail(customSendPath, slices.Repeat([]wechatfake.Fault{f}, n)...) }
}

// faults are injected in turn. Each WeChat fault meets the next customer-service send, whichever
// chat it is for.
var faults = []fault{
	{"WeChat -1 (system busy) ×3", wechatFaults(wechatfake.Fault{Code: -1}, 3)},
	{"WeChat answers after 1.5 s ×2", wechatFaults(wechatfake.Fault{Delay: 1500 * time.Millisecond}, 2)},
	{"WeChat 45015 (outside the window) ×2", wechatFaults(wechatfake.Fault{Code: 45015}, 2)},
	{"connection reset before WeChat acts", wechatFaults(wechatfake.Fault{Reset: true}, 1)},
	{"Teams 429 storm ×8", func(w *World) { w.Teams.Storm(429, 8) }},
	{"WeChat 45047 (quota used) ×2", wechatFaults(wechatfake.Fault{Code: 45047}, 2)},
	{"connection reset after WeChat delivered", wechatFaults(wechatfake.Fault{Reset: true, Apply: true}, 1)},
	{"access tokens invalidated", func(w *World) { w.WeChat.ExpireAllTokens() }},
	// Microsoft: retry 502, 503 and 504; a 500 is not retried (it fails the delivery, archived).
	{"Teams 502, 503, 504", func(w *World) { w.Teams.Storm(502, 1); w.Teams.Storm(503, 1); w.Teams.Storm(504, 1) }},
}

// Faults names the kinds of fault a run with Options.Faults injects, as Result.Injected counts them.
func Faults() []string {
	names := make([]string, len(faults))
	for i, f := range faults {
		names[i] = f.name
	}
	return names
}

// injectFaults injects faults in turn, one every interval, until stop is called; it counts them
// in res.Injected.
func injectFaults(w *World, every time.Duration, res *Result) (stop func()) {
	res.Injected = map[string]int{}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			f := faults[n%len(faults)]
			f.inject(w)
			res.Injected[f.name]++
		}
	}()
	return func() { close(done); <-finished }
}
