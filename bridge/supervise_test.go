package bridge_test

import (
	"crypto/ed25519"
	"io"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/export"
	"github.com/wxteams/wxteams/compliance/supervision"
	"github.com/wxteams/wxteams/compliance/transcript"
)

// A compliance officer's day with the firm's own rules (issue 15): what a block, a redaction and a
// flag do to a message on its way, what the author is told, and what the record keeps.

const (
	officer               = "compliance:officer@acme.example"
	lin     bridge.OpenID = "o6_bmjrLin000000000000000000"
)

// insiderRule blocks talk of inside information to customers.
var insiderRule = supervision.Rule{
	ID: "insider", Name: "Inside information", Reason: "never pass on non-public information",
	Action: supervision.ActionBlock, Directions: []supervision.Direction{supervision.ToCustomer},
	Terms: []supervision.Term{{Text: "内幕消息"}, {Text: "inside information"}},
}

// passwordRule redacts passwords, both ways.
var passwordRule = supervision.Rule{
	ID: "passwords", Name: "Passwords", Action: supervision.ActionRedact,
	Directions: []supervision.Direction{supervision.ToCustomer, supervision.ToEmployee},
	Terms:      []supervision.Term{{Text: "hunter2"}},
}

// promiseRule flags promises of returns, except where the employee says there is none.
var promiseRule = supervision.Rule{
	ID: "promises", Name: "Promised returns", Action: supervision.ActionFlag,
	Directions: []supervision.Direction{supervision.ToCustomer, supervision.ToEmployee},
	Terms:      []supervision.Term{{Text: "guaranteed return"}},
	Exceptions: []string{"no guaranteed return"},
}

// useRules stores rules as an officer would and gives the engine what the store now holds.
func (w *world) useRules(rules ...supervision.Rule) []supervision.Rule {
	w.t.Helper()
	var stored []supervision.Rule
	for _, r := range rules {
		got, err := w.store.PutRule(w.ctx, r, officer, w.clock.Now())
		if err != nil {
			w.t.Fatal(err)
		}
		stored = append(stored, got)
	}
	w.reloadRules()
	return stored
}

func (w *world) reloadRules() {
	w.t.Helper()
	rules, groups, err := w.store.SupervisionRules(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	set, err := supervision.Compile(rules, groups)
	if err != nil {
		w.t.Fatal(err)
	}
	w.engine.SetRules(set)
}

// record finds the chat's record of a kind about a message, with its meta and content.
func (w *world) record(chat bridge.ChatID, kind compliance.Kind, messageID string) (compliance.Meta, compliance.Content) {
	w.t.Helper()
	for _, stream := range []string{compliance.ChatStream(int64(chat)), compliance.SupervisionStream} {
		recs, err := w.store.ArchiveStream(w.ctx, stream)
		if err != nil {
			w.t.Fatal(err)
		}
		for _, r := range recs {
			m, err := compliance.DecodeMeta(r.Meta)
			if err != nil {
				w.t.Fatal(err)
			}
			if r.Kind == kind && m.MessageID == messageID {
				c, err := compliance.DecodeContent(r.Body)
				if err != nil {
					w.t.Fatal(err)
				}
				return m, c
			}
		}
	}
	w.t.Fatalf("no %s record of message %s in chat %d", kind, messageID, chat)
	return compliance.Meta{}, compliance.Content{}
}

// reviews lists the review items of a chat as "reason:message:rules:state".
func (w *world) reviews(chat bridge.ChatID) []string {
	w.t.Helper()
	rows, err := w.store.DB().QueryContext(w.ctx, `SELECT reason, message_id, rules, state FROM review_items WHERE chat_id = `+
		strconv.FormatInt(int64(chat), 10)+` ORDER BY id`)
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var reason, msg, rules, state string
		if err := rows.Scan(&reason, &msg, &rules, &state); err != nil {
			w.t.Fatal(err)
		}
		out = append(out, reason+":"+msg+":"+rules+":"+state)
	}
	return out
}

func TestARuleBlocksAnEmployeesMessageAndSaysWhich(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		stored := w.useRules(insiderRule, passwordRule, promiseRule)

		res := w.employeeSays(ann, chat, "I have 内幕消息 on that stock")
		if res.Outcome != bridge.OutcomeRefused || res.Reason != "blocked" {
			t.Fatalf("blocked message = %+v; want refused: blocked", res)
		}
		w.customerGets(ming) // nothing reaches the customer
		w.employeeGets(ann, "Not sent: your message to WeChat customer 1 breaks the firm's rule “Inside information” (never pass on non-public information). It is kept in the compliance record; rephrase it or ask your compliance team.")

		meta, content := w.record(chat, compliance.KindEmployeeMessage, res.MessageID)
		if content.Text != "I have 内幕消息 on that stock" {
			t.Errorf("the record keeps %q; want what Ann wrote", content.Text)
		}
		var refs []string
		for _, r := range stored {
			refs = append(refs, r.Ref())
		}
		slices.Sort(refs)
		if !slices.Equal(meta.Rules, refs) || !slices.Equal(meta.Matched, []string{"insider@1"}) || meta.Action != "block" {
			t.Errorf("message record: rules %q, matched %q, action %q; want checked against %q, matched insider@1, block", meta.Rules, meta.Matched, meta.Action, refs)
		}
		blocked, _ := w.record(chat, compliance.KindBlocked, res.MessageID)
		if !slices.Equal(blocked.Matched, []string{"insider@1"}) {
			t.Errorf("blocked record names %q; want insider@1", blocked.Matched)
		}

		// However it is written: Traditional, spaced, hyphenated, full-width.
		for _, text := range []string{"有內幕消息", "内 幕 消 息", "内-幕消息", "ＩＮＳＩＤＥ　ＩＮＦＯＲＭＡＴＩＯＮ here", "Inside\tInformation!"} {
			if res := w.employeeSays(ann, chat, text); res.Reason != "blocked" {
				t.Errorf("%q = %+v; want blocked", text, res)
			}
		}
		w.employeeGets(ann, slices.Repeat([]string{"Not sent: your message to WeChat customer 1 breaks the firm's rule “Inside information” (never pass on non-public information). It is kept in the compliance record; rephrase it or ask your compliance team."}, 5)...)
		w.customerGets(ming)

		// The streak is untouched: blocked messages are not among the three. 内部消息 (internal news) is not 内幕消息.
		if res := w.employeeSays(ann, chat, "内部消息: the office moves"); res.Outcome != bridge.OutcomeSent {
			t.Fatalf("内部消息 = %+v; want sent", res)
		}
		w.customerGets(ming, "内部消息: the office moves")
		for _, text := range []string{"two", "three"} {
			if res := w.employeeSays(ann, chat, text); res.Outcome != bridge.OutcomeSent {
				t.Fatalf("%q = %+v; want sent (the blocked messages used no slot)", text, res)
			}
		}
		w.customerGets(ming, "two", "three")
	})
}

func TestARuleChangeIsVersionedArchivedAndUsedFromTheNextMessage(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		w.useRules(promiseRule)
		if res := w.employeeSays(ann, chat, "I have inside information"); res.Outcome != bridge.OutcomeSent {
			t.Fatalf("before the rule: %+v; want sent", res)
		}
		w.useRules(insiderRule)
		if res := w.employeeSays(ann, chat, "more inside information"); res.Reason != "blocked" {
			t.Fatalf("after the rule: %+v; want blocked", res)
		}
		changed := insiderRule
		changed.Version = 1
		changed.Action = supervision.ActionFlag
		got, err := w.store.PutRule(w.ctx, changed, "compliance:lead@acme.example", w.clock.Now())
		if err != nil || got.Version != 2 {
			t.Fatalf("PutRule = %+v, %v; want version 2", got, err)
		}
		if _, err := w.store.PutRule(w.ctx, changed, officer, w.clock.Now()); !isErr(err, supervision.ErrStale) {
			t.Errorf("an edit of version 1 after version 2 = %v; want a conflict", err)
		}
		w.reloadRules()
		res := w.employeeSays(ann, chat, "inside information, again")
		if res.Outcome != bridge.OutcomeSent {
			t.Fatalf("after the rule became a flag: %+v; want sent", res)
		}
		meta, _ := w.record(chat, compliance.KindEmployeeMessage, res.MessageID)
		if !slices.Equal(meta.Matched, []string{"insider@2"}) {
			t.Errorf("matched %q; want insider@2", meta.Matched)
		}
		if _, err := w.store.DeleteRule(w.ctx, "insider", 0, officer, w.clock.Now()); err != nil {
			t.Fatal(err)
		}
		hist, err := w.store.RuleHistory(w.ctx, "insider")
		if err != nil || len(hist) != 3 || !hist[2].Deleted || hist[1].ChangedBy != "compliance:lead@acme.example" {
			t.Fatalf("history = %+v, %v; want 3 versions, the last deleted, the second by the lead", hist, err)
		}
		recs, err := w.store.ArchiveStream(w.ctx, compliance.SupervisionStream)
		if err != nil {
			t.Fatal(err)
		}
		var changes []string
		for _, r := range recs {
			if r.Kind == compliance.KindRuleChanged {
				m, _ := compliance.DecodeMeta(r.Meta)
				changes = append(changes, m.Subject+"@"+m.Version+" "+m.Reason+" by "+r.Actor)
			}
		}
		want := []string{"promises@1 created by " + officer, "insider@1 created by " + officer,
			"insider@2 changed by compliance:lead@acme.example", "insider@3 deleted by " + officer}
		if !slices.Equal(changes, want) {
			t.Errorf("supervision stream:\n%s\nwant:\n%s", list(changes), list(want))
		}
		if n, err := w.store.VerifyArchive(w.ctx); err != nil {
			t.Errorf("verify after %d records: %v", n, err)
		}
	})
}

func TestARedactionDeliversTheRedactedTextAndKeepsTheOriginal(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		w.useRules(passwordRule)
		res := w.employeeSays(ann, chat, "Your temporary password is hunter2, change it")
		if res.Outcome != bridge.OutcomeSent {
			t.Fatalf("redacted message = %+v; want sent", res)
		}
		w.customerGets(ming, "Your temporary password is [redacted], change it")
		w.employeeGets(ann, `Your message to WeChat customer 1 had 1 passage(s) replaced under the firm's rule “Passwords”; they receive "Your temporary password is [redacted], change it".`)
		_, original := w.record(chat, compliance.KindEmployeeMessage, res.MessageID)
		meta, delivered := w.record(chat, compliance.KindRedacted, res.MessageID)
		if original.Text != "Your temporary password is hunter2, change it" || delivered.Text != "Your temporary password is [redacted], change it" {
			t.Errorf("record: original %q, delivered %q", original.Text, delivered.Text)
		}
		if !slices.Equal(meta.Matched, []string{"passwords@1"}) || meta.Count != 1 {
			t.Errorf("redaction record: %+v", meta)
		}

		// The customer's password, on its way to Ann, too.
		w.customerSays(ming, "ok, my new one is hunter2")
		if got := w.lastTeams(ann); got.Message.Text != "ok, my new one is [redacted]" {
			t.Errorf("Ann was shown %q; want it redacted", got.Message.Text)
		}
		assertArchived(t, w.archived(chat), "employee.message", "message.redacted", "customer.message", "message.redacted")

		// The compliance transcript shows each message as written, its fate, and what went out.
		recs, err := w.store.ArchiveStream(w.ctx, compliance.ChatStream(int64(chat)))
		if err != nil {
			t.Fatal(err)
		}
		var ptrs []*compliance.Record
		for i := range recs {
			ptrs = append(ptrs, &recs[i])
		}
		var lines []string
		for _, e := range transcript.Build(ptrs, noNames{}) {
			if e.Type == transcript.Message && e.Fate != nil {
				lines = append(lines, e.Text+" → "+e.Fate.State+" as "+e.Delivered)
			}
		}
		wantLines := []string{"hello → delivered as ",
			"Your temporary password is hunter2, change it → delivered as Your temporary password is [redacted], change it",
			"ok, my new one is hunter2 → delivered as ok, my new one is [redacted]"}
		if !slices.Equal(lines, wantLines) {
			t.Errorf("transcript:\n%s\nwant:\n%s", list(lines), list(wantLines))
		}

		// The export holds both texts, in every format, and verifies offline.
		pub, key, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "export")
		if _, err := export.Write(w.ctx, dir, w.store.ExportSource(), export.Scope{Formats: export.AllFormats}, export.Options{Key: key, Tool: "test"}); err != nil {
			t.Fatal(err)
		}
		if _, err := export.Verify(dir, pub); err != nil {
			t.Errorf("verify-export: %v", err)
		}
		for _, f := range export.AllFormats {
			files, _ := filepath.Glob(filepath.Join(dir, "*"))
			var all []byte
			for _, name := range files {
				if strings.Contains(strings.ToLower(filepath.Base(name)), strings.ToLower(f)) {
					if fi, err := os.Stat(name); err == nil && fi.IsDir() {
						_ = filepath.WalkDir(name, func(p string, d os.DirEntry, err error) error {
							if err == nil && !d.IsDir() {
								b, _ := os.ReadFile(p)
								all = append(all, b...)
							}
							return nil
						})
					} else if b, err := os.ReadFile(name); err == nil {
						all = append(all, b...)
					}
				}
			}
			text := string(all)
			if f == export.EML {
				text = decodeQuotedPrintable(text)
			}
			for _, want := range []string{"hunter2, change it", "[redacted], change it"} {
				if !strings.Contains(text, want) {
					t.Errorf("the %s export lacks %q", f, want)
				}
			}
		}
	})
}

func TestAFlaggedMessageGoesOutAndWaitsForReview(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		w.useRules(promiseRule)
		res := w.employeeSays(ann, chat, "This fund has a guaranteed return of 8%")
		if res.Outcome != bridge.OutcomeSent {
			t.Fatalf("flagged message = %+v; want sent", res)
		}
		w.customerGets(ming, "This fund has a guaranteed return of 8%")
		w.employeeGets(ann) // not told: a flag is for the reviewers
		w.employeeSays(ann, chat, "To be clear, there is no guaranteed return")
		w.customerGets(ming, "To be clear, there is no guaranteed return")
		c := w.customerSays(ming, "so is it a guaranteed return?")
		want := []string{"flag:" + res.MessageID + ":promises@1:open", "flag:" + c.MessageID + ":promises@1:open"}
		if got := w.reviews(chat); !slices.Equal(got, want) {
			t.Errorf("review queue:\n%s\nwant (the exception is not flagged):\n%s", list(got), list(want))
		}
		opened, _ := w.record(chat, compliance.KindReviewOpened, res.MessageID)
		if opened.Reason != supervision.ReasonFlag || !strings.HasPrefix(opened.Subject, "review:") {
			t.Errorf("review opened record: %+v", opened)
		}
	})
}

func TestARuleWithholdsACustomersMessageFromTheEmployee(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		abuse := supervision.Rule{ID: "abuse", Name: "Abuse", Action: supervision.ActionBlock,
			Directions: []supervision.Direction{supervision.ToEmployee}, Terms: []supervision.Term{{Text: "idiot"}}}
		w.useRules(abuse, insiderRule)
		c := w.customerSays(ming, "you idiot")
		w.employeeGets(ann, "WeChat customer 1 wrote a message the firm's rule “Abuse” keeps from you. It is kept in the compliance record for your compliance team.")
		// The chat goes on: the customer wrote, so Ann may answer.
		if res := w.employeeSays(ann, chat, "Sorry to hear that"); res.Outcome != bridge.OutcomeSent {
			t.Errorf("Ann's answer = %+v; want sent", res)
		}
		// insider covers messages to customers only: the customer may say it.
		w.customerSays(ming, "is this inside information?")
		if got := w.lastTeams(ann); got.Message.Text != "is this inside information?" {
			t.Errorf("Ann was shown %q", got.Message.Text)
		}
		blocked, _ := w.record(chat, compliance.KindBlocked, c.MessageID)
		if blocked.Direction != "to_employee" || !slices.Equal(blocked.Matched, []string{"abuse@1"}) {
			t.Errorf("blocked record %+v", blocked)
		}
	})
}

func TestARuleCoversOnlyTheEmployeesAndGroupsItNames(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		w.enable(bob, "Bob Ng")
		other := w.scan(lin, bob)
		w.customerSays(lin, "Hi Bob")
		desk := insiderRule
		desk.Groups = []string{"equities"}
		if err := w.store.SetGroup(w.ctx, "equities", []string{string(bob)}, officer, w.clock.Now()); err != nil {
			t.Fatal(err)
		}
		w.useRules(desk)
		if res := w.employeeSays(ann, chat, "inside information"); res.Outcome != bridge.OutcomeSent {
			t.Errorf("Ann (not in equities) = %+v; want sent", res)
		}
		if res := w.employeeSays(bob, other, "inside information"); res.Reason != "blocked" {
			t.Errorf("Bob (equities) = %+v; want blocked", res)
		}
		if err := w.store.SetGroup(w.ctx, "equities", nil, officer, w.clock.Now()); err != nil {
			t.Fatal(err)
		}
		w.reloadRules()
		if res := w.employeeSays(bob, other, "inside information"); res.Outcome != bridge.OutcomeSent {
			t.Errorf("Bob after leaving equities = %+v; want sent", res)
		}
		w.after(time.Minute)
	})
}

// decodeQuotedPrintable reads the quoted-printable parts of EML files as text.
func decodeQuotedPrintable(s string) string {
	b, _ := io.ReadAll(quotedprintable.NewReader(strings.NewReader(s)))
	return string(b)
}

// noNames names nobody: transcripts show ids.
type noNames struct{}

func (noNames) Employee(string) string { return "" }
func (noNames) Contact(string) string  { return "" }

func TestTheRulesHoldAtTheirEdges(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		w.useRules(insiderRule, passwordRule, promiseRule)

		// Teams sends words and an image in one activity; the bridge relays them apart. The image
		// does not go without the words a rule blocked.
		image := bridge.Message{Type: "image", Media: &bridge.Media{Source: "teams:https://smba.trafficmanager.net/chart.png", Name: "chart.png"}}
		res, err := w.engine.EmployeeWrites(w.ctx, bridge.EmployeeMessage{Employee: ann, Chat: chat, Message: image, Caption: "inside information, see chart"})
		if err != nil || res.Reason != "blocked" {
			t.Errorf("an image sent with blocked words = %+v, %v; want blocked", res, err)
		}
		res, err = w.engine.EmployeeWrites(w.ctx, bridge.EmployeeMessage{Employee: ann, Chat: chat, Message: image, Caption: "the chart"})
		if err != nil || res.Outcome != bridge.OutcomeSent {
			t.Errorf("an image sent with harmless words = %+v, %v; want sent", res, err)
		}

		// Replacements that make a message longer than WeChat takes: refused, not failed at WeChat.
		long := strings.Repeat("hunter2 ", 255)
		if res := w.employeeSays(ann, chat, long); res.Outcome != bridge.OutcomeRefused || res.Reason != "too_long" {
			t.Errorf("a message the redaction made too long = %+v; want refused: too long", res)
		}

		// A voice message's transcript redacted: the recording, which says it all, is not passed on.
		w.seenTeams[ann] = len(w.teams.Texts(ann))
		voice := bridge.Message{Type: "voice", Text: "my password is hunter2", Media: &bridge.Media{Source: "wechat:media-1", Name: "media-1.amr"}}
		if _, err := w.engine.CustomerWrites(w.ctx, bridge.Inbound{Contact: ming, Message: voice}); err != nil {
			t.Fatal(err)
		}
		w.drain()
		if got := w.lastTeams(ann); got.Message.Media != nil || got.Message.Text != "my password is [redacted]" {
			t.Errorf("Ann was shown %+v; want the redacted transcript and no recording", got.Message)
		}

		// Refused messages a flag rule matched still go to review: they are in the record.
		if err := w.engine.DisableEmployee(w.ctx, ann, "admin:it@acme.example"); err != nil {
			t.Fatal(err)
		}
		refused := w.employeeSays(ann, chat, "a guaranteed return, honestly")
		if refused.Outcome != bridge.OutcomeRefused {
			t.Fatalf("a disabled employee's message = %+v; want refused", refused)
		}
		if got := w.reviews(chat); !slices.Contains(got, "flag:"+refused.MessageID+":promises@1:open") {
			t.Errorf("review queue %q lacks the refused flagged message", got)
		}
	})
}
