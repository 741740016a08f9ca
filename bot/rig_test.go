package bot_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/gorilla/mux"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bot/teamsfake"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/bridge/wechat"
	"github.com/wxteams/wxteams/bridge/wechat/wechatfake"
)

const (
	tenant    = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	botSecret = "bot-client-secret"
	teamsApp  = "b1c2d3e4-0000-4000-8000-000000000001"
	meganID   = "7faf8ab2-3d56-4244-b585-20c8a42ed2b8"
	wxAppID   = "wx2c2769f8efd9abc2"
	wxGH      = "gh_10f6c3c3ac5a"
	wxToken   = "callbacktoken"
	wxAESKey  = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

// rig is wxteams with both channels, against the fake WeChat and the fake Microsoft services, over
// HTTP: the real validator, connector client (with azidentity), endpoint, admin API, engine, store
// and WeChat adapter.
type rig struct {
	t        *testing.T
	ctx      context.Context
	clock    *clock.Fake
	store    *sqlstore.Store
	engine   *bridge.Engine
	teams    *teamsfake.Teams
	entra    *teamsfake.Entra
	graph    *teamsfake.Graph
	admins   *teamsfake.Issuer // Entra tokens for the admin API
	wechat   *wechatfake.WeChat
	wxClient *wechat.Client
	sender   *bot.Sender
	url      string       // wxteams' public listener
	msClient *http.Client // trusts the fake Microsoft TLS server
	pusher   *wechatfake.Pusher
	logs     *observer.ObservedLogs // what the endpoint logged
	receipts *receiptLog            // what the endpoint told of its receipts
}

func newRig(t *testing.T, store *sqlstore.Store) *rig {
	t.Helper()
	r := &rig{t: t, ctx: context.Background(), clock: clock.NewFake(time.Now().Truncate(time.Second)), store: store}

	// Microsoft: Entra and Graph (TLS), the Bot Framework issuer, the Bot Connector, admin tokens.
	r.entra = teamsfake.NewEntra(tenant)
	r.entra.AddClient(botAppID, botSecret)
	bfIssuer := teamsfake.NewIssuer(teamsfake.BotFrameworkIssuer, r.clock, "msteams")
	bfSrv := httptest.NewServer(bfIssuer.Handler())
	t.Cleanup(bfSrv.Close)
	bfIssuer.URL = bfSrv.URL
	r.teams = teamsfake.New(botAppID, bfIssuer, r.entra, r.clock)
	// The fake's own per-thread windows run on real time, which a virtual clock cannot move; the
	// bot's limiter stays on, and TestA429StormLosesAndReordersNothing injects Teams' 429s.
	r.teams.ThreadLimits = nil
	r.graph = teamsfake.NewGraph(r.entra, r.teams, teamsApp)
	ms := httptest.NewTLSServer(teamsfake.MicrosoftHandler(r.entra, r.graph))
	t.Cleanup(ms.Close)
	r.entra.URL = ms.URL
	r.msClient = ms.Client()
	teamsSrv := httptest.NewServer(r.teams.Handler())
	t.Cleanup(teamsSrv.Close)
	r.teams.URL = teamsSrv.URL + "/"
	r.admins = teamsfake.NewIssuer("https://login.microsoftonline.com/"+tenant+"/v2.0", r.clock)
	adminSrv := httptest.NewServer(r.admins.Handler())
	t.Cleanup(adminSrv.Close)
	r.admins.URL = adminSrv.URL

	// WeChat.
	r.wechat = wechatfake.New(wechatfake.Config{AppID: wxAppID, Secret: "wx-secret", OriginalID: wxGH}, r.clock)
	wxSrv := httptest.NewServer(r.wechat.Handler())
	t.Cleanup(wxSrv.Close)
	var err error
	r.wxClient, err = wechat.NewClient(wechat.ClientConfig{AppID: wxAppID, Secret: "wx-secret", APIBase: wxSrv.URL}, store, store, r.clock, nil)
	if err != nil {
		t.Fatal(err)
	}

	// The bot: an azidentity credential against the fake Entra, the connector, the sender.
	cred, err := azidentity.NewClientSecretCredential(tenant, botAppID, botSecret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: ms.URL + "/"}, Transport: ms.Client()}, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	// The connector trusts the certificate of tests' "localhost" servers, so that what it refuses
	// to fetch is refused by policy, not by TLS.
	_, pool := localhostTLS(t)
	attachmentClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}, Timeout: 10 * time.Second}
	connector, err := bot.NewConnector(bot.ConnectorConfig{AppID: botAppID, Credential: cred, HTTP: attachmentClient, AllowedHosts: []string{"127.0.0.1", "smba.trafficmanager.net"}, Clock: r.clock,
		AttachmentHosts: []string{"*.sharepoint.com"}, InsecureLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	r.sender = bot.NewSender(connector, store, tenant, r.teams.URL)
	r.engine, err = bridge.NewEngine(bridge.Config{Store: store, WeChat: r.wxClient, Teams: r.sender, Clock: r.clock, Policy: bridge.DefaultPolicy(),
		Media: map[string]bridge.MediaFetcher{"wechat": r.wxClient, "teams": r.sender}})
	if err != nil {
		t.Fatal(err)
	}
	r.sender.SetAddressBook(r.engine)
	validator, err := bot.NewValidator(bot.ValidatorConfig{MetadataURL: bfSrv.URL + "/v1/.well-known/openidconfiguration", Issuer: teamsfake.BotFrameworkIssuer, Audiences: []string{botAppID}, Clock: r.clock})
	if err != nil {
		t.Fatal(err)
	}
	adminValidator, err := bot.NewValidator(bot.ValidatorConfig{MetadataURL: adminSrv.URL + "/.well-known/openid-configuration", Audiences: []string{botAppID, "api://" + botAppID}, Clock: r.clock})
	if err != nil {
		t.Fatal(err)
	}
	qr := r.wxClient
	core, logs := observer.New(zap.InfoLevel)
	r.logs = logs
	// Entra-issued activity tokens: the tenant's keys are the admin issuer's.
	entra, err := bot.NewEntraActivities(bot.EntraActivityConfig{AppID: botAppID, TenantID: tenant, MetadataURL: adminSrv.URL + "/.well-known/openid-configuration",
		Callers: []string{entraCaller}, Clock: r.clock})
	if err != nil {
		t.Fatal(err)
	}
	r.receipts = &receiptLog{}
	endpoint := bot.NewEndpoint(bot.EndpointConfig{AppID: botAppID, TenantID: tenant, Entra: entra, Archive: store, Clock: r.clock, Receipts: r.receipts},
		validator, connector, r.engine, qr, zap.New(core))
	callback, err := wechat.NewCallback(wechat.CallbackConfig{AppID: wxAppID, OriginalID: wxGH, Tokens: []string{wxToken}, AESKeys: []string{wxAESKey}}, r.engine, r.clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	installer := graphInstaller(t, cred, ms)
	router := mux.NewRouter()
	router.Handle("/api/messages", endpoint)
	router.Handle("/wechat/callback", callback)
	bot.NewAdmin(adminValidator, r.engine, installer, qr, nil).Routes(router)
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	r.url = srv.URL
	r.teams.BotEndpoint = srv.URL + "/api/messages"
	r.pusher = &wechatfake.Pusher{URL: srv.URL + "/wechat/callback", Token: wxToken, AESKey: wxAESKey, AppID: wxAppID, OriginalID: wxGH, Mode: wechatfake.Safe, Clock: r.clock}
	r.wechat.SetPusher(r.pusher)
	return r
}

// graphInstaller is a Graph installer that talks plain net/http to the fake (bot/graph, with
// msgraph-sdk-go, has its own test; the bot package must not pay its compile time).
type fakeInstaller struct {
	t    *testing.T
	cred azcore.TokenCredential
	ms   *httptest.Server
}

func graphInstaller(t *testing.T, cred azcore.TokenCredential, ms *httptest.Server) bot.Installer {
	return &fakeInstaller{t: t, cred: cred, ms: ms}
}

func (f *fakeInstaller) InstallApp(ctx context.Context, userID string) (string, error) {
	tok, err := f.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{teamsfake.GraphScope}})
	if err != nil {
		return "", err
	}
	body, _ := json.Marshal(map[string]string{"teamsApp@odata.bind": f.ms.URL + "/v1.0/appCatalogs/teamsApps/" + teamsApp})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.ms.URL+"/v1.0/users/"+userID+"/teamwork/installedApps", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.ms.Client().Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusConflict {
		return "", &httpStatusError{resp.StatusCode}
	}
	return "", nil
}

type httpStatusError struct{ status int }

func (e *httpStatusError) Error() string { return "graph: HTTP " + http.StatusText(e.status) }

// enable has an administrator enable WeChat for a Teams user through the admin API.
func (r *rig) enable(aadID, name string) bot.EnableResult {
	r.t.Helper()
	if _, ok := r.teams.User(aadID); !ok {
		r.teams.AddUser(aadID, name, tenant)
	}
	status, body := r.admin(http.MethodPut, "/admin/v1/users/"+aadID+"/wechat", `{"name":"`+name+`"}`, bot.AdminRole)
	if status != 200 {
		r.t.Fatalf("enable = %d %s", status, body)
	}
	var res bot.EnableResult
	if err := json.Unmarshal(body, &res); err != nil {
		r.t.Fatal(err)
	}
	r.drain()
	return res
}

// admin calls the admin API with a token carrying roles.
func (r *rig) admin(method, path, body string, roles ...string) (int, []byte) {
	r.t.Helper()
	req, _ := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if roles != nil {
		req.Header.Set("Authorization", "Bearer "+r.admins.UserToken("api://"+botAppID, tenant, "it@acme.example", "oid-admin", roles...))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// drain delivers everything, letting the virtual clock run to each retry that is due.
func (r *rig) drain() {
	r.t.Helper()
	for range 100 {
		if _, err := r.engine.Drain(r.ctx); err != nil {
			r.t.Fatal(err)
		}
		next, _, err := r.store.NextDue(r.ctx)
		if err != nil {
			r.t.Fatal(err)
		}
		if next.IsZero() {
			return
		}
		r.clock.Set(next)
	}
	r.t.Fatal("deliveries did not settle")
}

// say has a Teams user write to the bot, and delivers what follows.
func (r *rig) say(aadID, text string) string {
	r.t.Helper()
	id, err := r.teams.Say(r.ctx, aadID, text)
	if err != nil {
		r.t.Fatal(err)
	}
	r.drain()
	return id
}

// lastTeams is the last thing a Teams user received.
func (r *rig) lastTeams(aadID string) string {
	r.t.Helper()
	texts := r.teams.Texts(aadID)
	if len(texts) == 0 {
		r.t.Fatalf("%s received nothing", aadID)
	}
	return texts[len(texts)-1]
}

func eachStore(t *testing.T, fn func(t *testing.T, store *sqlstore.Store)) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) { fn(t, open(t)) })
}
