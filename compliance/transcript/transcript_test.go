package transcript

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/compliance"
)

type names map[string]string

func (n names) Employee(id string) string { return n["e:"+id] }
func (n names) Contact(id string) string  { return n["c:"+id] }

var people = names{"e:megan": "Megan Bowen", "e:alex": "Alex Wilber", "c:o1": "WeChat customer 1"}

// chat seals events into a chat stream's records, a minute apart.
func chat(t *testing.T, evs ...compliance.Event) []*compliance.Record {
	t.Helper()
	var (
		head compliance.Head
		out  []*compliance.Record
	)
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i, ev := range evs {
		ev.Stream, ev.ChatID, ev.At = "chat:1", 1, at.Add(time.Duration(i)*time.Minute)
		r, err := compliance.Seal(head, ev)
		if err != nil {
			t.Fatal(err)
		}
		head = compliance.Head{Seq: r.Seq, Hash: r.Hash}
		out = append(out, &r)
	}
	return out
}

func ev(kind compliance.Kind, actor string, m compliance.Meta, text string) compliance.Event {
	return compliance.Event{Kind: kind, Actor: actor, Meta: m, Content: compliance.Content{Text: text}}
}

func TestTranscriptFoldsReceiptsIntoFates(t *testing.T) {
	recs := chat(t,
		ev(compliance.KindRouting, "customer:o1", compliance.Meta{Scene: "emp:megan"}, ""),
		ev(compliance.KindCustomerMessage, "customer:o1", compliance.Meta{MessageID: "c1", Contact: "o1"}, "Hello"),
		ev(compliance.KindDelivered, "system", compliance.Meta{MessageID: "c1", Channel: "teams", Employee: "megan"}, ""),
		ev(compliance.KindDeliveryFailed, "system", compliance.Meta{MessageID: "c1", Channel: "teams", Employee: "alex", ErrCode: 403}, ""),
		ev(compliance.KindEmployeeMessage, "employee:megan", compliance.Meta{MessageID: "m1", Contact: "o1"}, "Four, queued"),
		ev(compliance.KindQueued, "system", compliance.Meta{MessageID: "m1", Reason: "capped"}, ""),
		ev(compliance.KindAutoMessage, "system", compliance.Meta{MessageID: "n1", Direction: "to_employee", Employee: "megan", Template: "employee.queued_capped", About: []string{"m1"}}, "Queued (1 of 10)"),
		ev(compliance.KindReleased, "system", compliance.Meta{MessageID: "m1", Reason: "the customer wrote"}, ""),
		ev(compliance.KindDelivered, "system", compliance.Meta{MessageID: "m1", Channel: "wechat"}, ""),
		ev(compliance.KindEmployeeMessage, "employee:megan", compliance.Meta{MessageID: "m2", Contact: "o1"}, "Too late"),
		ev(compliance.KindCancelled, "system", compliance.Meta{MessageID: "m2", Reason: "the customer left the chat (#LEAVE)"}, ""),
		ev(compliance.KindEmployeeMessage, "employee:megan", compliance.Meta{MessageID: "m3", Contact: "o1"}, "Guaranteed returns!"),
		ev("message.blocked", "system", compliance.Meta{MessageID: "m3", Reason: "rule", Matched: []string{"promises@2"}}, ""),
		ev(compliance.KindCustomerMessage, "customer:o1", compliance.Meta{MessageID: "c2", Contact: "o1"}, "#LEAVE"),
		ev(compliance.KindLeave, "customer:o1", compliance.Meta{Contact: "o1"}, ""),
		ev(compliance.KindStatus, "system", compliance.Meta{From: "active", To: "left", Reason: "#LEAVE"}, ""),
		ev(compliance.KindDeliveryFailed, "system", compliance.Meta{MessageID: "gone", Channel: "wechat", ErrCode: 45002}, ""),
	)
	got := Build(recs, people)
	var lines []string
	for _, e := range got {
		line := e.Type + " " + e.Author.Name + ": " + e.Text
		if e.Fate != nil {
			line += " [" + e.Fate.State + nonEmpty(": ", e.Fate.Reason) + "]"
		}
		lines = append(lines, line)
	}
	want := []string{
		"event WeChat customer 1: Scanned the QR code of Megan Bowen",
		"message WeChat customer 1: Hello [failed: not delivered to Alex Wilber (failed: the employee removed the app or blocked the bot (Teams 403))]",
		"message Megan Bowen: Four, queued [delivered]",
		"notice wxteams: Queued (1 of 10) [sending]",
		"message Megan Bowen: Too late [cancelled: the customer left the chat (#LEAVE)]",
		"message Megan Bowen: Guaranteed returns! [blocked: kept from its recipient by the firm's rule promises@2]",
		"message WeChat customer 1: #LEAVE",
		"event WeChat customer 1: Left the chat (#LEAVE)",
		"event wxteams: Chat active → left (#LEAVE)",
		"event wxteams: Message gone: failed — it is too long for WeChat (WeChat 45002)",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("transcript:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	queued := got[2]
	if !slices.Equal(queued.Records, []int64{5, 6, 8, 9}) {
		t.Errorf("the queued message shows records %v; want its own and its receipts', 5 6 8 9", queued.Records)
	}
	if r := queued.Fate.Receipts[0]; r.State != Queued || !strings.Contains(r.Reason, "limit of consecutive messages") {
		t.Errorf("first receipt = %+v; want queued because of the limit", r)
	}
	if got[3].To[0].Name != "Megan Bowen" || !slices.Equal(got[3].About, []string{"m1"}) {
		t.Errorf("the notice is to %v about %v; want Megan Bowen about m1", got[3].To, got[3].About)
	}
}

func TestFilter(t *testing.T) {
	recs := chat(t,
		ev(compliance.KindCustomerMessage, "customer:o1", compliance.Meta{MessageID: "c1", Contact: "o1"}, "Hello"),
		ev(compliance.KindEmployeeMessage, "employee:megan", compliance.Meta{MessageID: "m1", Contact: "o1"}, "Hi"),
		ev(compliance.KindEmployeeMessage, "employee:alex", compliance.Meta{MessageID: "m2", Contact: "o1"}, "Hi from Alex"),
		ev(compliance.KindAutoMessage, "system", compliance.Meta{MessageID: "n1", Direction: "to_employee", Employee: "megan"}, "a notice"),
		ev(compliance.KindStatus, "system", compliance.Meta{To: "active"}, ""),
	)
	all := Build(recs, people)
	texts := func(es []Entry) string {
		var s []string
		for _, e := range es {
			s = append(s, e.Text)
		}
		return strings.Join(s, "|")
	}
	for _, c := range []struct {
		f    Filter
		want string
	}{
		{Filter{Person: "megan"}, "Hi|a notice"},
		{Filter{Types: []string{Message}}, "Hello|Hi|Hi from Alex"},
		{Filter{Types: []string{Notice, Event}}, "a notice|Chat new → active"},
		{Filter{From: recs[1].At, To: recs[3].At}, "Hi|Hi from Alex"},
	} {
		if got := texts(c.f.Apply(all)); got != c.want {
			t.Errorf("%+v: %q; want %q", c.f, got, c.want)
		}
	}
}
