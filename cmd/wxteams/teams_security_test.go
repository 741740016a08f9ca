package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bot/teamsfake"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/wechat/wechatfake"
	"github.com/wxteams/wxteams/compliance"
)

// The Teams findings of issue 13 (4, 5, 7 and 10) through `wxteams serve`, configured from its
// environment only; bot/security_test.go tests each rule in detail.
func TestServeTeamsSecurity(t *testing.T) {
	m := newMicrosoft(t)
	const (
		caller   = "5a6b7c8d-1e2f-4a3b-9c4d-5e6f7a8b9c0d"
		unlisted = "99999999-8888-4777-8666-555555555555"
		mallory  = "0b5e1d9c-3f4a-4e55-9d2b-6c1a7f8e9d00"
		other    = "11111111-2222-4333-8444-555555555555"
	)
	m.env["WXTEAMS_BOT_ENTRA_CALLERS"] = caller
	s, logs := startServeWith(t, m.env, m.clock, m.transport)
	m.teams.BotEndpoint = "http://" + s.publicAddr + "/api/messages"
	m.wechat.SetPusher(&wechatfake.Pusher{URL: "http://" + s.publicAddr + "/wechat/callback", Token: "pamtest", AESKey: testAESKey,
		AppID: testWxApp, OriginalID: testWxGH, Mode: wechatfake.Safe, Clock: m.clock})
	ctx := context.Background()

	// 7: another tenant's user installing the app is refused, registered nowhere, archived as refused.
	m.teams.AddUser(mallory, "Mallory (other tenant)", other)
	if _, err := m.teams.Install(ctx, mallory); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("install from another tenant: %v; want 403", err)
	}
	if _, err := s.engine.Employee(ctx, mallory); !errors.Is(err, bridge.ErrUnknownEmployee) {
		t.Errorf("Mallory: %v; want an unknown employee", err)
	}
	recs, err := s.store.ArchiveStream(ctx, compliance.AdminStream)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(recs, func(r compliance.Record) bool {
		meta, _ := compliance.DecodeMeta(r.Meta)
		return r.Kind == compliance.KindRefused && meta.Subject == other
	}) {
		t.Error("the refusal is not in the admin stream")
	}

	// 10: an Entra-issued token of the tenant, from the listed caller, is accepted; from another
	// application it is refused, and the log says which one and what to set.
	m.teams.AddUser(testMegan, "Megan Bowen", testTenant)
	m.teams.TokenFor = func(*bot.Activity) string { return m.admins.EntraAppToken(2, testTenant, testBotApp, caller) }
	if _, err := m.teams.Install(ctx, testMegan); err != nil {
		t.Fatalf("install with an Entra token from %s: %v", caller, err)
	}
	if emp, err := s.engine.Employee(ctx, testMegan); err != nil || emp.Teams.ConversationID == "" {
		t.Errorf("Megan: %+v, %v", emp, err)
	}
	m.teams.TokenFor = func(*bot.Activity) string {
		return m.admins.EntraAppToken(1, testTenant, "api://"+testBotApp, unlisted)
	}
	if _, err := m.teams.Say(ctx, testMegan, "hello"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("an unlisted caller's token: %v; want 401", err)
	}
	m.teams.TokenFor = nil
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, unlisted) {
			line = l
		}
	}
	if !strings.Contains(line, "WXTEAMS_BOT_ENTRA_CALLERS") {
		t.Errorf("no log line names %s and WXTEAMS_BOT_ENTRA_CALLERS: %q", unlisted, line)
	}

	// 5: what a caller with a forged token reads names nothing internal.
	forged := teamsfake.NewIssuer(teamsfake.BotFrameworkIssuer, m.clock, "msteams").BotToken(testBotApp, m.teams.URL)
	req, _ := http.NewRequest(http.MethodPost, m.teams.BotEndpoint, strings.NewReader(`{"type":"message","serviceUrl":"`+m.teams.URL+`","channelId":"msteams"}`))
	req.Header.Set("Authorization", "Bearer "+forged)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(string(body), "127.0.0.1") || strings.Contains(string(body), "kid") {
		t.Errorf("forged token = %d %q; want a 401 naming nothing internal", resp.StatusCode, body)
	}

	// 4: an attachment on https://127.0.0.1 (a trusted certificate, and a host this test lists in
	// WXTEAMS_BOT_SERVICEURL_ALLOW, so it passes the name check) is refused when dialled: serve has no
	// loopback opt-in, so an allowed name that resolves inside gets nowhere.
	var fetched atomic.Int64
	outside := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		_, _ = w.Write([]byte("\x89PNG"))
	}))
	defer outside.Close()
	admin := m.admins.UserToken("api://"+testBotApp, testTenant, "it@acme.example", "oid-it", bot.AdminRole)
	if status, body := m.adminCall(t, s, http.MethodPut, "/admin/v1/users/"+testMegan+"/wechat", admin); status != 200 {
		t.Fatalf("enable = %d %s", status, body)
	}
	if _, err := m.wechat.ScanScene(ctx, "o-ming", bridge.SceneFor(testMegan)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.wechat.Send(ctx, "o-ming", "Hello Megan"); err != nil {
		t.Fatal(err)
	}
	m.eventually(t, "the customer's message in Teams", func() bool { return strings.Contains(lastText(m.teams.Texts(testMegan)), "Hello Megan") })
	if _, err := m.teams.SayWith(ctx, testMegan, "", bot.Attachment{ContentType: "image/png", ContentURL: outside.URL + "/x.png"}); err != nil {
		t.Fatal(err)
	}
	m.eventually(t, "Megan told the image was not delivered", func() bool {
		return strings.Contains(lastText(m.teams.Texts(testMegan)), "was not sent: the image could not be fetched from Teams")
	})
	if n := fetched.Load(); n != 0 {
		t.Errorf("the attachment on another host was fetched %d times", n)
	}
}

func TestTeamsSecurityConfiguration(t *testing.T) {
	env := map[string]string{
		"WXTEAMS_BOT_APP_ID": testBotApp, "WXTEAMS_BOT_TENANT_ID": testTenant, "WXTEAMS_BOT_CLIENT_SECRET": "x",
	}
	get := func(k string) string { return env[k] }
	cfg, err := loadConfig(get)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Bot.AttachmentHosts, []string{"*.sharepoint.com", "*.sharepoint.us", "*.asm.skype.com"}) || len(cfg.Bot.EntraCallers) != 0 {
		t.Errorf("defaults: attachment hosts %v, Entra callers %v", cfg.Bot.AttachmentHosts, cfg.Bot.EntraCallers)
	}
	env["WXTEAMS_BOT_ATTACHMENT_HOSTS"] = " contoso.sharepoint.com , *.files.example ,"
	env["WXTEAMS_BOT_ENTRA_CALLERS"] = "5a6b7c8d-1e2f-4a3b-9c4d-5e6f7a8b9c0d, 99999999-8888-4777-8666-555555555555"
	if cfg, err = loadConfig(get); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Bot.AttachmentHosts, []string{"contoso.sharepoint.com", "*.files.example"}) || len(cfg.Bot.EntraCallers) != 2 {
		t.Errorf("set: attachment hosts %v, Entra callers %v", cfg.Bot.AttachmentHosts, cfg.Bot.EntraCallers)
	}
	env["WXTEAMS_BOT_ENTRA_CALLERS"] = "Microsoft Teams"
	if _, err := loadConfig(get); err == nil || !strings.Contains(err.Error(), "WXTEAMS_BOT_ENTRA_CALLERS") || !strings.Contains(err.Error(), "GUID") {
		t.Errorf("a caller that is not an application id: %v", err)
	}
}
