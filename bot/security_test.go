package bot_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/mux"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bot/teamsfake"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
)

// The penetration test's Teams findings (issue 13: 4, 5, 7 and 10), each reproduced over HTTP
// against the fakes.

var (
	localhostTLSOnce sync.Once
	localhostCert    tls.Certificate
	localhostPool    *x509.CertPool
)

// localhostTLS is a certificate for "localhost" and 127.0.0.1 and a pool that trusts it: a server
// that is a different host name from the fakes' 127.0.0.1, yet verifiable.
func localhostTLS(t testing.TB) (tls.Certificate, *x509.CertPool) {
	localhostTLSOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		cert, _ := x509.ParseCertificate(der)
		localhostCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
		localhostPool = x509.NewCertPool()
		localhostPool.AddCert(cert)
	})
	return localhostCert, localhostPool
}

// hits is a server that counts its requests and remembers the Authorization headers it saw.
type hits struct {
	n    atomic.Int64
	mu   sync.Mutex
	auth []string
}

func (h *hits) record(r *http.Request) {
	h.n.Add(1)
	h.mu.Lock()
	h.auth = append(h.auth, r.Header.Get("Authorization"))
	h.mu.Unlock()
}

func (h *hits) sawToken() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range h.auth {
		if a != "" {
			return true
		}
	}
	return false
}

// tlsServer serves h over https as "localhost" (see localhostTLS).
func tlsServer(t *testing.T, h http.Handler) (url string) {
	t.Helper()
	cert, _ := localhostTLS(t)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return "https://localhost:" + port
}

// entraCaller is an application of the tenant allowed to post activities with Entra-issued tokens.
const entraCaller = "5a6b7c8d-1e2f-4a3b-9c4d-5e6f7a8b9c0d"

// Finding 4: an employee's attachment on any https host was fetched, its redirect to plain http on
// 127.0.0.1 followed, and what came back sent to the customer as an image. Now attachments come
// only from Teams' own hosts; the rig's allow-list holds the fake Teams' 127.0.0.1 (with the
// test-only loopback opt-in), and "localhost" stands for any other host.
func TestAnEmployeeAttachmentCannotMakeTheBotFetchOtherHosts(t *testing.T) {
	eachStore(t, func(t *testing.T, store *sqlstore.Store) {
		r := newRig(t, store)
		const ming = "o-ming"
		r.enable(meganID, "Megan Bowen")
		if _, err := r.wechat.ScanScene(r.ctx, ming, bridge.SceneFor(meganID)); err != nil {
			t.Fatal(err)
		}
		r.drain()
		if _, _, err := r.wechat.Send(r.ctx, ming, "Hello Megan"); err != nil {
			t.Fatal(err)
		}
		r.drain()

		// An internal service (cloud metadata, say) on plain http, and an outside host that
		// redirects to it.
		secret := []byte("\x89PNG internal secret")
		var internal, outside hits
		internalSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			internal.record(req)
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(secret)
		}))
		t.Cleanup(internalSrv.Close)
		outsideURL := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			outside.record(req)
			http.Redirect(w, req, internalSrv.URL+"/latest/meta-data/iam", http.StatusFound)
		}))
		// A host the rig allows (127.0.0.1, the fake Teams' address) redirecting to that outside host.
		var redirector hits
		redirectorSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			redirector.record(req)
			http.Redirect(w, req, outsideURL+"/from-an-allowed-host.png", http.StatusFound)
		}))
		t.Cleanup(redirectorSrv.Close)

		before := len(r.wechat.Delivered(ming))
		for _, att := range []bot.Attachment{
			{ContentType: "image/png", ContentURL: outsideURL + "/pasted.png"},
			teamsfake.FileAttachment("report.png", "https://contoso.sharepoint.com/personal/megan/Documents/report.png", outsideURL+"/download.aspx?tempauth=x", "png"),
			{ContentType: "image/png", ContentURL: redirectorSrv.URL + "/v3/attachments/0-weu/views/original"},
		} {
			if _, err := r.teams.SayWith(r.ctx, meganID, "", att); err != nil {
				t.Fatal(err)
			}
			r.drain()
		}
		if n := outside.n.Load(); n != 0 {
			t.Errorf("the bot fetched from a host that is not Teams' %d times", n)
		}
		if n := internal.n.Load(); n != 0 {
			t.Errorf("the bot reached the internal service %d times", n)
		}
		for _, d := range r.wechat.Delivered(ming)[before:] {
			if bytes.Equal(d.Data, secret) {
				t.Fatal("the internal service's answer was sent to the customer")
			}
			if d.MsgType == "image" {
				t.Errorf("the customer received an image (%d bytes) from a refused attachment", len(d.Data))
			}
		}
		if redirector.n.Load() == 0 {
			t.Error("the attachment on the allowed host was not tried at all")
		}
		// Megan is told each one was not delivered.
		told := 0
		for _, text := range r.teams.Texts(meganID) {
			if strings.Contains(text, "was not sent: the image could not be fetched from Teams") {
				told++
			}
		}
		if told != 3 {
			t.Errorf("Megan was told of %d undelivered attachments; want 3", told)
		}
		// A pasted image from Teams itself still arrives.
		img := testPNG(t, 8, 8)
		if _, err := r.teams.SayWithImage(r.ctx, meganID, "", img); err != nil {
			t.Fatal(err)
		}
		r.drain()
		delivered := r.wechat.Delivered(ming)
		if last := delivered[len(delivered)-1]; last.MsgType != "image" || !bytes.Equal(last.Data, img) {
			t.Errorf("customer's last = %s; want Megan's image from Teams", last.MsgType)
		}
	})
}

// Finding 7: a correctly signed activity naming another tenant registered its sender as an
// employee. The single-tenant bot now refuses it with a 403, registers nobody, and archives the
// refusal (a bounded record: ids, no names or text).
func TestActivitiesFromAnotherTenantAreRefusedAndArchived(t *testing.T) {
	eachStore(t, func(t *testing.T, store *sqlstore.Store) {
		r := newRig(t, store)
		const mallory, otherTenant = "0b5e1d9c-3f4a-4e55-9d2b-6c1a7f8e9d00", "11111111-2222-4333-8444-555555555555"
		r.teams.AddUser(mallory, "Mallory (other tenant)", otherTenant)
		_, err := r.teams.Install(r.ctx, mallory)
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("install in another tenant: %v; want the bot to answer 403", err)
		}
		if emp, err := r.engine.Employee(r.ctx, mallory); err == nil {
			t.Fatalf("Mallory of another tenant was registered: %+v", emp)
		}
		refusals := func() []compliance.Meta {
			recs, err := r.store.ArchiveStream(r.ctx, compliance.AdminStream)
			if err != nil {
				t.Fatal(err)
			}
			var out []compliance.Meta
			for _, rec := range recs {
				if rec.Kind == compliance.KindRefused {
					m, _ := compliance.DecodeMeta(rec.Meta)
					out = append(out, m)
				}
			}
			return out
		}
		got := refusals()
		if len(got) != 1 || got[0].Reason != "other_tenant" || got[0].Subject != otherTenant || got[0].Channel != "teams" || got[0].ExternalID == "" {
			t.Fatalf("archived refusals = %+v; want one other_tenant refusal naming the tenant", got)
		}

		// Either tenant field naming another tenant is enough; an activity naming none is refused too.
		body, a := golden(t, "message-personal.json") // Microsoft's own tenant: the rig's
		tok := r.teams.Issuer.BotToken(botAppID, a.ServiceURL)
		for _, tc := range []struct {
			name string
			edit func(map[string]any)
			want int
		}{
			{"ours", func(map[string]any) {}, 200},
			{"conversation.tenantId of another tenant", func(m map[string]any) {
				m["conversation"].(map[string]any)["tenantId"] = otherTenant
			}, 403},
			{"channelData.tenant of another tenant", func(m map[string]any) {
				m["channelData"] = map[string]any{"tenant": map[string]string{"id": otherTenant}}
			}, 403},
			{"no tenant at all", func(m map[string]any) { delete(m, "channelData") }, 403},
		} {
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			m["id"] = "msg-" + strings.ReplaceAll(tc.name, " ", "-")
			tc.edit(m)
			b, _ := json.Marshal(m)
			status, resp := r.post(b, tok)
			if status != tc.want {
				t.Errorf("%s: %d %s; want %d", tc.name, status, resp, tc.want)
			}
			if status == 403 && !strings.Contains(resp, "tenant") {
				t.Errorf("%s: the answer %q does not say why", tc.name, resp)
			}
		}
		// Microsoft's invoke vector, from its own tenant, is refused as it stands.
		invoke, c := golden(t, "invoke-action-execute.json")
		if status, _ := r.post(invoke, r.teams.Issuer.BotToken(botAppID, c.ServiceURL)); status != 403 {
			t.Errorf("another tenant's invoke = %d; want 403", status)
		}
		// A tenant that keeps writing costs one archived record a minute, which counts the rest.
		r.teams.Restore(mallory, "Mallory (other tenant)", otherTenant)
		for range 20 {
			if _, err := r.teams.Say(r.ctx, mallory, "hello?"); err == nil {
				t.Fatal("another tenant's message was accepted")
			}
		}
		n := len(refusals())
		if n > 6 { // Mallory's install, the three edited vectors' tenants, the invoke's tenant, one of the twenty
			t.Errorf("%d refusals archived; twenty messages from one tenant within a minute should add one", n)
		}
		r.clock.Advance(time.Minute)
		if _, err := r.teams.Say(r.ctx, mallory, "hello?"); err == nil {
			t.Fatal("another tenant's message was accepted")
		}
		all := refusals()
		last := all[len(all)-1]
		if len(all) != n+1 || last.Subject != otherTenant || last.Count < 20 {
			t.Errorf("after a minute: %d refusals (had %d), last %+v; want one more counting the %d unrecorded", len(all), n, last, 20)
		}
		for _, m := range all {
			if strings.Contains(m.Subject+m.ExternalID+m.Reason+m.Error, "Mallory") {
				t.Errorf("a refusal record holds the sender's name: %+v", m)
			}
		}
		if n, err := r.store.VerifyArchive(r.ctx); err != nil {
			t.Errorf("archive after %d records: %v", n, err)
		}
	})
}

// Finding 10: tokens Entra ID issued for the bot were refused outright. They are accepted from the
// bot's own tenant (v1 and v2 issuers), signed with the tenant's keys, for the bot's audience,
// from a calling application listed in WXTEAMS_BOT_ENTRA_CALLERS; anything else is refused and the
// log names the calling application and the variable to set.
func TestEntraIssuedActivityTokensFromKnownCallers(t *testing.T) {
	r := newRig(t, sqlstoretest.SQLite(t))
	r.teams.AddUser(meganID, "Megan Bowen", tenant)
	tenantKeys := r.admins // the tenant's Entra issuer: its keys are the tenant's
	stranger := teamsfake.NewIssuer("https://login.microsoftonline.com/"+tenant+"/v2.0", r.clock)
	ctx := r.ctx
	try := func(token string) (int, string) {
		r.teams.TokenFor = func(*bot.Activity) string { return token }
		defer func() { r.teams.TokenFor = nil }()
		u, _ := r.teams.User(meganID)
		a := &bot.Activity{Type: "message", ID: "entra-" + token[len(token)-12:], ServiceURL: r.teams.URL, ChannelID: "msteams",
			From: bot.ChannelAccount{ID: u.UserID, Name: u.Name, AADObjectID: meganID}, Text: "hi", TextFormat: "plain",
			Conversation: bot.ConversationAccount{ID: "a:megan", ConversationType: "personal", TenantID: tenant},
			Recipient:    bot.ChannelAccount{ID: "28:" + botAppID}, ChannelData: json.RawMessage(`{"tenant":{"id":"` + tenant + `"}}`)}
		status, body, _ := r.teams.Post(ctx, a)
		return status, string(body)
	}
	for _, tc := range []struct {
		name  string
		token string
		want  int
	}{
		{"v2, listed caller", tenantKeys.EntraAppToken(2, tenant, botAppID, entraCaller), 200},
		{"v1, listed caller", tenantKeys.EntraAppToken(1, tenant, "api://"+botAppID, entraCaller), 200},
		{"v1, api://botid- audience", tenantKeys.EntraAppToken(1, tenant, "api://botid-"+botAppID, entraCaller), 200},
		{"unlisted caller", tenantKeys.EntraAppToken(2, tenant, botAppID, "99999999-8888-4777-8666-555555555555"), 401},
		{"another tenant's issuer", tenantKeys.EntraAppToken(2, "00000000-0000-4000-8000-000000000000", botAppID, entraCaller), 401},
		{"for another audience", tenantKeys.EntraAppToken(2, tenant, "https://graph.microsoft.com", entraCaller), 401},
		{"for Bot Framework's audience", tenantKeys.EntraAppToken(1, tenant, "https://api.botframework.com", entraCaller), 401},
		{"signed with a key that is not the tenant's", stranger.EntraAppToken(2, tenant, botAppID, entraCaller), 401},
		{"v1 issuer naming the caller only as azp", tenantKeys.Sign(withClaims(tenantKeys.EntraAppClaims(1, tenant, botAppID, entraCaller), func(c jwt.MapClaims) {
			c["azp"] = c["appid"]
			delete(c, "appid")
		})), 401},
		{"tid of another tenant", tenantKeys.Sign(withClaims(tenantKeys.EntraAppClaims(2, tenant, botAppID, entraCaller), func(c jwt.MapClaims) {
			c["tid"] = "00000000-0000-4000-8000-000000000000"
		})), 401},
		{"a serviceurl claim that is not the activity's", tenantKeys.Sign(withClaims(tenantKeys.EntraAppClaims(2, tenant, botAppID, entraCaller), func(c jwt.MapClaims) {
			c["serviceurl"] = "https://evil.example/"
		})), 401},
		{"expired", tenantKeys.Sign(withClaims(tenantKeys.EntraAppClaims(2, tenant, botAppID, entraCaller), func(c jwt.MapClaims) {
			c["exp"] = r.clock.Now().Add(-10 * time.Minute).Unix()
		})), 401},
	} {
		if status, body := try(tc.token); status != tc.want {
			t.Errorf("%s: %d %s; want %d", tc.name, status, body, tc.want)
		}
	}
	if emp, err := r.engine.Employee(ctx, meganID); err != nil || emp.Teams.UserID == "" {
		t.Errorf("Megan after an accepted Entra-issued activity: %+v, %v", emp, err)
	}
	// One log line tells the operator which application was refused and what to set.
	const unlisted = "99999999-8888-4777-8666-555555555555"
	found := false
	for _, e := range r.logs.All() {
		line := e.Message + " " + fieldsText(e.ContextMap())
		if strings.Contains(line, unlisted) && strings.Contains(line, "WXTEAMS_BOT_ENTRA_CALLERS") {
			found = true
		}
	}
	if !found {
		t.Errorf("no log line names the refused caller %s and WXTEAMS_BOT_ENTRA_CALLERS; logs: %v", unlisted, r.logs.All())
	}
}

func withClaims(c jwt.MapClaims, edit func(jwt.MapClaims)) jwt.MapClaims {
	edit(c)
	return c
}

func fieldsText(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// Finding 5: while the OpenID metadata endpoint failed, every request with a well-formed bad
// token fetched it again (50 concurrent requests, 50 fetches), and the 401 named the internal
// metadata URL. Now one fetch is in flight at a time, failures back off, and what the caller reads
// names nothing internal.
func TestAnOpenIDOutageCostsOneFetchAndLeaksNothing(t *testing.T) {
	clk := clock.NewFake(time.Now())
	iss := teamsfake.NewIssuer(teamsfake.BotFrameworkIssuer, clk, "msteams")
	var fetches atomic.Int64
	var down atomic.Bool
	down.Store(true)
	const secretPath = "/internal-openid-7f3a"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if down.Load() {
			fetches.Add(1)
			time.Sleep(50 * time.Millisecond) // slow, as a failing service often is
			http.Error(w, "upstream connect error", http.StatusServiceUnavailable)
			return
		}
		http.StripPrefix(secretPath, iss.Handler()).ServeHTTP(w, req)
	}))
	defer srv.Close()
	iss.URL = srv.URL + secretPath
	v, err := bot.NewValidator(bot.ValidatorConfig{MetadataURL: srv.URL + secretPath + "/v1/.well-known/openidconfiguration", Issuer: teamsfake.BotFrameworkIssuer,
		Audiences: []string{botAppID}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	connector, err := bot.NewConnector(bot.ConnectorConfig{AppID: botAppID, Credential: staticCredential{}, AllowedHosts: []string{"smba.trafficmanager.net"}})
	if err != nil {
		t.Fatal(err)
	}
	router := mux.NewRouter()
	router.Handle("/api/messages", bot.NewEndpoint(bot.EndpointConfig{AppID: botAppID}, v, connector, nil, nil, nil))
	bot.NewAdmin(v, nil, nil, nil, nil).Routes(router)
	api := httptest.NewServer(router)
	defer api.Close()

	forger := teamsfake.NewIssuer(teamsfake.BotFrameworkIssuer, clk, "msteams") // well-formed, signed by nobody we trust
	bad := forger.BotToken(botAppID, serviceURL)
	body := []byte(`{"type":"message","id":"1","channelId":"msteams","serviceUrl":"` + serviceURL + `","conversation":{"id":"a:1"}}`)
	post := func(path, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, api.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	leaks := func(where, answer string) {
		for _, s := range []string{secretPath, srv.URL, "127.0.0.1", "upstream", "503 Service Unavailable"} {
			if strings.Contains(answer, s) {
				t.Errorf("%s: the answer %q names %q", where, answer, s)
			}
		}
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, answer := post("/api/messages", bad)
			if status == http.StatusOK {
				t.Error("a forged token was accepted")
			}
			leaks("activity", answer)
		}()
	}
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Errorf("50 concurrent requests during the outage fetched the metadata %d times; want 1", n)
	}
	for range 20 {
		post("/api/messages", bad)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("requests right after a failed fetch fetched again: %d fetches; want 1 (backoff)", n)
	}
	// The admin API shares the validator: the same, and its 401 names nothing internal either.
	req, _ := http.NewRequest(http.MethodGet, api.URL+"/admin/v1/users", nil)
	req.Header.Set("Authorization", "Bearer "+bad)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("admin API accepted a forged token")
		}
		leaks("admin API", string(b))
	}
	// The compliance API writes what Authorize returns.
	if _, _, err := v.Authorize(req, bot.AdminRole, "admin:"); err == nil {
		t.Error("Authorize accepted a forged token")
	} else {
		leaks("Authorize", err.Error())
	}
	// After the backoff one more fetch is made, not more.
	clk.Advance(2 * time.Minute)
	for range 5 {
		post("/api/messages", bad)
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("after the backoff: %d fetches; want 2", n)
	}
	// When the metadata is back, good tokens pass again (at the next allowed fetch).
	down.Store(false)
	clk.Advance(10 * time.Minute)
	good := iss.BotToken(botAppID, serviceURL)
	if status, answer := post("/api/messages", good); status == http.StatusUnauthorized || status == http.StatusServiceUnavailable {
		t.Errorf("a good token after the outage = %d %s", status, answer)
	}
}

// Finding 4, the rules one by one against servers over real HTTP: only listed hosts, https, public
// addresses when dialled (so a listed name that resolves inside is refused: DNS rebinding), checked
// redirects, the token only for serviceUrl hosts, and a size cap.
func TestAttachmentDownloadRules(t *testing.T) {
	ctx := t.Context()
	_, pool := localhostTLS(t)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}, Timeout: 5 * time.Second}
	connector := func(loopback bool, files ...string) *bot.Connector {
		c, err := bot.NewConnector(bot.ConnectorConfig{AppID: botAppID, Credential: staticCredential{}, HTTP: client, AllowedHosts: []string{"127.0.0.1"},
			AttachmentHosts: files, MaxAttachment: 1 << 20, InsecureLoopback: loopback})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var files hits
	png := testPNG(t, 4, 4)
	filesURL := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		files.record(req)
		switch req.URL.Path {
		case "/big":
			w.Header().Set("Content-Length", "2000000")
			_, _ = w.Write(make([]byte, 2000000))
		case "/big-chunked":
			w.(http.Flusher).Flush() // no Content-Length
			for range 40 {
				_, _ = w.Write(make([]byte, 64<<10))
			}
		case "/loop":
			http.Redirect(w, req, "/loop", http.StatusFound)
		default:
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(png)
		}
	}))
	var teams hits
	teamsSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		teams.record(req)
		http.Redirect(w, req, req.URL.Query().Get("to"), http.StatusFound)
	}))
	defer teamsSrv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(filesURL, "https://"))
	const (
		notListed = "not a host Teams serves files from"
		inside    = "private, loopback or link-local address"
		notHTTPS  = "not https"
	)
	refused := func(c *bot.Connector, raw, why, want string) {
		t.Helper()
		data, _, err := c.Download(ctx, raw, 0)
		if !errors.Is(err, bot.ErrAttachmentRefused) || errors.Is(err, bridge.ErrRetryLater) || data != nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want a final refusal saying %q", why, err, want)
			return
		}
		if strings.Contains(err.Error(), "tempauth") || strings.Contains(err.Error(), "/x.png") {
			t.Errorf("%s: the error %q repeats the URL", why, err)
		}
	}

	// Without the loopback opt-in, as in production.
	strict := connector(false, "localhost", "169.254.169.254", "10.0.0.7", "fd00::1", "100.64.1.1")
	before := files.n.Load()
	refused(strict, filesURL+"/x.png?tempauth=secret", "a listed name that resolves to loopback (DNS rebinding)", inside)
	refused(strict, "https://169.254.169.254:"+port+"/latest/meta-data/x.png", "link-local (cloud metadata)", inside)
	refused(strict, "https://10.0.0.7:"+port+"/x.png", "private IPv4", inside)
	refused(strict, "https://[fd00::1]:"+port+"/x.png", "private IPv6", inside)
	refused(strict, "https://100.64.1.1:"+port+"/x.png", "carrier-grade NAT", inside)
	refused(strict, "http://localhost:"+port+"/x.png", "plain http", notHTTPS)
	refused(strict, teamsSrv.URL+"/x.png", "plain http to a serviceUrl host", notHTTPS)
	refused(strict, "https://evil.example/x.png", "a host on no list", notListed)
	refused(strict, "https://user:pass@localhost:"+port+"/x.png", "credentials in the URL", "credentials")
	if n := files.n.Load() - before; n != 0 {
		t.Errorf("%d requests reached the server; every one should have been refused before", n)
	}

	// With the test-only opt-in, loopback is dialled (the fakes live there): the rest of the rules.
	c := connector(true, "localhost", "169.254.169.254", "10.0.0.7")
	data, ct, err := c.Download(ctx, filesURL+"/x.png", 0)
	if err != nil || !bytes.Equal(data, png) || ct != "image/png" {
		t.Fatalf("a file host's image: %d bytes, %q, %v", len(data), ct, err)
	}
	if files.sawToken() {
		t.Error("the bot's token was sent to a file host")
	}
	// A serviceUrl host gets the token; its redirect to a file host does not carry it on.
	data, _, err = c.Download(ctx, teamsSrv.URL+"/v3/attachments/1/views/original?to="+filesURL+"/x.png", 0)
	if err != nil || !bytes.Equal(data, png) {
		t.Errorf("redirect from Teams to a file host: %v", err)
	}
	if !teams.sawToken() {
		t.Error("the serviceUrl host did not get the bot's token")
	}
	if files.sawToken() {
		t.Error("the token went on to the file host with the redirect")
	}
	refused(c, teamsSrv.URL+"/a?to=https://evil.example/x.png", "redirect to a host on no list", notListed)
	refused(c, teamsSrv.URL+"/a?to=https://169.254.169.254/latest/meta-data/", "redirect to link-local", inside)
	refused(c, teamsSrv.URL+"/a?to=http://evil.example/x.png", "redirect to plain http", notHTTPS)
	refused(c, filesURL+"/loop", "a redirect loop", "redirects more than 3 times")
	refused(c, filesURL+"/big", "over the size cap (Content-Length)", "larger than 1 MB")
	refused(c, filesURL+"/big-chunked", "over the size cap (no Content-Length)", "larger than 1 MB")
	refused(c, "https://10.0.0.7:"+port+"/x.png", "private, even with the loopback opt-in", inside)
}
