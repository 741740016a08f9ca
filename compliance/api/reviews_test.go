package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/api"
	"github.com/wxteams/wxteams/compliance/export"
	"github.com/wxteams/wxteams/compliance/supervision"
)

// A compliance officer works the review queue through the API: a flagged message with the talk
// around it, assigned to herself, escalated with a note, closed by a colleague; every step in the
// record with who took it, and the report exported with a signed manifest.

const (
	megan = "7faf8ab2-3d56-4244-b585-20c8a42ed2b8"
	ming  = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
)

type reviewFixture struct {
	*fixture
	key     ed25519.PrivateKey
	exports string
	chat    bridge.ChatID
	item    int64
}

// newReviewFixture has Megan's chat with Ming: 25 messages, the 13th flagged.
func newReviewFixture(t *testing.T, url string) *reviewFixture {
	t.Helper()
	store := sqlstoretest.Open(t, url)
	clk := clock.NewFake(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	f := &reviewFixture{key: key, exports: t.TempDir()}
	a, err := api.New(api.Config{Auth: tokens{}, Archive: store, People: store, Reviews: store, ExportDir: f.exports, Clock: clk,
		Export: func(ctx context.Context, dir string, scope export.Scope, actor string) (*export.Manifest, error) {
			return export.Write(ctx, dir, store.ExportSource(), scope, export.Options{Operator: actor, Tool: "test", Key: key})
		}})
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	a.Routes(r)
	f.fixture = &fixture{api: a, router: r, store: store, clock: clk}
	ctx := context.Background()
	err = store.InTx(ctx, func(tx bridge.Tx) error {
		if err := tx.PutEmployee(ctx, &bridge.Employee{ID: megan, Name: "Megan Bowen", Enabled: true, Reachable: true, UpdatedAt: clk.Now()}); err != nil {
			return err
		}
		if err := tx.PutContact(ctx, &bridge.Contact{OpenID: ming, Name: "Ming", Following: true, UpdatedAt: clk.Now()}); err != nil {
			return err
		}
		c := &bridge.Chat{Contact: ming, Members: []bridge.EmployeeID{megan}, Status: bridge.StatusActive, CreatedAt: clk.Now(), UpdatedAt: clk.Now()}
		if err := tx.CreateChat(ctx, c); err != nil {
			return err
		}
		f.chat = c.ID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 25; i++ {
		at := clk.Now().Add(time.Duration(i) * time.Minute)
		kind, actor, text := compliance.KindCustomerMessage, "customer:"+ming, fmt.Sprintf("customer message %d", i)
		if i%2 == 1 {
			kind, actor, text = compliance.KindEmployeeMessage, "employee:"+megan, fmt.Sprintf("employee message %d", i)
		}
		if i == 13 {
			text = "this fund has a guaranteed return"
		}
		ev := compliance.Event{Stream: compliance.ChatStream(int64(f.chat)), ChatID: int64(f.chat), At: at, Kind: kind, Actor: actor,
			Meta: compliance.Meta{MessageID: fmt.Sprintf("m%02d", i), Employee: megan, Contact: ming}, Content: compliance.Content{Text: text}}
		if err := store.Archive(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	it := &supervision.ReviewItem{ChatID: int64(f.chat), MessageID: "m13", Employee: megan, Contact: ming, Reason: supervision.ReasonFlag,
		Rules: []string{"promises@1"}, State: supervision.StateOpen, CreatedAt: clk.Now().Add(13 * time.Minute)}
	err = store.InTx(ctx, func(tx bridge.Tx) error {
		if err := tx.AddReview(ctx, it); err != nil {
			return err
		}
		return tx.Append(ctx, compliance.Event{Stream: compliance.SupervisionStream, ChatID: int64(f.chat), At: it.CreatedAt, Kind: compliance.KindReviewOpened,
			Actor: "system", Meta: compliance.Meta{Subject: supervision.ReviewSubject(it.ID), MessageID: "m13", Reason: supervision.ReasonFlag, Matched: it.Rules}})
	})
	if err != nil {
		t.Fatal(err)
	}
	f.item = it.ID
	clk.Advance(time.Hour)
	return f
}

// call makes a request as the compliance officer (token "cco") and decodes the answer into out.
func (f *reviewFixture) call(t *testing.T, method, target, body string, out any) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer cco")
	w := httptest.NewRecorder()
	f.router.ServeHTTP(w, req)
	if out != nil && w.Code < 300 {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, target, err, w.Body)
		}
	}
	return w.Code, w.Body.String()
}

func TestAnOfficerWorksAFlaggedMessage(t *testing.T) {
	sqlstoretest.EachURL(t, func(t *testing.T, url string) {
		f := newReviewFixture(t, url)
		item := fmt.Sprintf("/compliance/v1/reviews/%d", f.item)

		var list struct {
			Items []api.ReviewView `json:"items"`
			Total int              `json:"total"`
		}
		if code, body := f.call(t, "GET", "/compliance/v1/reviews?state=open&reason=flag&rule=promises&employee="+megan, "", &list); code != 200 || list.Total != 1 {
			t.Fatalf("the queue: %d %s", code, body)
		}
		if v := list.Items[0]; v.ID != f.item || v.EmployeeName != "Megan Bowen" || v.ContactName != "Ming" || v.Rules[0] != "promises@1" {
			t.Errorf("queue item %+v", v)
		}

		var d api.ReviewDetail
		if code, body := f.call(t, "GET", item, "", &d); code != 200 {
			t.Fatalf("the item: %d %s", code, body)
		}
		// the flagged message with ten entries either side
		if n := len(d.Transcript.Entries); n != 21 || d.Transcript.Entries[10].MessageID != "m13" || d.Focus != "m13" ||
			d.Transcript.Entries[0].MessageID != "m03" || d.Transcript.Entries[20].MessageID != "m23" {
			t.Errorf("transcript around the message: %d entries, focus %q", n, d.Focus)
		}
		if e := d.Transcript.Entries[10]; e.Text != "this fund has a guaranteed return" || e.Author.Name != "Megan Bowen" {
			t.Errorf("the flagged entry: %+v", e)
		}
		if len(d.History) != 1 || d.History[0].Step != "opened" || d.History[0].ActorName != "wxteams" || d.History[0].Rules[0] != "promises@1" {
			t.Errorf("history of a new item: %+v", d.History)
		}

		var got struct{ Item api.ReviewView }
		if code, body := f.call(t, "POST", item+"/assign", `{"assignee":"me"}`, &got); code != 200 || got.Item.State != "assigned" || got.Item.AssigneeName != "cco@acme.example" {
			t.Fatalf("assign to me: %d %s", code, body)
		}
		for _, tc := range []struct {
			body string
			code int
			say  string
		}{
			{`{"decision":"escalate"}`, 400, "a note is required to escalate"},
			{`{"decision":"approve","note":"x"}`, 400, "use no_issue, escalate or close"},
			{`not json`, 400, "the body must be JSON"},
			{`{"decision":"escalate","note":"promise of returns; for the head of compliance"}`, 200, `"state":"escalated"`},
			{`{"decision":"escalate","note":"again"}`, 409, "escalated already"},
		} {
			if code, body := f.call(t, "POST", item+"/decide", tc.body, nil); code != tc.code || !strings.Contains(body, tc.say) {
				t.Errorf("decide %s: %d %s; want %d saying %q", tc.body, code, body, tc.code, tc.say)
			}
		}
		if code, body := f.call(t, "POST", item+"/assign", `{"assignee":"head@acme.example"}`, &got); code != 200 || got.Item.Assignee != "compliance:head@acme.example" || got.Item.State != "escalated" {
			t.Fatalf("assign to a colleague: %d %s", code, body)
		}
		if code, body := f.call(t, "POST", item+"/decide", `{"decision":"close","note":"employee warned"}`, &got); code != 200 || got.Item.State != "closed" || got.Item.DecidedByName != "cco@acme.example" {
			t.Fatalf("close: %d %s", code, body)
		}
		if code, body := f.call(t, "POST", item+"/decide", `{"decision":"no_issue"}`, nil); code != 409 || !strings.Contains(body, "is closed") {
			t.Errorf("deciding a closed item: %d %s", code, body)
		}
		if code, body := f.call(t, "POST", item+"/assign", `{}`, nil); code != 409 {
			t.Errorf("assigning a closed item: %d %s", code, body)
		}
		if code, _ := f.call(t, "POST", "/compliance/v1/reviews/9999/decide", `{"decision":"no_issue"}`, nil); code != 404 {
			t.Errorf("an unknown item: %d", code)
		}
		if code, _ := f.call(t, "GET", "/compliance/v1/reviews/9999", "", nil); code != 404 {
			t.Errorf("an unknown item: %d", code)
		}

		// The history shows every step and who took it, notes included.
		if code, body := f.call(t, "GET", item, "", &d); code != 200 {
			t.Fatalf("the item: %d %s", code, body)
		}
		var steps []string
		for _, s := range d.History {
			steps = append(steps, fmt.Sprintf("%s by %s: %s %s %s", s.Step, s.ActorName, s.Reason, s.To, s.Note))
		}
		want := []string{
			"opened by wxteams: flag  ",
			"assigned by cco@acme.example:  compliance:cco@acme.example ",
			"decided by cco@acme.example: escalate escalated promise of returns; for the head of compliance",
			"assigned by cco@acme.example:  compliance:head@acme.example ",
			"decided by cco@acme.example: close closed employee warned",
		}
		if strings.Join(steps, "\n") != strings.Join(want, "\n") {
			t.Errorf("history:\n%s\nwant\n%s", strings.Join(steps, "\n"), strings.Join(want, "\n"))
		}
		// Every call is archived as an access, the decision named, the note never.
		decides := 0
		for _, a := range f.accesses(t) {
			if strings.Contains(a.meta.Query, "employee warned") {
				t.Errorf("a note reached an access record: %+v", a.meta)
			}
			if a.meta.Reason == "decide review" && a.actor == "compliance:cco@acme.example" {
				decides++
			}
		}
		if decides != 8 {
			t.Errorf("%d decide calls archived, want 8", decides)
		}
	})
}

func TestReviewQueueRefusesBadInput(t *testing.T) {
	f := newReviewFixture(t, sqlstoretest.SQLiteURL(t))
	for _, tc := range []struct {
		method, target, body string
		code                 int
		say                  string
	}{
		{"GET", "/compliance/v1/reviews?state=pending", "", 400, "use open, assigned, escalated, closed or backlog"},
		{"GET", "/compliance/v1/reviews?reason=keyword", "", 400, "use flag or sample"},
		{"GET", "/compliance/v1/reviews?from=yesterday", "", 400, "from:"},
		{"GET", "/compliance/v1/reviews?page=0", "", 400, "page must be a positive number"},
		{"GET", "/compliance/v1/reviews?employee=Megan", "", 400, "did you mean Megan Bowen"},
		{"GET", "/compliance/v1/reviews/report?from=2026-11-05&to=2026-11-01", "", 400, "the window is empty"},
		{"PUT", "/compliance/v1/reviews/settings", `{"sample_percent":150}`, 400, "from 0 (no sample) to 100"},
		{"PUT", "/compliance/v1/reviews/settings", `{"sample_percent":10.5}`, 400, "a whole number"},
		{"PUT", "/compliance/v1/reviews/settings", `{"percent":10}`, 400, "sample_percent"},
		{"POST", "/compliance/v1/reviews/report/export", `{"format":"xml"}`, 400, "use csv or jsonl"},
		{"POST", fmt.Sprintf("/compliance/v1/reviews/%d/assign", f.item), `{"assignee":"x:` + strings.Repeat("a", 300) + `"}`, 400, "longer than"},
	} {
		if code, body := f.call(t, tc.method, tc.target, tc.body, nil); code != tc.code || !strings.Contains(body, tc.say) {
			t.Errorf("%s %s %s: %d %s; want %d saying %q", tc.method, tc.target, tc.body, code, body, tc.code, tc.say)
		}
	}
	// Without the role, nothing.
	req := httptest.NewRequest("GET", "/compliance/v1/reviews", nil)
	req.Header.Set("Authorization", "Bearer bob")
	w := httptest.NewRecorder()
	f.router.ServeHTTP(w, req)
	if w.Code != http.StatusForbidden {
		t.Errorf("without the role: %d", w.Code)
	}
}

func TestSamplePercentIsSetAndArchived(t *testing.T) {
	sqlstoretest.EachURL(t, func(t *testing.T, url string) {
		f := newReviewFixture(t, url)
		var s api.ReviewSettings
		if code, body := f.call(t, "GET", "/compliance/v1/reviews/settings", "", &s); code != 200 || s.SamplePercent != 0 {
			t.Fatalf("default settings: %d %s", code, body)
		}
		if code, body := f.call(t, "PUT", "/compliance/v1/reviews/settings", `{"sample_percent":10}`, &s); code != 200 || s.SamplePercent != 10 {
			t.Fatalf("set 10 %%: %d %s", code, body)
		}
		if code, _ := f.call(t, "GET", "/compliance/v1/reviews/settings", "", &s); code != 200 || s.SamplePercent != 10 {
			t.Fatalf("settings after: %+v", s)
		}
		recs, err := f.store.ArchiveStream(context.Background(), compliance.SupervisionStream)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range recs {
			m, _ := compliance.DecodeMeta(r.Meta)
			if r.Kind == compliance.KindSettingChanged && m.Subject == "sample_percent" && m.To == "10" && r.Actor == "compliance:cco@acme.example" {
				found = true
			}
		}
		if !found {
			t.Error("the change of sample_percent is not in the record with who made it")
		}
	})
}

func TestTheReviewReportExportsWithASignedManifest(t *testing.T) {
	sqlstoretest.EachURL(t, func(t *testing.T, url string) {
		f := newReviewFixture(t, url)
		item := fmt.Sprintf("/compliance/v1/reviews/%d", f.item)
		f.clock.Advance(2 * time.Hour)
		if code, body := f.call(t, "POST", item+"/decide", `{"decision":"no_issue"}`, nil); code != 200 {
			t.Fatalf("decide: %d %s", code, body)
		}
		var rep supervision.Report
		if code, body := f.call(t, "GET", "/compliance/v1/reviews/report?from=2026-11-02&to=2026-11-02", "", &rep); code != 200 {
			t.Fatalf("report: %d %s", code, body)
		}
		rows := map[string]supervision.ReportRow{}
		for _, r := range rep.Rows {
			rows[r.Section+"/"+r.Key] = r
		}
		// opened at 09:13, decided at 12:00
		if r := rows["rule/promises"]; r.Items != 1 || r.Decided != 1 || r.MedianSeconds != int64((2*time.Hour+47*time.Minute)/time.Second) {
			t.Errorf("rule row: %+v", r)
		}
		for _, format := range []string{"csv", "jsonl"} {
			var st api.ExportStatus
			if code, body := f.call(t, "POST", "/compliance/v1/reviews/report/export", `{"format":"`+format+`","from":"2026-11-02","to":"2026-11-02"}`, &st); code != 202 {
				t.Fatalf("export %s: %d %s", format, code, body)
			}
			waitFor(t, format+" export", func() bool {
				f.call(t, "GET", "/compliance/v1/exports/"+st.ID, "", &st)
				return st.State != "running"
			})
			if st.State != "done" {
				t.Fatalf("export %s: %+v", format, st)
			}
			dir := filepath.Join(f.exports, st.ID)
			got, err := export.Verify(dir, f.key.Public().(ed25519.PublicKey))
			if err != nil {
				t.Fatalf("verify the %s report export: %v", format, err)
			}
			// opened, decided: the supervision stream's records the report counts
			if got.Records != 2 || got.Manifest.Scope.Stream != compliance.SupervisionStream {
				t.Errorf("%s export: %d records, scope %+v", format, got.Records, got.Manifest.Scope)
			}
			name := map[string]string{"csv": api.ReportCSVName, "jsonl": api.ReportJSONLName}[format]
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			wantLine := map[string]string{"csv": "rule,promises,1,0,0,0,1,1,10020,10020", "jsonl": `{"section":"rule","key":"promises","items":1,"open":0,"assigned":0,"escalated":0,"closed":1,"decided":1,"median_seconds":10020,"p90_seconds":10020}`}[format]
			if !strings.Contains(string(data), wantLine+"\n") {
				t.Errorf("%s report:\n%s\nwant the line %s", format, data, wantLine)
			}
			// The report is under the signature: altered, the export no longer verifies.
			if err := os.WriteFile(filepath.Join(dir, name), bytes.Replace(data, []byte("promises"), []byte("promiseX"), 1), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := export.Verify(dir, f.key.Public().(ed25519.PublicKey)); err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("an altered report verifies: %v", err)
			}
		}
	})
}
