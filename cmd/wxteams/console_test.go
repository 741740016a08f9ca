package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/compliance/api"
)

// Real mode: the console signs people in with Entra ID (authorization code flow with PKCE, through
// MSAL against the fake Entra ID), keeps their token in a sealed cookie, and forwards to the admin
// and compliance APIs with it, so their app roles decide what they may do.
func TestConsoleSignInRealMode(t *testing.T) {
	m := newMicrosoft(t)
	m.env["WXTEAMS_PUBLIC_URL"] = "https://wxteams.acme.example"
	m.entra.SignIn(m.admins, "casey@acme.example", "oid-casey", "Casey Compliance", bot.AdminRole, api.Role)
	s := m.start(t)
	base := "http://" + s.publicAddr
	jar, _ := cookiejar.New(nil)
	noFollow := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	msClient := &http.Client{Transport: m.transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	get := func(c *http.Client, u string, headers ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	// Before signing in the console API refuses, and a request without the console header is
	// refused whatever the cookie (no cross-site requests).
	if resp := get(noFollow, base+"/console/api/whoami", "X-Wxteams-Console", "1"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("whoami before sign-in = %d", resp.StatusCode)
	}
	if resp := get(noFollow, base+"/"); resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("the page = %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}

	// Sign in: wxteams sends the browser to Entra ID, which sends it back with a code.
	login := get(noFollow, base+"/console/login")
	authorize, err := url.Parse(login.Header.Get("Location"))
	if login.StatusCode != http.StatusFound || err != nil || authorize.Query().Get("code_challenge") == "" || authorize.Query().Get("state") == "" {
		t.Fatalf("login = %d to %q", login.StatusCode, login.Header.Get("Location"))
	}
	back := get(msClient, authorize.String())
	callback, err := url.Parse(back.Header.Get("Location"))
	if back.StatusCode != http.StatusFound || err != nil || callback.Query().Get("code") == "" {
		body, _ := io.ReadAll(back.Body)
		t.Fatalf("authorize = %d to %q: %s", back.StatusCode, back.Header.Get("Location"), body)
	}
	if callback.Host != "wxteams.acme.example" || callback.Path != "/console/callback" {
		t.Errorf("redirect URI = %s", callback)
	}
	// A forged state is refused.
	forged := *callback
	q := forged.Query()
	q.Set("state", "forged")
	forged.RawQuery = q.Encode()
	if resp := get(noFollow, base+forged.RequestURI()); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("callback with a forged state = %d", resp.StatusCode)
	}
	done := get(noFollow, base+callback.RequestURI())
	if done.StatusCode != http.StatusFound || done.Header.Get("Location") != "/" {
		body, _ := io.ReadAll(done.Body)
		t.Fatalf("callback = %d to %q: %s", done.StatusCode, done.Header.Get("Location"), body)
	}
	for _, c := range done.Cookies() {
		if c.Name == "wxteams_session" && (!c.HttpOnly || c.SameSite != http.SameSiteStrictMode || strings.Contains(c.Value, ".")) {
			t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, sealed", c)
		}
	}

	// Signed in: whoami names her, and the APIs answer with her roles.
	who := get(noFollow, base+"/console/api/whoami", "X-Wxteams-Console", "1")
	var me struct{ Name string }
	if err := json.NewDecoder(who.Body).Decode(&me); err != nil || who.StatusCode != 200 || me.Name != "Casey Compliance" {
		t.Errorf("whoami = %d %+v %v", who.StatusCode, me, err)
	}
	if resp := get(noFollow, base+"/console/api/admin/users", "X-Wxteams-Console", "1"); resp.StatusCode != http.StatusOK {
		t.Errorf("users through the console = %d", resp.StatusCode)
	}
	if resp := get(noFollow, base+"/console/api/compliance/holds", "X-Wxteams-Console", "1"); resp.StatusCode != http.StatusOK {
		t.Errorf("holds through the console = %d", resp.StatusCode)
	}
	if resp := get(noFollow, base+"/console/api/admin/users"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a console call without the console header = %d; want 403", resp.StatusCode)
	}
	// The sandbox's routes do not exist in real mode.
	if resp := get(noFollow, base+"/console/api/sandbox/state", "X-Wxteams-Console", "1"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("sandbox state in real mode = %d", resp.StatusCode)
	}
}
