package bot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bot/teamsfake"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
)

// post sends raw JSON to the endpoint with a Bot Connector token for serviceURL.
func (r *rig) post(body []byte, token string) (int, string) {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.url+"/api/messages", bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func golden(t *testing.T, name string) ([]byte, bot.Activity) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var a bot.Activity
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	return b, a
}

func TestGoldenPayloadsFromTheDocs(t *testing.T) {
	r := newRig(t, sqlstoretest.SQLite(t))
	// A: a 1:1 message from a user the bridge has never seen: recorded, refused (not enabled).
	body, a := golden(t, "message-personal.json")
	if status, _ := r.post(body, r.teams.Issuer.BotToken(botAppID, a.ServiceURL)); status != 200 {
		t.Fatalf("payload A = %d", status)
	}
	emp, err := r.engine.Employee(r.ctx, meganID)
	if err != nil || emp.Name != "Megan Bowen" || emp.Tenant != tenant || emp.Enabled || emp.Teams.ConversationID != a.Conversation.ID || emp.Teams.UserID != a.From.ID {
		t.Errorf("Megan = %+v, %v; want her registered, not enabled, with her conversation", emp, err)
	}
	recs, _ := r.store.ArchiveStream(r.ctx, "employee:"+meganID)
	var kinds []string
	for _, rec := range recs {
		kinds = append(kinds, string(rec.Kind))
		if rec.Kind == compliance.KindEmployeeMessage {
			c, _ := compliance.DecodeContent(rec.Body)
			if c.Text != "Hello Teams TestBot.Sending bold-italic rich text" {
				t.Errorf("archived text = %q", c.Text)
			}
		}
	}
	if !slices.Contains(kinds, "employee.message") || !slices.Contains(kinds, "message.refused") {
		t.Errorf("archive = %v; want the message and its refusal", kinds)
	}
	// The same activity again (Teams' retry) is archived once.
	r.post(body, r.teams.Issuer.BotToken(botAppID, a.ServiceURL))
	recs2, _ := r.store.ArchiveStream(r.ctx, "employee:"+meganID)
	if len(recs2) != len(recs) {
		t.Errorf("a retried activity was archived again: %d → %d records", len(recs), len(recs2))
	}

	// B: the bot added to a personal chat (the docs' placeholder tenant made the rig's: the bot
	// refuses other tenants, see TestActivitiesFromAnotherTenantAreRefusedAndArchived).
	body, b := golden(t, "conversation-update.json")
	body = bytes.ReplaceAll(body, []byte("<TENANT ID>"), []byte(tenant))
	if status, _ := r.post(body, r.teams.Issuer.BotToken(botAppID, b.ServiceURL)); status != 200 {
		t.Errorf("payload B = %d", status)
	}
	if emp, err := r.engine.Employee(r.ctx, "***"); err != nil || emp.Teams.ConversationID != "***" {
		t.Errorf("the conversationUpdate's user = %+v, %v", emp, err)
	}

	// C: an Action.Execute invoke without our verb gets an invoke error response, not a failure.
	body, c := golden(t, "invoke-action-execute.json")
	body = bytes.ReplaceAll(body, []byte("56653e9d-2158-46ee-90d7-675c39642038"), []byte(tenant))
	status, resp := r.post(body, r.teams.Issuer.BotToken(botAppID, strings.ReplaceAll(c.ServiceURL, "56653e9d-2158-46ee-90d7-675c39642038", tenant)))
	if status != 200 || !strings.Contains(resp, `"statusCode":400`) || !strings.Contains(resp, "application/vnd.microsoft.error") {
		t.Errorf("payload C = %d %s; want an invoke response with statusCode 400", status, resp)
	}
}

func TestEndpointRefusesBadRequests(t *testing.T) {
	r := newRig(t, sqlstoretest.SQLite(t))
	body, a := golden(t, "message-personal.json")
	good := r.teams.Issuer.BotToken(botAppID, a.ServiceURL)
	// The caller is told the status and a fixed sentence; the log says why.
	for _, tc := range []struct {
		name   string
		body   []byte
		token  string
		status int
		want   string // in the answer
		why    string // in the log
	}{
		{"no token", body, "", 401, "bearer token is not valid", "Bearer"},
		{"token for another serviceUrl", body, r.teams.Issuer.BotToken(botAppID, "https://smba.trafficmanager.net/emea/"), 401, "bearer token is not valid", "serviceurl"},
		{"token for another bot", body, r.teams.Issuer.BotToken("00000000-0000-0000-0000-000000000000", a.ServiceURL), 401, "bearer token is not valid", "not this bot"},
		{"malformed JSON", []byte(`{"type":`), good, 400, "malformed activity", "malformed activity"},
		{"oversize body", append(bytes.Repeat([]byte(" "), 300<<10), body...), good, 413, "larger than", "larger than"},
		{"serviceUrl outside the allowlist", bytes.ReplaceAll(body, []byte("https://smba.trafficmanager.net/amer/"), []byte("https://evil.example/")), r.teams.Issuer.BotToken(botAppID, "https://evil.example/"), 403, "not an allowed Teams host", "not an allowed Teams host"},
	} {
		logged := r.logs.Len()
		status, resp := r.post(tc.body, tc.token)
		if status != tc.status || !strings.Contains(resp, tc.want) {
			t.Errorf("%s: %d %q; want %d containing %q", tc.name, status, strings.TrimSpace(resp), tc.status, tc.want)
		}
		entries := r.logs.All()[logged:]
		if len(entries) != 1 || !strings.Contains(fieldsText(entries[0].ContextMap()), tc.why) {
			t.Errorf("%s: logged %v; want one line saying %q", tc.name, entries, tc.why)
		}
	}
	if _, err := r.engine.Employee(r.ctx, meganID); err == nil {
		t.Error("a refused activity registered its sender")
	}
}

func testPNG(t *testing.T, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	img.Set(1, 1, color.RGBA{B: 255, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestFullPathTeamsAndWeChat: an administrator enables Megan (Graph installs the app and Teams
// tells the bot); a customer scans her QR code and writes; she sees a card, presses Reply, answers,
// sends an image, edits a message; each side receives what it should.
func TestFullPathTeamsAndWeChat(t *testing.T) {
	eachStore(t, func(t *testing.T, store *sqlstore.Store) {
		r := newRig(t, store)
		res := r.enable(meganID, "Megan Bowen")
		if !res.Installed || !res.User.WeChat || !res.User.Installed || res.QR == "" {
			t.Fatalf("enable = %+v", res)
		}
		// Proactive: she has never written, yet the bot greets her.
		if got := r.teams.Texts(meganID); len(got) != 1 || !strings.Contains(got[0], "WeChat is enabled for you") {
			t.Errorf("Megan received %q; want the welcome", got)
		}
		// The admin API gives her QR code; the customer scans it.
		status, qr := r.admin(http.MethodGet, res.QR, "", bot.AdminRole)
		if status != 200 || !bytes.HasPrefix(qr, []byte("\x89PNG")) {
			t.Fatalf("QR = %d", status)
		}
		const ming = "o-ming"
		if _, err := r.wechat.ScanScene(r.ctx, ming, bridge.SceneFor(meganID)); err != nil {
			t.Fatal(err)
		}
		r.drain()
		if _, _, err := r.wechat.Send(r.ctx, ming, "Hello Megan, about my portfolio"); err != nil {
			t.Fatal(err)
		}
		r.drain()
		cards := r.teams.Received(meganID)
		card := cards[len(cards)-1]
		text := teamsfake.VisibleText(&card.Activity)
		if !strings.Contains(text, "Hello Megan, about my portfolio") || !strings.Contains(text, "3 of 3 replies left · window closes in 48 h") {
			t.Errorf("the card reads %q; want the message and the window state", text)
		}
		// She presses Reply on the card (Action.Execute) and answers.
		var data bot.ReplyData
		chatID := chatOf(t, r, ming)
		data = bot.ReplyData{Action: "reply", Chat: chatID}
		answer, err := r.teams.Click(r.ctx, meganID, card.ID, "reply", data)
		if err != nil || !strings.Contains(string(answer), "Replying to WeChat customer 1") || !strings.Contains(string(answer), `"statusCode":200`) {
			t.Errorf("Reply invoke = %s, %v", answer, err)
		}
		msgID := r.say(meganID, "Hi! Happy to help.")
		if got := r.wechat.Texts(ming); got[len(got)-1] != "Hi! Happy to help." {
			t.Errorf("customer received %q", got)
		}
		// An image she pastes goes to WeChat as an image.
		img := testPNG(t, 16, 16)
		if _, err := r.teams.SayWithImage(r.ctx, meganID, "", img); err != nil {
			t.Fatal(err)
		}
		r.drain()
		delivered := r.wechat.Delivered(ming)
		if last := delivered[len(delivered)-1]; last.MsgType != "image" || !bytes.Equal(last.Data, img) {
			t.Errorf("customer's last = %s; want Megan's image", last.MsgType)
		}
		// The customer sends an image back: she sees it inline.
		back := testPNG(t, 24, 24)
		if _, _, err := r.wechat.SendImage(r.ctx, ming, back); err != nil {
			t.Fatal(err)
		}
		r.drain()
		got := r.teams.Received(meganID)
		if last := got[len(got)-1].Activity; len(last.Attachments) != 1 || !strings.HasPrefix(last.Attachments[0].ContentURL, "data:image/png;base64,") {
			t.Errorf("Megan's last = %+v; want the customer's image inline", last)
		}
		// An edit is archived and not relayed; she is told.
		before := len(r.wechat.Texts(ming))
		if err := r.teams.Edit(r.ctx, meganID, msgID, "Hi! Happy to help today."); err != nil {
			t.Fatal(err)
		}
		r.drain()
		if !strings.Contains(r.lastTeams(meganID), "Edits are not relayed") || len(r.wechat.Texts(ming)) != before {
			t.Errorf("after the edit Megan got %q and the customer %d new messages", r.lastTeams(meganID), len(r.wechat.Texts(ming))-before)
		}
		// A file is refused clearly.
		recs, _ := store.ArchiveStream(r.ctx, "employee:"+meganID)
		found := false
		for _, rec := range recs {
			found = found || rec.Kind == compliance.KindEmployeeEdit
		}
		if !found {
			t.Error("the edit is not in the archive")
		}
		if n, err := store.VerifyArchive(r.ctx); err != nil {
			t.Errorf("archive after %d records: %v", n, err)
		}
	})
}

func chatOf(t *testing.T, r *rig, contact string) bridge.ChatID {
	t.Helper()
	var id bridge.ChatID
	err := r.store.InTx(r.ctx, func(tx bridge.Tx) error {
		c, err := tx.LockChatByContact(r.ctx, bridge.OpenID(contact))
		if err == nil {
			id = c.ID
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestCommands(t *testing.T) {
	r := newRig(t, sqlstoretest.SQLite(t))
	r.enable(meganID, "Megan Bowen")
	for _, ming := range []string{"o-first", "o-second"} {
		r.wechat.ScanScene(r.ctx, ming, bridge.SceneFor(meganID))
		r.drain()
		r.wechat.Send(r.ctx, ming, "hello from "+ming)
		r.drain()
	}
	r.say(meganID, "help")
	if !strings.Contains(r.lastTeams(meganID), "contacts — list your WeChat contacts") {
		t.Errorf("help = %q", r.lastTeams(meganID))
	}
	r.say(meganID, "contacts")
	list := r.lastTeams(meganID)
	if !strings.Contains(list, "1. WeChat customer 2") || !strings.Contains(list, "2. WeChat customer 1") {
		t.Errorf("contacts = %q", list)
	}
	// With two contacts and none picked, a plain message is refused with directions.
	r.say(meganID, "who gets this?")
	if !strings.Contains(r.lastTeams(meganID), "no current WeChat contact") {
		t.Errorf("message without a current contact: %q", r.lastTeams(meganID))
	}
	r.say(meganID, "to 2")
	if !strings.Contains(r.lastTeams(meganID), "Now writing to WeChat customer 1") {
		t.Errorf("to 2 = %q", r.lastTeams(meganID))
	}
	r.say(meganID, "rename Mr Wang")
	r.say(meganID, "to mr w")
	if !strings.Contains(r.lastTeams(meganID), "Now writing to Mr Wang") {
		t.Errorf("to by prefix after rename = %q", r.lastTeams(meganID))
	}
	r.say(meganID, "Good morning Mr Wang")
	if got := r.wechat.Texts("o-first"); got[len(got)-1] != "Good morning Mr Wang" {
		t.Errorf("o-first received %q", got)
	}
	r.say(meganID, "to nobody at all")
	if !strings.Contains(r.lastTeams(meganID), `No contact matches "nobody at all"`) {
		t.Errorf("to an unknown contact = %q", r.lastTeams(meganID))
	}
	r.say(meganID, "qr")
	got := r.teams.Received(meganID)
	if last := got[len(got)-1].Activity; len(last.Attachments) != 1 || !strings.HasPrefix(last.Attachments[0].ContentURL, "data:image/png") {
		t.Errorf("qr = %+v; want her QR code inline", last)
	}
}

func TestAdminAPIAuthorization(t *testing.T) {
	r := newRig(t, sqlstoretest.SQLite(t))
	r.teams.AddUser(meganID, "Megan Bowen", tenant)
	if status, _ := r.admin(http.MethodGet, "/admin/v1/users", ""); status != 401 {
		t.Errorf("no token = %d; want 401", status)
	}
	if status, body := r.admin(http.MethodGet, "/admin/v1/users", "", "WeChat.Compliance"); status != 403 || !strings.Contains(string(body), "WeChat.Admin") {
		t.Errorf("wrong role = %d %s; want 403", status, body)
	}
	if status, _ := r.admin(http.MethodPut, "/admin/v1/users/"+meganID+"/wechat", "{not json", bot.AdminRole); status != 400 {
		t.Errorf("bad body = %d; want 400", status)
	}
	r.enable(meganID, "Megan Bowen")
	status, body := r.admin(http.MethodGet, "/admin/v1/users", "", bot.AdminRole)
	if status != 200 || !strings.Contains(string(body), `"wechat_enabled":true`) {
		t.Errorf("list = %d %s", status, body)
	}
	if status, _ := r.admin(http.MethodDelete, "/admin/v1/users/"+meganID+"/wechat", "", bot.AdminRole); status != 204 {
		t.Errorf("disable = %d", status)
	}
	if status, _ := r.admin(http.MethodDelete, "/admin/v1/users/nobody/wechat", "", bot.AdminRole); status != 404 {
		t.Errorf("disable an unknown user = %d; want 404", status)
	}
	recs, _ := r.store.ArchiveStream(r.ctx, compliance.AdminStream)
	var actors []string
	for _, rec := range recs {
		actors = append(actors, string(rec.Kind)+" by "+rec.Actor)
	}
	want := []string{"admin.employee_enabled by admin:it@acme.example", "admin.employee_disabled by admin:it@acme.example"}
	if !slices.Equal(actors, want) {
		t.Errorf("admin actions archived = %v; want %v", actors, want)
	}
	// Enabling twice is fine; Graph's 409 counts as installed.
	res := r.enable(meganID, "Megan Bowen")
	if !res.Installed {
		t.Errorf("second enable: %+v", res)
	}
}

func TestA429StormLosesAndReordersNothing(t *testing.T) {
	r := newRig(t, sqlstoretest.SQLite(t))
	r.enable(meganID, "Megan Bowen")
	const ming = "o-ming"
	r.wechat.ScanScene(r.ctx, ming, bridge.SceneFor(meganID))
	r.drain()
	before := len(r.teams.Received(meganID))
	r.teams.Storm(http.StatusTooManyRequests, 12)
	r.teams.Storm(http.StatusServiceUnavailable, 3)
	for i := range 6 {
		if _, _, err := r.wechat.Send(r.ctx, ming, "message "+string(rune('A'+i))); err != nil {
			t.Fatal(err)
		}
	}
	r.drain()
	var got []string
	for _, rec := range r.teams.Received(meganID)[before:] {
		for _, line := range strings.Split(teamsfake.VisibleText(&rec.Activity), "\n") {
			if strings.HasPrefix(line, "message ") {
				got = append(got, line)
			}
		}
	}
	if want := []string{"message A", "message B", "message C", "message D", "message E", "message F"}; !slices.Equal(got, want) {
		t.Errorf("Megan received %q; want %q in order", got, want)
	}
}

func TestUninstallAndBlockMakeTheEmployeeUnreachable(t *testing.T) {
	r := newRig(t, sqlstoretest.SQLite(t))
	r.enable(meganID, "Megan Bowen")
	if err := r.teams.Uninstall(r.ctx, meganID); err != nil {
		t.Fatal(err)
	}
	emp, _ := r.engine.Employee(r.ctx, meganID)
	if emp.Reachable {
		t.Error("still reachable after the app was uninstalled")
	}
	// Reinstalling makes her reachable again; blocking the bot makes her unreachable on the next send.
	if _, err := r.teams.Install(r.ctx, meganID); err != nil {
		t.Fatal(err)
	}
	r.teams.Block(meganID)
	r.wechat.ScanScene(r.ctx, "o-ming", bridge.SceneFor(meganID))
	r.drain()
	if emp, _ := r.engine.Employee(r.ctx, meganID); emp.Reachable {
		t.Error("still reachable after Teams answered ConversationBlockedByUser")
	}
}

func TestProactiveConversationIsCreatedWhenOnlyTheUserIDIsKnown(t *testing.T) {
	r := newRig(t, sqlstoretest.SQLite(t))
	u := r.teams.AddUser(meganID, "Megan Bowen", tenant)
	if _, err := r.teams.Install(r.ctx, meganID); err != nil { // Teams knows the chat…
		t.Fatal(err)
	}
	// …but the bridge only knows her user id (as from an org-wide roster).
	if _, err := r.engine.EnableEmployee(r.ctx, bridge.EmployeeProfile{ID: meganID, Tenant: tenant}, "admin:test"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.engine.UpdateEmployee(r.ctx, meganID, "admin:test", "test", func(e *bridge.Employee) error {
		e.Teams = bridge.TeamsAddress{ServiceURL: r.teams.URL, UserID: u.UserID}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r.wechat.ScanScene(r.ctx, "o-ming", bridge.SceneFor(meganID))
	r.drain()
	if got := r.teams.Texts(meganID); len(got) == 0 {
		t.Fatal("nothing reached Megan")
	}
	emp, _ := r.engine.Employee(r.ctx, meganID)
	if want, _ := r.teams.User(meganID); emp.Teams.ConversationID != want.ConversationID {
		t.Errorf("conversation recorded = %q; want %q", emp.Teams.ConversationID, want.ConversationID)
	}
	_ = context.Background
}

func TestTeamsLimitsAreEnforcedByTheFakeAndHonouredByTheBot(t *testing.T) {
	r := newRig(t, sqlstoretest.SQLite(t))
	r.enable(meganID, "Megan Bowen")
	u, _ := r.teams.User(meganID)
	// The fake refuses the 8th send within 2 s with 429 and Retry-After, as Teams does.
	r.teams.ThreadLimits = bot.DefaultThreadLimits
	tok, err := r.entraToken()
	if err != nil {
		t.Fatal(err)
	}
	var statuses []int
	for range 9 {
		req, _ := http.NewRequest(http.MethodPost, r.teams.URL+"v3/conversations/"+u.ConversationID+"/activities", strings.NewReader(`{"type":"message","text":"x"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	// At most 7 a second (the welcome, sent a moment ago, may count), then 429 until the window moves.
	first := slices.Index(statuses, 429)
	if first < 6 || first > 7 || slices.ContainsFunc(statuses[first:], func(s int) bool { return s != 429 }) {
		t.Errorf("statuses = %v; want 6 or 7 accepted, then only 429", statuses)
	}
	// A message over the size limit (413) is split and delivered in parts.
	r.teams.ThreadLimits = nil
	r.teams.MaxBytes = 1500
	r.wechat.ScanScene(r.ctx, "o-ming", bridge.SceneFor(meganID))
	r.drain()
	long := strings.Repeat("很长的消息。", 150) // 2700 bytes
	if _, _, err := r.wechat.Send(r.ctx, "o-ming", long); err != nil {
		t.Fatal(err)
	}
	r.drain()
	var parts []string
	for _, rec := range r.teams.Received(meganID) {
		if strings.Contains(rec.Activity.Text, "很长的消息") {
			parts = append(parts, rec.Activity.Text)
		}
	}
	if len(parts) < 2 || !strings.Contains(strings.Join(parts, ""), long) {
		t.Errorf("the long message arrived in %d parts; want it split and complete", len(parts))
	}
}

// entraToken is a Bot Framework token from the fake Entra, as the bot's credential gets.
func (r *rig) entraToken() (string, error) {
	req, _ := http.NewRequest(http.MethodPost, r.entra.URL+"/"+tenant+"/oauth2/v2.0/token",
		strings.NewReader("grant_type=client_credentials&client_id="+botAppID+"&client_secret="+botSecret+"&scope=https%3A%2F%2Fapi.botframework.com%2F.default"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := r.msClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	return tok.AccessToken, err
}

// Text PostgreSQL cannot hold in a text column (NUL, which JSON carries as \u0000) is not a 503 that
// Teams would retry forever: names and other state keep U+FFFD in its place, on both stores, while
// message content (JSON in bytea) is archived and delivered exactly as written. The archive verifies.
func TestUnstorableTextIsRecordedNotRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, store *sqlstore.Store) {
		r := newRig(t, store)
		r.teams.AddUser(meganID, "Megan\x00 Bowen", tenant)
		r.enable(meganID, "Megan Bowen")
		const ming = "o-ming"
		if _, err := r.wechat.ScanScene(r.ctx, ming, bridge.SceneFor(meganID)); err != nil {
			t.Fatal(err)
		}
		if res, _, err := r.wechat.Send(r.ctx, ming, "hello"); err != nil || !res.Acked {
			t.Fatalf("customer = %+v, %v", res, err)
		}
		r.drain()
		r.say(meganID, "a\x00b")
		if got := r.wechat.Texts(ming); len(got) == 0 || got[len(got)-1] != "a\x00b" {
			t.Errorf("customer received %q; want the text as written", got)
		}
		recs, err := store.ArchiveStream(r.ctx, compliance.ChatStream(int64(chatOf(t, r, ming))))
		if err != nil {
			t.Fatal(err)
		}
		archived := ""
		for _, rec := range recs {
			if rec.Kind == compliance.KindEmployeeMessage {
				c, _ := compliance.DecodeContent(rec.Body)
				archived = c.Text
			}
		}
		if archived != "a\x00b" {
			t.Errorf("archived %q; want the text as written", archived)
		}
		emp, err := r.engine.Employee(r.ctx, meganID)
		if err != nil || emp.Name != "Megan\uFFFD Bowen" {
			t.Errorf("employee = %+v, %v", emp, err)
		}
		status, _ := r.admin(http.MethodPut, "/admin/v1/users/"+meganID+"/wechat", `{"name":"Megan\u0000 B"}`, bot.AdminRole)
		if status != http.StatusOK {
			t.Errorf("enable with a NUL in the name = %d", status)
		}
		if status, _ := r.admin(http.MethodGet, "/admin/v1/users/a%00b/qr", "", bot.AdminRole); status != http.StatusNotFound {
			t.Errorf("QR of an id with a NUL = %d; want 404", status)
		}
		if n, err := store.VerifyArchive(r.ctx); err != nil {
			t.Errorf("archive after %d records: %v", n, err)
		}
	})
}
