package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/api"
	"github.com/wxteams/wxteams/compliance/export"
	"github.com/wxteams/wxteams/compliance/transcript"
)

// The compliance officer's day by name (issue 14, what people need 1, 2 and 4): people picked by
// name, a search, export or hold naming nobody refused with the people it may have meant, names
// instead of ids in what the API returns, and a chat read as a transcript whose page exports as
// shown — on SQLite and PostgreSQL.
func TestCompliancePeopleAndTranscript(t *testing.T) {
	for _, db := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "people.db") }},
		{"postgres", func(t *testing.T) string { return sqlstoretest.PostgresURL(t) }},
	} {
		t.Run(db.name, func(t *testing.T) { testPeopleAndTranscript(t, db.url(t)) })
	}
}

func testPeopleAndTranscript(t *testing.T, dbURL string) {
	e := newEdgeOn(t, dbURL, testMegan, testAlex)
	cco := e.m.admins.UserToken("api://"+testBotApp, testTenant, "cco@acme.example", "oid-cco", api.Role)
	get := func(path string, out any) (int, string) {
		t.Helper()
		status, body := e.m.call(t, e.s, http.MethodGet, path, cco, "")
		if out != nil && status == http.StatusOK {
			if err := json.Unmarshal(body, out); err != nil {
				t.Fatalf("GET %s: %v: %s", path, err, body)
			}
		}
		return status, string(body)
	}

	// The story: the customer writes, Megan answers up to the cap, her fourth is queued, the
	// customer leaves and it is cancelled.
	e.active()
	for i, text := range []string{"One", "Two", "Three"} {
		e.employeeSays(testMegan, text)
		e.waitFor("Megan's message "+strconv.Itoa(i+1), func() bool { return e.customerGot(text) })
	}
	e.employeeSays(testMegan, "Four, queued")
	e.waitFor("the queued notice", func() bool { return e.teamsGot(testMegan, "Queued (1 of 10)") })
	e.customerSays("#LEAVE")
	e.waitFor("the cancellation", func() bool { return e.teamsGot(testMegan, "queued message(s) cancelled") })

	// People by name, e-mail or the customer's one name, with their chats.
	var people struct{ People []compliance.Person }
	names := func() []string {
		var out []string
		for _, p := range people.People {
			out = append(out, p.Kind+":"+p.Name)
		}
		return out
	}
	if get("/compliance/v1/people?q=MEGAN", &people); !slices.Equal(names(), []string{"employee:Megan Bowen"}) || !slices.Equal(people.People[0].Chats, []int64{1}) {
		t.Errorf("people matching megan = %+v", people.People)
	}
	if get("/compliance/v1/people?q=wechat+customer", &people); !slices.Equal(names(), []string{"customer:WeChat customer 1"}) || people.People[0].ID != edgeMing {
		t.Errorf("people matching wechat customer = %+v", people.People)
	}
	if get("/compliance/v1/people?q=", &people); len(people.People) != 3 {
		t.Errorf("everyone = %v; want Alex, Megan and the customer", names())
	}

	// A search naming nobody is refused, offering who was meant; names come with the records.
	status, body := get("/compliance/v1/records?employee=Megan+Bowen", nil)
	if status != http.StatusBadRequest || !strings.Contains(body, `did you mean Megan Bowen (`+testMegan+`)`) || !strings.Contains(body, `"matches":[{"kind":"employee","id":"`+testMegan) {
		t.Errorf("search by a name as the employee = %d %s", status, body)
	}
	if status, body := get("/compliance/v1/records?contact=o-nobody", nil); status != http.StatusBadRequest || !strings.Contains(body, `no customer has the id \"o-nobody\"`) {
		t.Errorf("search by an unknown customer = %d %s", status, body)
	}
	var found struct{ Records []api.Found }
	get("/compliance/v1/records?employee="+testMegan+"&q=Two", &found)
	if len(found.Records) != 1 || found.Records[0].ActorName != "Megan Bowen" {
		t.Errorf("search = %+v; want Megan's message, by name", found.Records)
	}

	// Holds on nobody are refused; on somebody, listed by name.
	for body, want := range map[string]string{
		`{"scope":"employee","subject":"Megan","reason":"r"}`:   "did you mean Megan Bowen",
		`{"scope":"employee","subject":"Nobody","reason":"r"}`:  "no employee has the id",
		`{"scope":"contact","subject":"o-nobody","reason":"r"}`: "no customer has the id",
		`{"scope":"chat","subject":"999","reason":"r"}`:         "there is no chat 999",
	} {
		if status, answer := e.m.call(t, e.s, http.MethodPost, "/compliance/v1/holds", cco, body); status != http.StatusBadRequest || !strings.Contains(string(answer), want) {
			t.Errorf("hold %s = %d %s; want 400 saying %q", body, status, answer, want)
		}
	}
	if status, answer := e.m.call(t, e.s, http.MethodPost, "/compliance/v1/holds", cco, `{"scope":"chat","subject":"1","reason":"complaint"}`); status != http.StatusCreated {
		t.Fatalf("hold on chat 1 = %d %s", status, answer)
	}
	if _, body := get("/compliance/v1/holds", nil); !strings.Contains(body, `"subject_name":"chat 1 with WeChat customer 1"`) {
		t.Errorf("holds = %s; want the chat named by its customer", body)
	}

	// The transcript: messages with their authors and fates, notices and events as lines.
	var tr api.Transcript
	if status, body := get("/compliance/v1/chats/1/transcript", &tr); status != http.StatusOK {
		t.Fatalf("transcript = %d %s", status, body)
	}
	if tr.Chat.Contact.Name != "WeChat customer 1" || len(tr.Chat.Members) != 1 || tr.Chat.Members[0].Name != "Megan Bowen" {
		t.Errorf("chat = %+v", tr.Chat)
	}
	fates := map[string]string{}
	for _, en := range tr.Entries {
		if en.Type == transcript.Message {
			fates[en.Author.Name+": "+en.Text] = "none"
			if en.Fate != nil {
				fates[en.Author.Name+": "+en.Text] = en.Fate.State + " " + en.Fate.Reason
			}
		}
	}
	for msg, want := range map[string]string{
		"WeChat customer 1: 你好":     "delivered ",
		"Megan Bowen: Three":        "delivered ",
		"Megan Bowen: Four, queued": "cancelled the customer left the chat (#LEAVE)",
		"WeChat customer 1: #LEAVE": "none", // a command to wxteams, relayed to nobody
	} {
		if got := fates[msg]; got != want {
			t.Errorf("%s: fate %q; want %q (all: %v)", msg, got, want, fates)
		}
	}
	var messages api.Transcript
	get("/compliance/v1/chats/1/transcript?types=message&person="+testMegan+"&size=2&page=2", &messages)
	if messages.Total != 4 || messages.Pages != 2 || len(messages.Entries) != 2 || messages.Entries[1].Text != "Four, queued" {
		t.Errorf("Megan's messages, page 2 of 2 = %d of %d, %+v", messages.Page, messages.Pages, messages.Entries)
	}
	for path, want := range map[string]int{
		"/compliance/v1/chats/99/transcript":               http.StatusNotFound,
		"/compliance/v1/chats/1/transcript?types=gossip":   http.StatusBadRequest,
		"/compliance/v1/chats/1/transcript?person=o-other": http.StatusBadRequest,
		"/compliance/v1/chats/1/transcript?page=0":         http.StatusBadRequest,
	} {
		if status, body := get(path, nil); status != want {
			t.Errorf("GET %s = %d %s; want %d", path, status, body, want)
		}
	}

	// The page exports as shown: those records, verified offline.
	records, _ := json.Marshal(messages.Records)
	status, answer := e.m.call(t, e.s, http.MethodPost, "/compliance/v1/exports", cco, `{"chat":1,"records":`+string(records)+`,"formats":["csv"]}`)
	var st api.ExportStatus
	if err := json.Unmarshal(answer, &st); status != http.StatusAccepted || err != nil {
		t.Fatalf("export the page = %d %s", status, answer)
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.State != "done" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		get("/compliance/v1/exports/"+url.PathEscape(st.ID), &st)
	}
	if st.State != "done" || st.Manifest.Counts.Records != len(messages.Records) || st.Manifest.Scope.Chat != 1 {
		t.Fatalf("the page's export = %+v; want the %d records shown", st, len(messages.Records))
	}
	keys, _ := loadCustody(&Config{SigningKey: mustB64(testSigningKey)})
	if _, err := export.Verify(filepath.Join(e.m.env["WXTEAMS_EXPORT_DIR"], st.ID), keys.public()); err != nil {
		t.Errorf("the page's export does not verify: %v", err)
	}
	for body, want := range map[string]string{
		`{"chat":99,"formats":["csv"]}`:       "there is no chat 99",
		`{"records":[1,2],"formats":["csv"]}`: "give the chat too",
	} {
		if status, answer := e.m.call(t, e.s, http.MethodPost, "/compliance/v1/exports", cco, body); status != http.StatusBadRequest || !strings.Contains(string(answer), want) {
			t.Errorf("export %s = %d %s; want 400 saying %q", body, status, answer, want)
		}
	}
}

// An administrator enables an employee by e-mail address: Graph finds them, wxteams stores the
// object id; an address Entra ID does not know is refused with a 404 that says so.
func TestEnableByEmailThroughGraph(t *testing.T) {
	m := newMicrosoft(t)
	s := m.start(t)
	admin := m.admins.UserToken("api://"+testBotApp, testTenant, "it@acme.example", "oid-it", "WeChat.Admin")
	m.teams.AddUser(testMegan, "Megan Bowen", testTenant)
	m.teams.SetUPN(testMegan, "megan.bowen@acme.example")
	status, body := m.call(t, s, http.MethodPut, "/admin/v1/users/megan.bowen@acme.example/wechat", admin, "")
	if status != http.StatusOK || !strings.Contains(string(body), `"id":"`+testMegan+`"`) || !strings.Contains(string(body), `"name":"Megan Bowen"`) ||
		!strings.Contains(string(body), `"qr":"/admin/v1/users/`+testMegan+`/qr"`) {
		t.Fatalf("enable by e-mail = %d %s", status, body)
	}
	if emp, err := s.engine.Employee(t.Context(), testMegan); err != nil || !emp.Enabled || emp.Email != "megan.bowen@acme.example" {
		t.Errorf("Megan = %+v, %v", emp, err)
	}
	if _, err := s.engine.Employee(t.Context(), "megan.bowen@acme.example"); err == nil {
		t.Error("an employee was stored under the e-mail address")
	}
	status, body = m.call(t, s, http.MethodPut, "/admin/v1/users/nobody@acme.example/wechat", admin, "")
	if status != http.StatusNotFound || !strings.Contains(string(body), "Entra ID has no user nobody@acme.example") {
		t.Errorf("enable an unknown address = %d %s", status, body)
	}
	if n := m.graph.LookupCount(); n != 2 {
		t.Errorf("Graph was asked %d times; want 2", n)
	}
}
