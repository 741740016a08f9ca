package main

import (
	"bytes"
	"context"
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
	"github.com/wxteams/wxteams/bridge/wechat/wechatfake"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/api"
	"github.com/wxteams/wxteams/compliance/completeness"
)

// metric reads one sample of the internal listener's /metrics.
func metric(t *testing.T, s *server, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + s.internalAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// A customer writes through the real callback; a delivery is left pending on purpose. The report
// served by the compliance API lists it, its signature verifies offline and fails once a byte is
// changed; archived by the command once, it is in the admin stream and verify passes. Then the
// bridge goes quiet with a live chat: the stall gauge rises, one warning is logged, and it clears
// when the customer writes again. The daily job archives yesterday's report on its own.
func TestCompletenessReportAndStallEndToEnd(t *testing.T) {
	m := newMicrosoft(t)
	m.env["WXTEAMS_EXPORT_DIR"] = filepath.Join(t.TempDir(), "exports")
	s, logs := startServeWith(t, m.env, m.clock, m.transport)
	m.teams.BotEndpoint = "http://" + s.publicAddr + "/api/messages"
	m.wechat.SetPusher(&wechatfake.Pusher{URL: "http://" + s.publicAddr + "/wechat/callback", Token: "pamtest", AESKey: testAESKey,
		AppID: testWxApp, OriginalID: testWxGH, Mode: wechatfake.Safe, Clock: m.clock})
	ctx := context.Background()
	if _, err := s.engine.EnableEmployee(ctx, bridge.EmployeeProfile{ID: testMegan, Name: "Megan Bowen"}, "admin:test"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.wechat.ScanScene(ctx, "o-ming", bridge.SceneFor(testMegan)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.wechat.Send(ctx, "o-ming", "Is the fund open to new investors?"); err != nil {
		t.Fatal(err)
	}
	if v := metric(t, s, `wxteams_receipts_total{channel="wechat"}`); v != "2" {
		t.Errorf("wechat receipts = %q; want 2 (the scan and the message)", v)
	}

	// A delivery left pending on purpose: created 20 minutes ago, not due for two days.
	created := m.clock.Now().Add(-20 * time.Minute)
	pending := &bridge.OutboxItem{Channel: bridge.ChannelWeChat, Lane: "wechat:o-left", Contact: "o-left", MessageID: "m-left-pending",
		WeChat: &bridge.WeChatMessage{Message: bridge.TextMessage("left pending")}, State: bridge.OutboxPending,
		CreatedAt: created, NotBefore: m.clock.Now().Add(48 * time.Hour)}
	if err := s.store.InTx(ctx, func(tx bridge.Tx) error { return tx.AddOutbox(ctx, pending) }); err != nil {
		t.Fatal(err)
	}
	day := completeness.DayOf(created)

	cco := m.admins.UserToken("api://"+testBotApp, testTenant, "cco@acme.example", "oid-cco", api.Role)
	status, body := m.call(t, s, http.MethodGet, "/compliance/v1/completeness?day="+day, cco, "")
	if status != 200 {
		t.Fatalf("GET completeness = %d %s", status, body)
	}
	var reply struct {
		Archived bool `json:"archived"`
		completeness.Signed
	}
	if err := json.Unmarshal(body, &reply); err != nil {
		t.Fatal(err)
	}
	rep, err := reply.Open(nil)
	if err != nil || reply.Archived {
		t.Fatalf("served report: archived %v, %v", reply.Archived, err)
	}
	if rep.Final {
		t.Error("the report of a day not ended yet is served as final")
	}
	found := false
	for _, g := range rep.Gaps {
		found = found || g.Kind == completeness.GapOverdue && g.OutboxID == pending.ID && g.AgeSeconds >= 20*60
	}
	if !found || rep.Total.Received < 1 {
		t.Errorf("served report gaps %+v, totals %+v; want the delivery left pending (outbox %d) and the customer's message", rep.Gaps, rep.Total, pending.ID)
	}
	for _, bad := range []string{"?day=2026-02-30", "?day=" + completeness.DayOf(m.clock.Now().Add(48*time.Hour))} {
		if status, _ := m.call(t, s, http.MethodGet, "/compliance/v1/completeness"+bad, cco, ""); status != 400 {
			t.Errorf("GET completeness%s = %d; want 400", bad, status)
		}
	}
	if status, _ := m.call(t, s, http.MethodGet, "/compliance/v1/completeness", "", ""); status != 401 {
		t.Errorf("GET completeness without a token = %d; want 401", status)
	}

	cli := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		e := &environment{stdout: &out, stderr: &errOut, getenv: func(k string) string { return m.env[k] }}
		code := run(ctx, e, args)
		return code, out.String() + errOut.String()
	}
	_, pubOut := cli("keys", "public")
	pub, _, _ := strings.Cut(pubOut, " ")
	file := filepath.Join(t.TempDir(), "report.json")
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := cli("completeness", "--verify", file, "--public-key", pub); code != 0 || !strings.Contains(out, "intact") || !strings.Contains(out, "delivery "+strconv.FormatInt(pending.ID, 10)) {
		t.Errorf("completeness --verify = %d %s", code, out)
	}
	tampered := bytes.Replace(body, []byte(`"overdue":1`), []byte(`"overdue":2`), 1)
	if bytes.Equal(tampered, body) {
		t.Fatal("the test changed nothing")
	}
	_ = os.WriteFile(file, tampered, 0o600)
	if code, out := cli("completeness", "--verify", file, "--public-key", pub); code != 1 || !strings.Contains(out, "NOT verify") {
		t.Errorf("completeness --verify of a changed report = %d %s; want refused", code, out)
	}

	// The day has not ended: the command refuses to archive it (for good) and shows it provisional.
	if code, out := cli("completeness", "--day", day, "--archive"); code != 2 || !strings.Contains(out, "has not ended yet") {
		t.Errorf("completeness --archive of today = %d %s; want refused", code, out)
	}
	if code, out := cli("completeness", "--day", day); code != 0 || !strings.Contains(out, "PROVISIONAL") {
		t.Errorf("completeness of today = %d %s; want it marked provisional", code, out)
	}
	// Yesterday has ended: archived once (by the command or the daily job, whichever came
	// first); the API then serves the archived one; the archive verifies.
	day = completeness.LastEnded(m.clock.Now())
	for range 2 {
		if code, out := cli("completeness", "--day", day, "--archive"); code != 0 || !strings.Contains(out, "as archived") || !strings.Contains(out, "signature verifies") ||
			!strings.Contains(out, "FINAL") {
			t.Fatalf("completeness --archive = %d %s", code, out)
		}
	}
	_, body = m.call(t, s, http.MethodGet, "/compliance/v1/completeness?day="+day, cco, "")
	reply.Archived = false
	if err := json.Unmarshal(body, &reply); err != nil {
		t.Fatal(err)
	}
	if rep, err := reply.Open(nil); err != nil || !reply.Archived || !rep.Final {
		t.Errorf("after archiving, GET = %s (%v)", body, err)
	}
	records, err := s.store.ArchiveStream(ctx, compliance.AdminStream)
	if err != nil {
		t.Fatal(err)
	}
	archived := 0
	for _, r := range records {
		if meta, _ := compliance.DecodeMeta(r.Meta); r.Kind == compliance.KindCompleteness && meta.Subject == day {
			archived++
		}
	}
	if archived != 1 {
		t.Errorf("%d archived reports of %s; want 1", archived, day)
	}
	if code, out := cli("verify"); code != 0 {
		t.Errorf("verify = %d %s", code, out)
	}

	// Stall: the chat is live and nothing arrives for 31 minutes.
	if v := metric(t, s, "wxteams_bridge_stalled"); v != "0" {
		t.Errorf("stalled = %q before any quiet", v)
	}
	m.clock.Advance(31 * time.Minute)
	m.eventually(t, "the stall gauge", func() bool { return metric(t, s, "wxteams_bridge_stalled") == "1" })
	if n := strings.Count(logs.String(), "bridge stalled"); n != 1 {
		t.Errorf("%d 'bridge stalled' lines; want 1:\n%s", n, logs.String())
	}
	if _, _, err := m.wechat.Send(ctx, "o-ming", "Hello?"); err != nil {
		t.Fatal(err)
	}
	m.eventually(t, "the stall to clear", func() bool { return metric(t, s, "wxteams_bridge_stalled") == "0" })
	if !strings.Contains(logs.String(), "bridge traffic resumed") {
		t.Error("no 'bridge traffic resumed' line")
	}

	// The daily job archives the day that ended (yesterday, by the clock) on its own.
	yesterday := completeness.LastEnded(m.clock.Now())
	m.eventually(t, "the daily report", func() bool { _, err := s.store.Completeness(ctx, yesterday); return err == nil })
}
