package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/wechat/wechatfake"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/export"
)

// This file is the load tool's fault mode (wxteams loadtest --faults): faults injected into the
// fakes throughout the load, and afterwards the archive held against what the fakes saw.

const customSendPath = "/cgi-bin/message/custom/send"

// loadFault is one kind of fault and how to inject it once.
type loadFault struct {
	name   string
	inject func(*sandboxWorld)
}

func wechatFaults(f wechatfake.Fault, n int) func(*sandboxWorld) {
	return func(w *sandboxWorld) { w.wechat.Fail(customSendPath, slices.Repeat([]wechatfake.Fault{f}, n)...) }
}

// loadFaults are injected in turn. Each WeChat fault meets the next customer-service send,
// whichever chat it is for.
var loadFaults = []loadFault{
	{"WeChat -1 (system busy) ×3", wechatFaults(wechatfake.Fault{Code: -1}, 3)},
	{"WeChat answers after 1.5 s ×2", wechatFaults(wechatfake.Fault{Delay: 1500 * time.Millisecond}, 2)},
	{"WeChat 45015 (outside the window) ×2", wechatFaults(wechatfake.Fault{Code: 45015}, 2)},
	{"connection reset before WeChat acts", wechatFaults(wechatfake.Fault{Reset: true}, 1)},
	{"Teams 429 storm ×8", func(w *sandboxWorld) { w.teams.Storm(429, 8) }},
	{"WeChat 45047 (quota used) ×2", wechatFaults(wechatfake.Fault{Code: 45047}, 2)},
	{"connection reset after WeChat delivered", wechatFaults(wechatfake.Fault{Reset: true, Apply: true}, 1)},
	{"access tokens invalidated", func(w *sandboxWorld) { w.wechat.ExpireAllTokens() }},
	// Microsoft: retry 502, 503 and 504; a 500 is not retried (it fails the delivery, archived).
	{"Teams 502, 503, 504", func(w *sandboxWorld) { w.teams.Storm(502, 1); w.teams.Storm(503, 1); w.teams.Storm(504, 1) }},
}

// injectFaults injects loadFaults in turn, one every interval, until stop is called; it counts
// them in res.injected.
func injectFaults(world *sandboxWorld, every time.Duration, res *loadResult) (stop func()) {
	res.injected = map[string]int{}
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
			f := loadFaults[n%len(loadFaults)]
			f.inject(world)
			res.injected[f.name]++
		}
	}()
	return func() { close(done); <-finished }
}

// archiveFacts is what the archive says about the messages of a load (or of the crash test), by
// the marker id in their text.
type archiveFacts struct {
	archived   map[int64]int       // marker id → customer and employee message records holding it
	messageOf  map[int64]string    // marker id → message id
	unknown    map[string]bool     // message ids whose send is archived as outcome unknown
	refused    map[string]bool     // message ids the policy refused (a full queue)
	queued     map[string]bool     // message ids the policy queued (a capped or inactive chat)
	customerAt map[int][]time.Time // chat → when wxteams took each customer message
	history    map[string][]string // message id → what the archive says happened to it, for a report
}

func readArchive(ctx context.Context, store *sqlstore.Store) (*archiveFacts, error) {
	f := &archiveFacts{archived: map[int64]int{}, messageOf: map[int64]string{}, unknown: map[string]bool{}, refused: map[string]bool{}, queued: map[string]bool{}, customerAt: map[int][]time.Time{}, history: map[string][]string{}}
	err := store.ExportSource().Scan(ctx, export.Scope{}, func(r *compliance.Record) error {
		meta, err := compliance.DecodeMeta(r.Meta)
		if err != nil {
			return err
		}
		if meta.MessageID != "" {
			f.history[meta.MessageID] = append(f.history[meta.MessageID],
				fmt.Sprintf("%s %s(%d %s %s)", r.At.Format("15:04:05.000"), r.Kind, meta.ErrCode, meta.Reason, meta.Error))
		}
		switch r.Kind {
		case compliance.KindOutcomeUnknown:
			f.unknown[meta.MessageID] = true
			return nil
		case compliance.KindRefused:
			f.refused[meta.MessageID] = true
			return nil
		case compliance.KindQueued:
			f.queued[meta.MessageID] = true
			return nil
		case compliance.KindCustomerMessage, compliance.KindEmployeeMessage:
		default:
			return nil
		}
		content, err := compliance.DecodeContent(r.Body)
		if err != nil {
			return err
		}
		if r.Kind == compliance.KindCustomerMessage {
			var chat int
			if _, err := fmt.Sscanf(meta.Contact, "o-load-%d", &chat); err == nil {
				f.customerAt[chat] = append(f.customerAt[chat], r.At)
			}
		}
		for _, m := range marker.FindAllStringSubmatch(content.Text, -1) {
			id, _ := strconv.ParseInt(m[1], 10, 64)
			f.archived[id]++
			f.messageOf[id] = meta.MessageID
		}
		return nil
	})
	return f, err
}

// settle runs after a faulty load: while acknowledged messages have not arrived, the customers
// of the chats waiting for employee messages write again (a message refused for the window or
// the quota waits in the queue for that), until every message has arrived or is archived as
// outcome unknown or refused by the policy (a full queue), or the patience runs out. It then holds the archive against what arrived and
// verifies its chains.
func settle(ctx context.Context, world *sandboxWorld, s *server, tr *tracker, patience time.Duration) error {
	deadline := time.Now().Add(patience)
	var facts *archiveFacts
	for {
		var err error
		if facts, err = readArchive(ctx, s.store); err != nil {
			return fmt.Errorf("read the archive: %w", err)
		}
		waiting := map[int]bool{} // chat → waits for an employee message
		tr.mu.Lock()
		for id, p := range tr.pending {
			if !p.inbound && facts.settled(id) {
				continue
			}
			waiting[p.chat] = waiting[p.chat] || !p.inbound
		}
		untold := len(untoldLocked(tr, facts))
		tr.mu.Unlock()
		if (len(waiting) == 0 && untold == 0) || time.Now().After(deadline) {
			break
		}
		for chat, employee := range waiting {
			if !employee {
				continue // only Teams deliveries are outstanding: they need time, not messages
			}
			_, tag := tr.add(true, false, chat)
			if r, _, err := world.wechat.Send(ctx, loadCustomer(chat), "Anyone there? "+tag); err != nil || !r.Acked {
				tr.addError("chat %d: nudge not acknowledged: %v %s", chat, err, r.Failure)
			}
		}
		time.Sleep(2 * time.Second)
	}
	checkArchive(tr, facts, capOf(world))
	if n, err := s.store.VerifyArchive(ctx); err != nil {
		tr.mu.Lock()
		tr.res.problems = append(tr.res.problems, fmt.Sprintf("the archive (%d records) does not verify: %v", n, err))
		tr.mu.Unlock()
	}
	return nil
}

// checkArchive holds the archive against what the fakes saw: every message written is archived
// exactly once; one that never arrived must be archived as outcome unknown; nothing arrived twice;
// and no customer got more than the cap of employee messages between two of their own messages,
// as wxteams took them.
func checkArchive(tr *tracker, facts *archiveFacts, limit int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	res := tr.res
	res.unknownSends = len(facts.unknown)
	problem := func(format string, args ...any) { res.problems = append(res.problems, fmt.Sprintf(format, args...)) }
	for id := range tr.written {
		if n := facts.archived[id]; n != 1 {
			problem("#L%d# archived %d times", id, n)
		}
	}
	for chat, n := range untoldLocked(tr, facts) {
		problem("chat %d: the employee was not told of %d messages archived as outcome unknown or refused", chat, n)
	}
	for id, p := range tr.pending {
		switch {
		case !p.inbound && facts.refused[facts.messageOf[id]]:
			delete(tr.pending, id)
			res.refused++
		case !p.inbound && facts.unknown[facts.messageOf[id]]:
			delete(tr.pending, id)
			res.unknown++
		case p.inbound:
			problem("chat %d: customer message #L%d# never reached the employee: %v", p.chat, id, facts.history[facts.messageOf[id]])
		default:
			problem("chat %d: employee message #L%d# never reached the customer: %v", p.chat, id, facts.history[facts.messageOf[id]])
		}
	}
	if res.duplicates > 0 {
		problem("%d messages arrived more than once", res.duplicates)
	}
	byChat := map[int][]arrival{}
	for _, a := range res.toCustomer {
		byChat[a.chat] = append(byChat[a.chat], a)
	}
	for chat, arrivals := range byChat {
		customer := facts.customerAt[chat]
		slices.SortFunc(customer, func(a, b time.Time) int { return a.Compare(b) })
		count := map[int]int{} // customer messages before the arrival → employee messages since
		for _, a := range arrivals {
			// The customer messages before it; the archive keeps microseconds.
			after, _ := slices.BinarySearchFunc(customer, a.at.Truncate(time.Microsecond), time.Time.Compare)
			count[after]++
			if count[after] == limit+1 {
				problem("chat %d: more than %d employee messages reached the customer after their message %d", chat, limit, after)
			}
		}
	}
}

// settled reports whether an employee message's fate is known without its arrival: archived as
// outcome unknown, or refused by the policy.
func (f *archiveFacts) settled(id int64) bool {
	m := f.messageOf[id]
	return f.unknown[m] || f.refused[m]
}

// untoldLocked returns, per chat, how many of its messages archived as outcome unknown or
// refused its employee has not (yet) been told of.
func untoldLocked(tr *tracker, facts *archiveFacts) map[int]int {
	unknownIn := map[int]int{}
	for id, w := range tr.written {
		if !w.inbound && facts.settled(id) {
			unknownIn[w.chat]++
		}
	}
	untold := map[int]int{}
	for chat, n := range unknownIn {
		if tr.told[chat] < n {
			untold[chat] = n - tr.told[chat]
		}
	}
	return untold
}

// fixedPart is the longest part of a policy text between its placeholders ({contact}, {n}, …).
func fixedPart(text string) string {
	var best string
	for _, part := range strings.FieldsFunc(text, func(r rune) bool { return r == '{' || r == '}' }) {
		if len(part) > len(best) {
			best = part
		}
	}
	return strings.TrimSpace(best)
}

// markerID is the id in a marker ("#L42#" → 42).
func markerID(m string) int64 {
	id, _ := strconv.ParseInt(strings.Trim(m, "#L"), 10, 64)
	return id
}
