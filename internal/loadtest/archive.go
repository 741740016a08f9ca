package loadtest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/export"
)

// ArchiveFacts is what the archive says about the messages of a load, by the marker id in their
// text (Marker).
type ArchiveFacts struct {
	Archived   map[int64]int       // marker id → customer and employee message records holding it
	MessageOf  map[int64]string    // marker id → message id
	Unknown    map[string]bool     // message ids whose send is archived as outcome unknown
	Refused    map[string]bool     // message ids the policy refused (a full queue)
	Queued     map[string]bool     // message ids the policy queued (a capped or inactive chat)
	History    map[string][]string // message id → what the archive says happened to it, for a report
	customerAt map[int][]time.Time // chat → when wxteams took each customer message
}

// ReadArchive reads the whole archive of store.
func ReadArchive(ctx context.Context, store *sqlstore.Store) (*ArchiveFacts, error) {
	f := &ArchiveFacts{Archived: map[int64]int{}, MessageOf: map[int64]string{}, Unknown: map[string]bool{}, Refused: map[string]bool{}, Queued: map[string]bool{}, customerAt: map[int][]time.Time{}, History: map[string][]string{}}
	err := store.ExportSource().Scan(ctx, export.Scope{}, func(r *compliance.Record) error {
		meta, err := compliance.DecodeMeta(r.Meta)
		if err != nil {
			return err
		}
		if meta.MessageID != "" {
			f.History[meta.MessageID] = append(f.History[meta.MessageID],
				fmt.Sprintf("%s %s(%d %s %s)", r.At.Format("15:04:05.000"), r.Kind, meta.ErrCode, meta.Reason, meta.Error))
		}
		switch r.Kind {
		case compliance.KindOutcomeUnknown:
			f.Unknown[meta.MessageID] = true
			return nil
		case compliance.KindRefused:
			f.Refused[meta.MessageID] = true
			return nil
		case compliance.KindQueued:
			f.Queued[meta.MessageID] = true
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
		for _, m := range Marker.FindAllStringSubmatch(content.Text, -1) {
			id, _ := strconv.ParseInt(m[1], 10, 64)
			f.Archived[id]++
			f.MessageOf[id] = meta.MessageID
		}
		return nil
	})
	return f, err
}

// Settled reports whether an employee message's fate is known without its arrival: archived as
// outcome unknown, or refused by the policy.
func (f *ArchiveFacts) Settled(id int64) bool {
	m := f.MessageOf[id]
	return f.Unknown[m] || f.Refused[m]
}

// settle runs after a faulty load: while acknowledged messages have not arrived, the customers
// of the chats waiting for employee messages write again (a message refused for the window or
// the quota waits in the queue for that), until every message has arrived or is archived as
// outcome unknown or refused by the policy (a full queue), or the patience runs out. It then
// holds the archive against what arrived and verifies its chains.
func settle(ctx context.Context, w *World, tr *tracker, patience time.Duration) error {
	deadline := time.Now().Add(patience)
	var facts *ArchiveFacts
	for {
		var err error
		if facts, err = ReadArchive(ctx, w.Store); err != nil {
			return fmt.Errorf("read the archive: %w", err)
		}
		waiting := map[int]bool{} // chat → waits for an employee message
		tr.mu.Lock()
		for id, p := range tr.pending {
			if !p.inbound && facts.Settled(id) {
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
			if r, _, err := w.WeChat.Send(ctx, Customer(chat), "Anyone there? "+tag); err != nil || !r.Acked {
				tr.addError("chat %d: nudge not acknowledged: %v %s", chat, err, r.Failure)
			}
		}
		time.Sleep(2 * time.Second)
	}
	checkArchive(tr, facts, capOf(w))
	if n, err := w.Store.VerifyArchive(ctx); err != nil {
		tr.mu.Lock()
		tr.res.Problems = append(tr.res.Problems, fmt.Sprintf("the archive (%d records) does not verify: %v", n, err))
		tr.mu.Unlock()
	}
	return nil
}

// checkArchive holds the archive against what the fakes saw: every message written is archived
// exactly once; one that never arrived must be archived as outcome unknown; nothing arrived twice;
// and no customer got more than the cap of employee messages between two of their own messages,
// as wxteams took them.
func checkArchive(tr *tracker, facts *ArchiveFacts, limit int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	res := tr.res
	res.UnknownSends = len(facts.Unknown)
	problem := func(format string, args ...any) { res.Problems = append(res.Problems, fmt.Sprintf(format, args...)) }
	for id := range tr.written {
		if n := facts.Archived[id]; n != 1 {
			problem("#L%d# archived %d times", id, n)
		}
	}
	for chat, n := range untoldLocked(tr, facts) {
		problem("chat %d: the employee was not told of %d messages archived as outcome unknown or refused", chat, n)
	}
	for id, p := range tr.pending {
		switch {
		case !p.inbound && facts.Refused[facts.MessageOf[id]]:
			delete(tr.pending, id)
			res.Refused++
		case !p.inbound && facts.Unknown[facts.MessageOf[id]]:
			delete(tr.pending, id)
			res.Unknown++
		case p.inbound:
			problem("chat %d: customer message #L%d# never reached the employee: %v", p.chat, id, facts.History[facts.MessageOf[id]])
		default:
			problem("chat %d: employee message #L%d# never reached the customer: %v", p.chat, id, facts.History[facts.MessageOf[id]])
		}
	}
	if res.Duplicates > 0 {
		problem("%d messages arrived more than once", res.Duplicates)
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

// untoldLocked returns, per chat, how many of its messages archived as outcome unknown or
// refused its employee has not (yet) been told of.
func untoldLocked(tr *tracker, facts *ArchiveFacts) map[int]int {
	unknownIn := map[int]int{}
	for id, w := range tr.written {
		if !w.inbound && facts.Settled(id) {
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
