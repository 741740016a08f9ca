// Package transcript reads a chat's archived records as people read a conversation: messages in
// order with who wrote them, the bridge's notices and the chat's events as quiet lines, and each
// message's fate — queued and why, delivered, failed and why, outcome unknown, cancelled and why,
// refused — gathered from the receipts the archive keeps about it (records naming its message id),
// which are folded under the message instead of shown on their own.
//
// It is pure: records in, entries out. The compliance API serves it, the sandbox marks the
// employee's own messages with it. It imports compliance only.
package transcript

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wxteams/wxteams/compliance"
)

// Entry types.
const (
	Message = "message" // a customer's or an employee's message
	Notice  = "notice"  // an auto-message of the bridge, to the customer or to an employee
	Event   = "event"   // the chat's routing, members, status, #LEAVE …
)

// Fate states of a message.
const (
	Sending   = "sending"   // handed over for delivery; no answer yet (or a retry is due)
	Queued    = "queued"    // held in the chat's queue (Reason says why)
	Delivered = "delivered" // the channel accepted it
	Failed    = "failed"    // the channel refused it for good
	Unknown   = "unknown"   // the request may have reached the channel; never resent
	Cancelled = "cancelled" // taken back before it went out (Reason says why)
	Refused   = "refused"   // not accepted at all (Reason says why)
	Blocked   = "blocked"   // a firm's rule kept it from its recipient (Reason names the rule)
	Redacted  = "redacted"  // a firm's rule replaced passages before delivery (Entry.Delivered is what went out)
)

// Person is someone in a transcript.
type Person struct {
	Kind string `json:"kind"` // customer, employee, system, admin
	ID   string `json:"id,omitempty"`
	Name string `json:"name"`
}

// Names names the chat's people (the store's directory).
type Names interface {
	Employee(id string) string // the display name, or "" when unknown
	Contact(openID string) string
}

// Entry is one line of a transcript.
type Entry struct {
	Seq       int64           `json:"seq"`
	At        time.Time       `json:"at"`
	Type      string          `json:"type"`
	Kind      compliance.Kind `json:"kind"`
	MessageID string          `json:"message_id,omitempty"`
	Author    Person          `json:"author"`
	To        []Person        `json:"to,omitempty"`
	Text      string          `json:"text,omitempty"`
	// Media describes an attachment ("image/png, 12 KB").
	Media    string   `json:"media,omitempty"`
	Template string   `json:"template,omitempty"` // a notice's template
	About    []string `json:"about,omitempty"`    // the messages a notice reports the fate of
	Fate     *Fate    `json:"fate,omitempty"`
	// Delivered is the text its recipient received when a firm's rule redacted the message.
	Delivered string `json:"delivered,omitempty"`
	// Records are the sequence numbers, in the chat's stream, this entry shows: its own and its
	// receipts'. An export of what is on screen is an export of these.
	Records []int64 `json:"records"`
}

// Fate is what became of a message, with each step that led there.
type Fate struct {
	State    string    `json:"state"`
	Reason   string    `json:"reason,omitempty"` // in words
	At       time.Time `json:"at"`
	Receipts []Receipt `json:"receipts"`
}

// Receipt is one archived step of a message's delivery.
type Receipt struct {
	Seq    int64           `json:"seq"`
	At     time.Time       `json:"at"`
	Kind   compliance.Kind `json:"kind"`
	State  string          `json:"state"`
	To     *Person         `json:"to,omitempty"` // for a customer's message: the employee it went to
	Reason string          `json:"reason,omitempty"`
}

// receiptKinds are the kinds that report on a message (by Meta.MessageID) rather than stand alone.
var receiptKinds = map[compliance.Kind]string{
	compliance.KindQueued:         Queued,
	compliance.KindReleased:       Sending,
	compliance.KindCancelled:      Cancelled,
	compliance.KindRefused:        Refused,
	compliance.KindDelivered:      Delivered,
	compliance.KindDeliveryFailed: Failed,
	compliance.KindDeliveryRetry:  Sending,
	compliance.KindOutcomeUnknown: Unknown,
	compliance.KindRequeued:       Queued,
	compliance.KindBlocked:        Blocked,
	compliance.KindRedacted:       Redacted,
}

// ReceiptState is the state a record about a message puts it in, and whether it is a receipt. A
// kind this package does not know that names a message ("message.blocked", say) is a receipt too:
// its state is the kind's last word.
func ReceiptState(r *compliance.Record, m compliance.Meta) (string, bool) {
	if st, ok := receiptKinds[r.Kind]; ok {
		return st, true
	}
	if m.MessageID == "" {
		return "", false
	}
	switch r.Kind {
	case compliance.KindCustomerMessage, compliance.KindEmployeeMessage, compliance.KindAutoMessage:
		return "", false
	}
	kind := string(r.Kind)
	if strings.HasPrefix(kind, "message.") || strings.HasPrefix(kind, "supervision.") {
		return kind[strings.LastIndex(kind, ".")+1:], true
	}
	return "", false
}

// Build reads one chat's records, in sequence order, into its transcript.
func Build(records []*compliance.Record, names Names) []Entry {
	var (
		out  []Entry
		byID = map[string]int{} // message id → entry index
	)
	for _, r := range records {
		meta, _ := compliance.DecodeMeta(r.Meta)
		content, _ := compliance.DecodeContent(r.Body)
		if st, ok := ReceiptState(r, meta); ok {
			if i, found := byID[meta.MessageID]; found {
				if r.Kind == compliance.KindRedacted {
					out[i].Delivered = content.Text
				}
				out[i].addReceipt(r, meta, st, names)
				continue
			}
		}
		e := Entry{Seq: r.Seq, At: r.At, Kind: r.Kind, MessageID: meta.MessageID, Author: actor(r.Actor, names),
			Text: content.Text, Records: []int64{r.Seq}, Template: meta.Template, About: meta.About}
		if meta.MediaType != "" {
			e.Media = fmt.Sprintf("%s, %s", meta.MediaType, size(meta.MediaSize))
			if meta.MediaName != "" {
				e.Media = meta.MediaName + " (" + e.Media + ")"
			}
		}
		switch r.Kind {
		case compliance.KindCustomerMessage:
			e.Type = Message
			e.Fate = &Fate{State: Sending, At: r.At, Receipts: []Receipt{}}
		case compliance.KindEmployeeMessage:
			e.Type = Message
			e.Fate = &Fate{State: Sending, At: r.At, Receipts: []Receipt{}}
			if meta.Contact != "" {
				e.To = []Person{contact(meta.Contact, names)}
			}
		case compliance.KindAutoMessage:
			e.Type = Notice
			e.Fate = &Fate{State: Sending, At: r.At, Receipts: []Receipt{}}
			if meta.Direction == "to_employee" && meta.Employee != "" {
				e.To = []Person{employee(meta.Employee, names)}
			} else if meta.Contact != "" {
				e.To = []Person{contact(meta.Contact, names)}
			}
		default:
			e.Type = Event
			e.Text = describe(r.Kind, meta, names)
			if r.Kind == compliance.KindLeave {
				unrelayed(out, "#LEAVE") // the customer's #LEAVE is a command to wxteams, not a message for anyone
			}
			if st, ok := ReceiptState(r, meta); ok { // a receipt whose message is not in view
				e.Text = "Message " + meta.MessageID + ": " + st + nonEmpty(" — ", Reason(r.Kind, meta))
			}
		}
		if e.MessageID != "" && e.Fate != nil {
			byID[e.MessageID] = len(out)
		}
		out = append(out, e)
	}
	return out
}

// unrelayed clears the fate of the latest customer message that was the command text: it went to
// nobody.
func unrelayed(out []Entry, command string) {
	for i := len(out) - 1; i >= 0; i-- {
		if out[i].Kind == compliance.KindCustomerMessage {
			if strings.EqualFold(strings.TrimSpace(out[i].Text), command) && len(out[i].Fate.Receipts) == 0 {
				out[i].Fate = nil
			}
			return
		}
	}
}

func (e *Entry) addReceipt(r *compliance.Record, m compliance.Meta, state string, names Names) {
	rc := Receipt{Seq: r.Seq, At: r.At, Kind: r.Kind, State: state, Reason: Reason(r.Kind, m)}
	if e.Kind == compliance.KindCustomerMessage && m.Employee != "" {
		p := employee(m.Employee, names)
		rc.To = &p
	}
	e.Records = append(e.Records, r.Seq)
	e.Fate.Receipts = append(e.Fate.Receipts, rc)
	e.Fate.At = r.At
	if e.Kind != compliance.KindCustomerMessage {
		e.Fate.State, e.Fate.Reason = state, rc.Reason
		return
	}
	for _, x := range e.Fate.Receipts {
		if x.State == Blocked { // withheld from every member
			e.Fate.State, e.Fate.Reason = Blocked, x.Reason
			return
		}
	}
	// A customer's message goes to every member: delivered once it reached each one it was sent
	// to, failed if it failed for any.
	last := map[string]Receipt{}
	var order []string
	for _, x := range e.Fate.Receipts {
		if x.State == Redacted {
			continue // a step on its way, not an answer from a member
		}
		key := ""
		if x.To != nil {
			key = x.To.ID
		}
		if _, seen := last[key]; !seen {
			order = append(order, key)
		}
		last[key] = x
	}
	e.Fate.State, e.Fate.Reason = Delivered, ""
	var failed, pending []string
	for _, k := range order {
		x := last[k]
		who := "the employee"
		if x.To != nil {
			who = x.To.Name
		}
		switch x.State {
		case Delivered:
		case Sending, Queued:
			pending = append(pending, who)
		default:
			failed = append(failed, who+" ("+x.State+nonEmpty(": ", x.Reason)+")")
		}
	}
	switch {
	case len(failed) > 0:
		e.Fate.State, e.Fate.Reason = Failed, "not delivered to "+strings.Join(failed, ", ")
	case len(pending) > 0:
		e.Fate.State = Sending
	}
}

func nonEmpty(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// Filter narrows a transcript: to what a person wrote or was sent, a time window and some types.
type Filter struct {
	Person string    // an employee id or an openid
	From   time.Time // inclusive
	To     time.Time // exclusive
	Types  []string  // Message, Notice, Event; none means all
}

// Apply returns the entries that pass the filter.
func (f Filter) Apply(entries []Entry) []Entry {
	out := []Entry{}
	for _, e := range entries {
		if !f.From.IsZero() && e.At.Before(f.From) || !f.To.IsZero() && !e.At.Before(f.To) {
			continue
		}
		if len(f.Types) > 0 && !slices.Contains(f.Types, e.Type) {
			continue
		}
		if f.Person != "" && e.Author.ID != f.Person && !slices.ContainsFunc(e.To, func(p Person) bool { return p.ID == f.Person }) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// actor names who caused a record: "customer:<openid>", "employee:<id>", "system", "admin:<who>".
func actor(a string, names Names) Person {
	kind, id, _ := strings.Cut(a, ":")
	switch kind {
	case "customer":
		return contact(id, names)
	case "employee":
		return employee(id, names)
	case "system":
		return Person{Kind: "system", Name: "wxteams"}
	case "admin", "cli", "compliance":
		return Person{Kind: "admin", ID: id, Name: id}
	}
	return Person{Kind: kind, ID: id, Name: a}
}

func employee(id string, names Names) Person {
	p := Person{Kind: "employee", ID: id, Name: id}
	if names != nil {
		if n := names.Employee(id); n != "" {
			p.Name = n
		}
	}
	return p
}

func contact(openID string, names Names) Person {
	p := Person{Kind: "customer", ID: openID, Name: openID}
	if names != nil {
		if n := names.Contact(openID); n != "" {
			p.Name = n
		}
	}
	return p
}

func size(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d KB", (n+1023)>>10)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
}
