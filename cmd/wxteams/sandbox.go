package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bot/teamsfake"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/wechat/wechatfake"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/api"
	"github.com/wxteams/wxteams/compliance/transcript"
	"github.com/wxteams/wxteams/console"
)

// The sandbox is the real product against the WeChat and Teams fakes, run in-process on loopback
// listeners: an Official Account, a Bot Connector with a tenant of employees, the Bot Framework's
// token issuer, Entra ID (over TLS, for azidentity) with Graph, and an Entra issuer for the console's
// administrator. wxteams is configured to reach them exactly as it reaches Microsoft and Tencent,
// so every message in the sandbox is signed, encrypted, authenticated and archived for real.

// The sandbox's fixed identities: the fake Official Account and the fake tenant's bot registration.
const (
	sandboxWeChatApp  = "wx5a4d1b2c3e4f5a6b"
	sandboxWeChatGH   = "gh_5a4d1b2c3e4f"
	sandboxTenant     = "6e0f8ed8-5f2b-4d0e-9d55-1f0a8b2c3d4e"
	sandboxBotApp     = "2b7c9e41-8a3d-4f6b-b1c2-7d8e9f0a1b2c"
	sandboxTeamsApp   = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"
	sandboxAdminUPN   = "sandbox-admin@contoso.example"
	sandboxCustomerNm = "WeChat customer"
)

// sandboxStaff are the fake tenant's employees; the first two have WeChat enabled at first start.
var sandboxStaff = []struct{ id, name, email string }{
	{"7faf8ab2-3d56-4244-b585-20c8a42ed2b8", "Megan Bowen", "megan.bowen@contoso.example"},
	{"4782e723-f4f4-4af3-a76e-25e3bab0d896", "Alex Wilber", "alex.wilber@contoso.example"},
	{"c8a0e7b2-61de-4bd5-8e3b-5b2f3a4c1d9e", "Lee Gu", "lee.gu@contoso.example"},
}

// sandboxWorld is the fakes and what the console shows of them.
type sandboxWorld struct {
	clock   *clock.Offset
	wechat  *wechatfake.WeChat
	teams   *teamsfake.Teams
	graph   *teamsfake.Graph
	admins  *teamsfake.Issuer
	servers []*http.Server
	// env configures wxteams for the fakes; transport trusts the fake Entra's certificate.
	env       map[string]string
	transport http.RoundTripper
	caPEM     []byte // the fake Entra ID's certificate, for a wxteams in another process (SSL_CERT_FILE)

	// set once wxteams runs
	srv   *server
	admin *bot.Admin

	mu       sync.Mutex
	said     map[string][]console.PaneItem // what each employee and customer wrote, by id
	names    map[string]string             // customers' one name (bridge.Contact.DisplayName), by openid
	teamsLog teamsDeliveries
}

// teamsDeliveries is what the archive says of this run's deliveries to Teams, read as it grows:
// the failures each employee's pane shows, and what keeps wxteams from reaching them now.
type teamsDeliveries struct {
	read    int64                         // the last archive record read
	failed  map[string][]console.PaneItem // by employee
	trouble map[string]string             // by employee; cleared by a delivery that succeeds
	// The employees' messages of this run and the receipts about them, for the fate marks of
	// the Teams pane: by message id, and the message id of each Teams activity.
	messages map[string][]*compliance.Record
	activity map[string]string
}

// startSandboxWorld starts the fakes.
func startSandboxWorld(clk *clock.Offset) (*sandboxWorld, error) {
	w := &sandboxWorld{clock: clk, said: map[string][]console.PaneItem{}, names: map[string]string{},
		teamsLog: teamsDeliveries{failed: map[string][]console.PaneItem{}, trouble: map[string]string{},
			messages: map[string][]*compliance.Record{}, activity: map[string]string{}}}
	serve := func(h http.Handler, tlsConfig *tls.Config) (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsConfig}
		w.servers = append(w.servers, s)
		scheme := "http"
		if tlsConfig != nil {
			scheme = "https"
			go func() { _ = s.ServeTLS(ln, "", "") }()
		} else {
			go func() { _ = s.Serve(ln) }()
		}
		return scheme + "://" + ln.Addr().String(), nil
	}
	fail := func(err error) (*sandboxWorld, error) { w.stop(); return nil, err }

	// WeChat.
	secret, token, aesKey := randomAlnum(32), randomAlnum(32), randomAlnum(43)
	w.wechat = wechatfake.New(wechatfake.Config{AppID: sandboxWeChatApp, Secret: secret, OriginalID: sandboxWeChatGH}, clk)
	wechatURL, err := serve(w.wechat.Handler(), nil)
	if err != nil {
		return fail(err)
	}
	// Microsoft: the Bot Framework issuer, Entra ID and Graph (TLS), the Bot Connector, the
	// administrators' Entra issuer.
	botSecret := randomAlnum(40)
	entra := teamsfake.NewEntra(sandboxTenant)
	entra.AddClient(sandboxBotApp, botSecret)
	bf := teamsfake.NewIssuer(teamsfake.BotFrameworkIssuer, clk, "msteams")
	if bf.URL, err = serve(bf.Handler(), nil); err != nil {
		return fail(err)
	}
	w.teams = teamsfake.New(sandboxBotApp, bf, entra, clk)
	w.teams.ThreadLimits = nil // the fake's windows run on real time; the bot's own limiter stays on
	w.graph = teamsfake.NewGraph(entra, w.teams, sandboxTeamsApp)
	cert, pool, err := selfSignedTLS()
	if err != nil {
		return fail(err)
	}
	w.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	msURL, err := serve(teamsfake.MicrosoftHandler(entra, w.graph), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return fail(err)
	}
	entra.URL = msURL
	w.transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 16}
	teamsURL, err := serve(w.teams.Handler(), nil)
	if err != nil {
		return fail(err)
	}
	w.teams.URL = teamsURL + "/"
	w.admins = teamsfake.NewIssuer("https://login.microsoftonline.com/"+sandboxTenant+"/v2.0", clk)
	if w.admins.URL, err = serve(w.admins.Handler(), nil); err != nil {
		return fail(err)
	}
	for _, e := range sandboxStaff {
		w.teams.AddUser(e.id, e.name, sandboxTenant)
		w.teams.SetUPN(e.id, e.email) // Graph finds them by address too
	}
	w.env = map[string]string{
		"WXTEAMS_WECHAT_APPID":         sandboxWeChatApp,
		"WXTEAMS_WECHAT_SECRET":        secret,
		"WXTEAMS_WECHAT_TOKEN":         token,
		"WXTEAMS_WECHAT_AES_KEY":       aesKey,
		"WXTEAMS_WECHAT_ORIGINAL_ID":   sandboxWeChatGH,
		"WXTEAMS_WECHAT_API_BASE":      wechatURL,
		"WXTEAMS_BOT_APP_ID":           sandboxBotApp,
		"WXTEAMS_BOT_TENANT_ID":        sandboxTenant,
		"WXTEAMS_BOT_CLIENT_SECRET":    botSecret,
		"WXTEAMS_BOT_OPENID_URL":       bf.URL + "/v1/.well-known/openidconfiguration",
		"WXTEAMS_BOT_SERVICEURL_ALLOW": "127.0.0.1",
		"WXTEAMS_BOT_PROACTIVE_URL":    w.teams.URL,
		"WXTEAMS_GRAPH_BASE":           msURL + "/v1.0",
		"WXTEAMS_TEAMS_APP_ID":         sandboxTeamsApp,
		"WXTEAMS_ADMIN_OPENID_URL":     w.admins.URL + "/.well-known/openid-configuration",
		"AZURE_AUTHORITY_HOST":         msURL + "/",
	}
	return w, nil
}

// attach points the fakes at the running wxteams and restores, after a restart, the employees and
// customers its database already knows. The fake Bot Connector listens on a new port at each
// start, so Teams tells the bot where each restored user is now, as it does whenever a serviceUrl
// changes; wxteams archives the new address as an employee update. At first start two employees
// are enabled as an administrator would, and Lee Gu adds the app himself without WeChat.
func (w *sandboxWorld) attach(ctx context.Context, s *server, admin *bot.Admin, log *zap.Logger) error {
	w.srv, w.admin = s, admin
	base := "http://" + s.publicAddr
	w.teams.BotEndpoint = base + "/api/messages"
	w.wechat.SetPusher(&wechatfake.Pusher{URL: base + "/wechat/callback", Token: w.env["WXTEAMS_WECHAT_TOKEN"], AESKey: w.env["WXTEAMS_WECHAT_AES_KEY"],
		AppID: sandboxWeChatApp, OriginalID: sandboxWeChatGH, Mode: wechatfake.Safe, Clock: w.clock})
	if recent, err := s.store.RecentRecords(ctx, 0, 1); err != nil {
		return err
	} else if len(recent) > 0 {
		w.teamsLog.read = recent[0].ID // the panes show this run's deliveries
	}
	emps, err := s.engine.Employees(ctx)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, e := range emps {
		known[string(e.ID)] = true
		if e.Teams.ConversationID == "" {
			continue
		}
		w.teams.Restore(string(e.ID), e.Name, sandboxTenant)
		if err := w.teams.Reconnect(ctx, string(e.ID)); err != nil {
			return fmt.Errorf("sandbox: tell wxteams where %s is in Teams now: %w", e.Name, err)
		}
	}
	contacts, err := s.store.Contacts(ctx)
	if err != nil {
		return err
	}
	for _, c := range contacts {
		w.wechat.Restore(string(c.OpenID), c.Language)
	}
	if len(emps) == 0 {
		for _, e := range sandboxStaff[:2] {
			res, err := admin.Enable(ctx, bridge.EmployeeProfile{ID: bridge.EmployeeID(e.id), Name: e.name, Email: e.email, Tenant: sandboxTenant}, "admin:"+sandboxAdminUPN)
			if err != nil {
				return fmt.Errorf("sandbox: enable %s: %w", e.name, err)
			}
			if !res.Installed {
				log.Warn("sandbox: Teams app not installed", zap.String("employee", e.name), zap.String("error", res.InstallError))
			}
			known[e.id] = true
		}
	}
	// The rest of the tenant has added the app without WeChat: wxteams knows them, not enabled.
	for _, e := range sandboxStaff {
		if !known[e.id] {
			if _, err := w.teams.Install(ctx, e.id); err != nil {
				return fmt.Errorf("sandbox: %s adds the Teams app: %w", e.name, err)
			}
		}
	}
	return nil
}

func (w *sandboxWorld) stop() {
	for _, s := range w.servers {
		_ = s.Close()
	}
}

// Token is an administrator's and compliance officer's token from the sandbox tenant's Entra ID.
func (w *sandboxWorld) Token() string {
	return w.admins.UserToken("api://"+sandboxBotApp, sandboxTenant, sandboxAdminUPN, "sandbox-admin", bot.AdminRole, api.Role)
}

func (w *sandboxWorld) State(ctx context.Context) (*console.SandboxState, error) {
	st := &console.SandboxState{Now: w.clock.Now(), Jumped: w.clock.Offset().String(), Customers: []console.Customer{}}
	if err := w.readTeamsDeliveries(ctx); err != nil {
		return nil, err
	}
	for _, e := range sandboxStaff {
		emp, err := w.srv.engine.Employee(ctx, bridge.EmployeeID(e.id))
		w.mu.Lock()
		trouble := w.teamsLog.trouble[e.id]
		w.mu.Unlock()
		st.Employees = append(st.Employees, console.Employee{ID: e.id, Name: e.name, Enabled: err == nil && emp.Enabled, TeamsTrouble: trouble})
	}
	chats, err := w.srv.store.ChatStatuses(ctx)
	if err != nil {
		return nil, err
	}
	if err := w.readNames(ctx); err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, u := range w.wechat.Users() {
		name := w.names[u.OpenID]
		if name == "" {
			continue // wxteams has not heard of them yet
		}
		st.Customers = append(st.Customers, console.Customer{OpenID: u.OpenID, Name: name, Chat: chats[u.OpenID]})
	}
	sort.SliceStable(st.Customers, func(i, j int) bool {
		return customerOrder(st.Customers[i].Name, st.Customers[j].Name)
	})
	return st, nil
}

// readNames reads the customers' names as wxteams gives them: the name an employee set, else
// "WeChat customer N".
func (w *sandboxWorld) readNames(ctx context.Context) error {
	contacts, err := w.srv.store.Contacts(ctx)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range contacts {
		w.names[string(c.OpenID)] = c.DisplayName()
	}
	return nil
}

// customerOrder lists customers as wxteams numbered them ("WeChat customer 2" before 10), named
// ones after.
func customerOrder(a, b string) bool {
	na, aok := strings.CutPrefix(a, sandboxCustomerNm+" ")
	nb, bok := strings.CutPrefix(b, sandboxCustomerNm+" ")
	if aok && bok {
		x, _ := strconv.Atoi(na)
		y, _ := strconv.Atoi(nb)
		return x < y
	}
	if aok != bok {
		return aok
	}
	return a < b
}

// streamName names an archive stream: "chat 3", or whose stream it is.
func (w *sandboxWorld) streamName(stream string) string {
	kind, id, _ := strings.Cut(stream, ":")
	switch kind {
	case "chat":
		return "chat " + id
	case "contact":
		return w.nameOf("customer:" + id)
	case "employee":
		return w.nameOf("employee:" + id)
	}
	return stream
}

// nameOf names an archived actor: an employee or customer by name, wxteams for the system.
func (w *sandboxWorld) nameOf(actor string) string {
	kind, id, _ := strings.Cut(actor, ":")
	switch kind {
	case "employee":
		for _, e := range sandboxStaff {
			if e.id == id {
				return e.name
			}
		}
	case "customer":
		w.mu.Lock()
		defer w.mu.Unlock()
		if n := w.names[id]; n != "" {
			return n
		}
	case "system":
		return "wxteams"
	case "admin":
		return "administrator " + id
	}
	return actor
}

func (w *sandboxWorld) employee(id string) (string, error) {
	for _, e := range sandboxStaff {
		if e.id == id {
			return e.name, nil
		}
	}
	return "", fmt.Errorf("%w: no employee %q in the sandbox tenant", console.ErrBadRequest, id)
}

func (w *sandboxWorld) note(id string, item console.PaneItem) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.said[id] = append(w.said[id], item)
}

func (w *sandboxWorld) TeamsPane(ctx context.Context, id string) ([]console.PaneItem, error) {
	if _, err := w.employee(id); err != nil {
		return nil, err
	}
	if err := w.readTeamsDeliveries(ctx); err != nil {
		return nil, err
	}
	w.mu.Lock()
	items := append([]console.PaneItem(nil), w.said[id]...)
	for i := range items {
		if msg, ok := w.teamsLog.activity[items[i].ID]; ok && items[i].Mine {
			if es := transcript.Build(w.teamsLog.messages[msg], nil); len(es) == 1 && es[0].Fate != nil {
				items[i].Fate, items[i].FateText = es[0].Fate.State, es[0].Fate.Reason
			}
		}
	}
	items = append(items, w.teamsLog.failed[id]...)
	w.mu.Unlock()
	for _, r := range w.teams.Received(id) {
		items = append(items, paneItemOf(r))
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].At.Before(items[j].At) })
	return items, nil
}

// readTeamsDeliveries reads the archive records written since it last looked, for what became of
// deliveries to Teams: a failure shows in the employee's pane, and a retry says what keeps
// wxteams from reaching them until a delivery to them succeeds. The words are the sandbox's own,
// from the status Teams answered, never a transport error's text.
func (w *sandboxWorld) readTeamsDeliveries(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		recs, err := w.srv.store.RecentRecords(ctx, w.teamsLog.read, 500)
		if err != nil {
			return err
		}
		for i := range recs {
			r := &recs[i]
			w.teamsLog.read = max(w.teamsLog.read, r.ID)
			m, err := compliance.DecodeMeta(r.Meta)
			if err != nil {
				continue
			}
			w.followMessages(r, m)
			if r.Kind != compliance.KindDelivered && r.Kind != compliance.KindDeliveryFailed && r.Kind != compliance.KindDeliveryRetry {
				continue
			}
			if m.Channel != string(bridge.ChannelTeams) || m.Employee == "" {
				continue
			}
			why := "Teams could not be reached"
			if m.ErrCode != 0 {
				why = fmt.Sprintf("Teams answered HTTP %d", m.ErrCode)
			}
			switch r.Kind {
			case compliance.KindDelivered:
				delete(w.teamsLog.trouble, m.Employee)
			case compliance.KindDeliveryRetry:
				w.teamsLog.trouble[m.Employee] = fmt.Sprintf("wxteams cannot reach you in Teams (%s); it keeps trying (attempt %d).", why, m.Attempt)
			case compliance.KindDeliveryFailed:
				w.teamsLog.trouble[m.Employee] = fmt.Sprintf("A message from wxteams did not reach you in Teams (%s).", why)
				w.teamsLog.failed[m.Employee] = append(w.teamsLog.failed[m.Employee], console.PaneItem{At: r.At, Failed: true,
					Text: fmt.Sprintf("Not delivered: a message from wxteams could not be shown here (%s). It is in the compliance archive.", why)})
			}
		}
		if len(recs) < 500 {
			return nil
		}
	}
}

// followMessages keeps the employees' messages (not their commands) and the receipts about them,
// for the fate marks. Called with w.mu held.
func (w *sandboxWorld) followMessages(r *compliance.Record, m compliance.Meta) {
	switch {
	case r.Kind == compliance.KindEmployeeMessage && m.MsgType != "command" && m.MessageID != "":
		w.teamsLog.messages[m.MessageID] = []*compliance.Record{r}
		if m.ExternalID != "" {
			w.teamsLog.activity[m.ExternalID] = m.MessageID
		}
	case m.MessageID != "":
		if _, receipt := transcript.ReceiptState(r, m); receipt {
			if list, ok := w.teamsLog.messages[m.MessageID]; ok {
				w.teamsLog.messages[m.MessageID] = append(list, r)
			}
		}
	}
}

// paneItemOf renders what the bot sent as the Teams client shows it: the card's text, an image
// sent inline, and the card's buttons.
func paneItemOf(r teamsfake.Received) console.PaneItem {
	item := console.PaneItem{At: r.At, ID: r.ID, Text: teamsfake.VisibleText(&r.Activity)}
	for _, att := range r.Activity.Attachments {
		if strings.HasPrefix(att.ContentURL, "data:image/") {
			item.Image = att.ContentURL
			item.Text = strings.TrimSpace(strings.ReplaceAll(item.Text, "[image]", ""))
		}
		if att.ContentType != bot.ContentTypeAdaptiveCard {
			continue
		}
		var card struct {
			Actions []struct {
				Type  string          `json:"type"`
				Title string          `json:"title"`
				Verb  string          `json:"verb"`
				Data  json.RawMessage `json:"data"`
			} `json:"actions"`
		}
		_ = json.Unmarshal(att.Content, &card)
		for _, a := range card.Actions {
			if a.Type == "Action.Execute" {
				item.Actions = append(item.Actions, console.Action{Title: a.Title, Verb: a.Verb, Data: a.Data})
			}
		}
		item.Note = len(card.Actions) == 0
		if author, _, ok := strings.Cut(item.Text, " → "); ok && strings.Contains(item.Text, "by your colleague") {
			item.Author = author // a colleague's message to the customer of a team chat
		}
	}
	return item
}

func (w *sandboxWorld) TeamsSay(ctx context.Context, id, text string) error {
	if _, err := w.employee(id); err != nil {
		return err
	}
	if strings.TrimSpace(text) == "" {
		return fmt.Errorf("%w: write something first", console.ErrBadRequest)
	}
	u, _ := w.teams.User(id)
	if !u.Installed {
		return fmt.Errorf("%w: WeChat is not enabled for this employee; enable them on the Users page", console.ErrBadRequest)
	}
	at := w.clock.Now()
	activity, err := w.teams.Say(ctx, id, text)
	if activity != "" {
		w.note(id, console.PaneItem{At: at, Mine: true, Text: text, ID: activity})
	}
	return err
}

func (w *sandboxWorld) TeamsClick(ctx context.Context, id, activityID, verb string, data json.RawMessage) error {
	if _, err := w.employee(id); err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("%w: the button's data is not JSON", console.ErrBadRequest)
	}
	answer, err := w.teams.Click(ctx, id, activityID, verb, v)
	if err != nil {
		return err
	}
	var resp struct {
		Value struct {
			Value json.RawMessage `json:"value"`
		} `json:"value"`
	}
	_ = json.Unmarshal(answer, &resp)
	var text string
	if json.Unmarshal(resp.Value.Value, &text) == nil && text != "" {
		w.note(id, console.PaneItem{At: w.clock.Now(), Text: text, Note: true})
	}
	return nil
}

func (w *sandboxWorld) WeChatPane(ctx context.Context, openID string) ([]console.PaneItem, error) {
	w.mu.Lock()
	items := append([]console.PaneItem(nil), w.said[openID]...)
	w.mu.Unlock()
	for _, d := range w.wechat.Delivered(openID) {
		item := console.PaneItem{At: d.At, Text: d.Text}
		switch d.MsgType {
		case "image":
			item.Text, item.Image = "", "data:image/png;base64,"+base64.StdEncoding.EncodeToString(d.Data)
		case "template":
			item.Text, item.Note = "Template message: "+templateText(d.Template), true
		}
		items = append(items, item)
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].At.Before(items[j].At) })
	return items, nil
}

func templateText(fields map[string]string) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fields[k])
	}
	return strings.Join(parts, " · ")
}

// WeChatNew makes a new WeChat user, who follows the account by searching for it; wxteams names
// them ("WeChat customer N").
func (w *sandboxWorld) WeChatNew(ctx context.Context) (string, error) {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	openID := "o" + strings.ReplaceAll(base64.RawURLEncoding.EncodeToString(b), "-", "_")
	w.wechat.SetLanguage(openID, "en")
	if _, err := w.wechat.Follow(ctx, openID); err != nil {
		return "", err
	}
	return openID, w.readNames(ctx)
}

func (w *sandboxWorld) WeChatScan(ctx context.Context, openID, employee string) error {
	if _, err := w.employee(employee); err != nil {
		return err
	}
	res, err := w.wechat.ScanScene(ctx, openID, bridge.SceneFor(bridge.EmployeeID(employee)))
	if err != nil {
		return err
	}
	if !res.Acked {
		return errors.New("wxteams did not acknowledge the scan")
	}
	return nil
}

func (w *sandboxWorld) WeChatSay(ctx context.Context, openID, text string) error {
	if strings.TrimSpace(text) == "" {
		return fmt.Errorf("%w: write something first", console.ErrBadRequest)
	}
	w.note(openID, console.PaneItem{At: w.clock.Now(), Mine: true, Text: text})
	res, _, err := w.wechat.Send(ctx, openID, text)
	if err != nil {
		return err
	}
	if !res.Acked {
		return errors.New("wxteams did not acknowledge the message")
	}
	return nil
}

// Advance jumps the clock: WeChat's windows and wxteams' 24 h and 48 h deadlines fall due at once.
func (w *sandboxWorld) Advance(ctx context.Context, d time.Duration) error {
	w.clock.Jump(d)
	_, err := w.srv.engine.FireDueTimers(ctx)
	if err == nil {
		_, err = w.srv.engine.Drain(ctx)
	}
	return err
}

// Timeline is the newest archived records, bodies opened.
func (w *sandboxWorld) Timeline(ctx context.Context, after int64) ([]console.TimelineItem, error) {
	recs, err := w.srv.store.RecentRecords(ctx, after, 200)
	if err != nil {
		return nil, err
	}
	if err := w.readNames(ctx); err != nil {
		return nil, err
	}
	out := make([]console.TimelineItem, 0, len(recs))
	for i := range recs {
		r := &recs[i]
		item := console.TimelineItem{ID: r.ID, At: r.At, Stream: r.Stream, Seq: r.Seq, Kind: string(r.Kind), Actor: r.Actor, ActorName: w.nameOf(r.Actor),
			StreamName: w.streamName(r.Stream)}
		if c, err := compliance.DecodeContent(r.Body); err == nil {
			item.Text = c.Text
		}
		if m, err := compliance.DecodeMeta(r.Meta); err == nil {
			item.Detail = timelineDetail(m)
			item.MessageID = m.MessageID
			if st, ok := transcript.ReceiptState(r, m); ok {
				item.Receipt, item.State = true, st
				if why := transcript.Reason(r.Kind, m); why != "" {
					item.Detail = why
				}
				if m.Channel == string(bridge.ChannelTeams) && m.Employee != "" {
					item.Detail = strings.TrimPrefix(item.Detail+" · to "+w.nameOf("employee:"+m.Employee), " · ")
				}
			}
		}
		out = append(out, item)
	}
	return out, nil
}

func timelineDetail(m compliance.Meta) string {
	var parts []string
	for _, kv := range [][2]string{{"template", m.Template}, {"reason", m.Reason}, {"from", m.From}, {"to", m.To}, {"scene", m.Scene}, {"channel", m.Channel}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	if m.ErrCode != 0 {
		parts = append(parts, fmt.Sprintf("errcode %d", m.ErrCode))
	}
	if m.QueueLength != 0 {
		parts = append(parts, fmt.Sprintf("queue %d", m.QueueLength))
	}
	return strings.Join(parts, " · ")
}

// selfSignedTLS is a certificate for the fake Entra ID on 127.0.0.1 and the pool that trusts it.
func selfSignedTLS() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "wxteams sandbox Entra ID"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool, nil
}

// randomAlnum is a random string of letters and digits (WeChat Tokens and keys are alphanumeric).
func randomAlnum(n int) string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

var _ console.Sandbox = (*sandboxWorld)(nil)
