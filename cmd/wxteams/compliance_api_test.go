package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/api"
	"github.com/wxteams/wxteams/compliance/export"
)

func (m *microsoft) call(t *testing.T, s *server, method, path, token, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+s.publicAddr+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func TestComplianceAPI(t *testing.T) {
	m := newMicrosoft(t)
	m.env["WXTEAMS_EXPORT_DIR"] = filepath.Join(t.TempDir(), "exports")
	s := m.start(t)
	ctx := context.Background()
	if _, err := s.engine.EnableEmployee(ctx, bridge.EmployeeProfile{ID: testMegan, Name: "Megan Bowen"}, "admin:test"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.wechat.ScanScene(ctx, "o-ming", bridge.SceneFor(testMegan)); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"What is the fee on the bond fund?", "And the lock-up period?"} {
		if _, _, err := m.wechat.Send(ctx, "o-ming", text); err != nil {
			t.Fatal(err)
		}
	}
	cco := m.admins.UserToken("api://"+testBotApp, testTenant, "cco@acme.example", "oid-cco", api.Role)
	itAdmin := m.admins.UserToken("api://"+testBotApp, testTenant, "it@acme.example", "oid-it", "WeChat.Admin")

	// Refused: no token, and an administrator's token without the compliance role.
	if status, _ := m.call(t, s, http.MethodGet, "/compliance/v1/records", "", ""); status != http.StatusUnauthorized {
		t.Errorf("no token = %d", status)
	}
	if status, _ := m.call(t, s, http.MethodGet, "/compliance/v1/records", itAdmin, ""); status != http.StatusForbidden {
		t.Errorf("admin role only = %d", status)
	}

	// Search by contact and text.
	status, body := m.call(t, s, http.MethodGet, "/compliance/v1/records?contact=o-ming&q=LOCK-UP", cco, "")
	var found struct {
		Records []api.Found `json:"records"`
	}
	if err := json.Unmarshal(body, &found); status != 200 || err != nil || len(found.Records) != 1 || found.Records[0].Text != "And the lock-up period?" {
		t.Fatalf("search = %d %s", status, body)
	}
	if status, _ := m.call(t, s, http.MethodGet, "/compliance/v1/records?from=yesterday", cco, ""); status != http.StatusBadRequest {
		t.Errorf("search with a bad date = %d", status)
	}
	// Nothing matches: an empty list, not null.
	if status, body := m.call(t, s, http.MethodGet, "/compliance/v1/records?contact=o-ming&q=no+such+words", cco, ""); status != 200 || !strings.Contains(string(body), `"records":[]`) {
		t.Errorf("an empty search = %d %s; want records: []", status, body)
	}
	// An employee is named by id: a name is refused, offering the people it matches, in the search
	// and the export.
	for _, call := range []struct{ method, path, body string }{
		{http.MethodGet, "/compliance/v1/records?employee=Megan+Bowen", ""},
		{http.MethodPost, "/compliance/v1/exports", `{"employee":"Megan Bowen","formats":["csv"]}`},
	} {
		if status, body := m.call(t, s, call.method, call.path, cco, call.body); status != http.StatusBadRequest || !strings.Contains(string(body), "did you mean Megan Bowen ("+string(testMegan)+")") {
			t.Errorf("%s %s with a name for the employee = %d %s", call.method, call.path, status, body)
		}
	}
	if status, body := m.call(t, s, http.MethodGet, "/compliance/v1/records?employee="+string(testMegan), cco, ""); status != 200 {
		t.Errorf("search by employee id = %d %s", status, body)
	}
	// An export with no format is refused.
	for _, body := range []string{`{"contact":"o-ming"}`, `{"contact":"o-ming","formats":[]}`} {
		if status, answer := m.call(t, s, http.MethodPost, "/compliance/v1/exports", cco, body); status != http.StatusBadRequest || !strings.Contains(string(answer), "at least one export format") {
			t.Errorf("an export without formats %s = %d %s", body, status, answer)
		}
	}

	// An export: started, then done, then downloaded and verified offline.
	status, body = m.call(t, s, http.MethodPost, "/compliance/v1/exports", cco, `{"contact":"o-ming","formats":["eml","actiance"]}`)
	var st api.ExportStatus
	if err := json.Unmarshal(body, &st); status != http.StatusAccepted || err != nil || st.ID == "" {
		t.Fatalf("start export = %d %s", status, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.State != "done" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		_, body = m.call(t, s, http.MethodGet, "/compliance/v1/exports/"+st.ID, cco, "")
		_ = json.Unmarshal(body, &st)
	}
	if st.State != "done" || st.Manifest == nil || st.Manifest.Operator != "compliance:cco@acme.example" {
		t.Fatalf("export status = %s", body)
	}
	status, zipped := m.call(t, s, http.MethodGet, st.Download, cco, "")
	if status != 200 {
		t.Fatalf("download = %d", status)
	}
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatal(err)
	}
	unzipped := t.TempDir()
	for _, f := range zr.File {
		rc, _ := f.Open()
		data, _ := io.ReadAll(rc)
		rc.Close()
		p := filepath.Join(unzipped, filepath.FromSlash(f.Name))
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		_ = os.WriteFile(p, data, 0o644)
	}
	keys, _ := loadCustody(&Config{SigningKey: mustB64(testSigningKey)})
	if rep, err := export.Verify(filepath.Join(unzipped, st.ID), keys.public()); err != nil || rep.Records == 0 {
		t.Errorf("the downloaded export does not verify: %v", err)
	}
	// The list says how many records each finished export holds, and in which formats.
	status, body = m.call(t, s, http.MethodGet, "/compliance/v1/exports", cco, "")
	var list struct {
		Exports []api.ExportStatus `json:"exports"`
	}
	if err := json.Unmarshal(body, &list); status != 200 || err != nil || len(list.Exports) != 1 || list.Exports[0].ID != st.ID {
		t.Fatalf("list exports = %d %s", status, body)
	}
	if got := list.Exports[0]; got.Records == nil || *got.Records != st.Manifest.Counts.Records || *got.Records == 0 ||
		strings.Join(got.Formats, ",") != "jsonl,eml,actiance" || got.Manifest != nil {
		t.Errorf("listed export = %s; want %d records in jsonl, eml, actiance and no manifest", body, st.Manifest.Counts.Records)
	}

	// Holds.
	status, body = m.call(t, s, http.MethodPost, "/compliance/v1/holds", cco, `{"scope":"contact","subject":"o-ming","reason":"complaint 2026-77"}`)
	var hold compliance.Hold
	if err := json.Unmarshal(body, &hold); status != http.StatusCreated || err != nil || hold.ID == 0 || hold.PlacedBy != "compliance:cco@acme.example" {
		t.Fatalf("place hold = %d %s", status, body)
	}
	if status, _ := m.call(t, s, http.MethodPost, "/compliance/v1/holds", cco, `{"scope":"contact"}`); status != http.StatusBadRequest {
		t.Errorf("a hold without a reason = %d", status)
	}
	if status, body := m.call(t, s, http.MethodGet, "/compliance/v1/holds", cco, ""); status != 200 || !strings.Contains(string(body), "complaint 2026-77") {
		t.Errorf("list holds = %d %s", status, body)
	}
	if status, _ := m.call(t, s, http.MethodDelete, "/compliance/v1/holds/999?reason=x", cco, ""); status != http.StatusNotFound {
		t.Errorf("lift an unknown hold = %d", status)
	}
	if status, _ := m.call(t, s, http.MethodDelete, "/compliance/v1/holds/"+itoa(hold.ID)+"?reason=resolved", cco, ""); status != http.StatusNoContent {
		t.Errorf("lift hold = %d", status)
	}

	// Verify.
	if status, body := m.call(t, s, http.MethodPost, "/compliance/v1/verify", cco, ""); status != 200 || !strings.Contains(string(body), `"intact":true`) {
		t.Errorf("verify = %d %s", status, body)
	}

	// Every call is in the admin stream, refused ones too, and no message text is.
	recs, err := s.store.ArchiveStream(ctx, compliance.AdminStream)
	if err != nil {
		t.Fatal(err)
	}
	actors := map[string]int{}
	for _, r := range recs {
		if r.Kind == compliance.KindAccess {
			actors[r.Actor]++
			if bytes.Contains(r.Meta, []byte("lock-up period")) || bytes.Contains(r.Body, []byte("lock-up period")) {
				t.Error("an access record holds message text")
			}
		}
	}
	if actors["compliance:cco@acme.example"] < 10 || actors["unauthenticated"] != 1 || actors["unauthorized:it@acme.example"] != 1 {
		t.Errorf("access records by actor = %v", actors)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
