package bot

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wxteams/wxteams/bridge"
)

// cardLines is a card's text blocks, in order.
func cardLines(c card) []string {
	b, _ := json.Marshal(c)
	var parsed struct {
		Body []struct {
			Text string `json:"text"`
		} `json:"body"`
	}
	_ = json.Unmarshal(b, &parsed)
	var out []string
	for _, el := range parsed.Body {
		out = append(out, el.Text)
	}
	return out
}

// A notice about the employee's own messages opens with their fate; other notices do not.
func TestNoticesOpenWithTheFateOfTheirMessages(t *testing.T) {
	for _, c := range []struct {
		notice string
		about  []string
		want   string
	}{
		{"employee.queued_capped", []string{"m1"}, "⏳ Queued"},
		{"employee.requeued_window", []string{"m1", "m2"}, "⏳ Back in the queue · 2 messages"},
		{"employee.released", []string{"m1", "m2", "m3"}, "✓ Sent · 3 messages"},
		{"employee.delivery_failed", []string{"m1"}, "✗ Not delivered"},
		{"employee.outcome_unknown", []string{"m1"}, "⚠ Outcome unknown"},
		{"employee.refused_left", []string{"m1"}, "⛔ Not sent"},
		{"employee.too_long", []string{"m1"}, "⛔ Not sent"},
		{"employee.cancelled", []string{"m1"}, "⊘ Cancelled"},
		{"employee.customer_left", []string{"m1", "m2"}, "⊘ Cancelled · 2 messages"},
		{"employee.blocked", []string{"m1"}, "⛔ Not sent · firm rule"},
		{"employee.redacted", []string{"m1"}, "✂ Redacted · firm rule"},
		{"employee.withheld", []string{"m1"}, "⛔ Withheld · firm rule"},
		{"employee.limit", nil, "WeChat · WeChat customer 1"},
		{"employee.help", nil, "WeChat · WeChat customer 1"},
	} {
		m := &bridge.TeamsMessage{Kind: bridge.TeamsNotice, Notice: c.notice, About: c.about, ContactName: "WeChat customer 1", Message: bridge.TextMessage("text")}
		if got := cardLines(noticeCard(m)); got[0] != c.want || !strings.Contains(strings.Join(got, "\n"), "text") {
			t.Errorf("%s about %v: the card reads %q; want it to open with %q", c.notice, c.about, got, c.want)
		}
	}
}
