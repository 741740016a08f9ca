package console

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"go.uber.org/zap"
)

// Sign-in in real mode: the OAuth 2.0 authorization code flow with Entra ID (MSAL Go, as a
// confidential client with the bot's own credential), with PKCE and a state bound to the browser.
// The access token — for the app's API, carrying the person's app roles — is kept in a session
// cookie sealed with AES-256-GCM (a key derived from the archive key, so every replica opens it),
// HttpOnly, SameSite=Strict, Secure over https. The admin and compliance APIs check it on every call.

// AuthConfig configures sign-in.
type AuthConfig struct {
	Authority   string // https://login.microsoftonline.com/<tenant> (AZURE_AUTHORITY_HOST + tenant)
	ClientID    string // the bot's app id
	Credential  confidential.Credential
	RedirectURL string   // WXTEAMS_PUBLIC_URL + /console/callback
	Scopes      []string // [api://<client id>/.default]
	CookieKey   []byte   // 32 bytes
	HTTPClient  *http.Client
	// InstanceDiscovery stays on for Microsoft's clouds; off for any other authority.
	InstanceDiscovery bool
	Now               func() time.Time
	Log               *zap.Logger
}

// Auth signs people in.
type Auth struct {
	cfg    AuthConfig
	client confidential.Client
	aead   cipher.AEAD
	secure bool
}

// Session is a signed-in person.
type Session struct {
	Name    string    `json:"name"`
	Token   string    `json:"token"`
	Expires time.Time `json:"exp"`
}

// NewAuth returns sign-in for the console.
func NewAuth(cfg AuthConfig) (*Auth, error) {
	if cfg.Authority == "" || cfg.ClientID == "" || cfg.RedirectURL == "" || len(cfg.CookieKey) != 32 {
		return nil, errors.New("console sign-in needs the authority, the app id, WXTEAMS_PUBLIC_URL and the archive key")
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{"api://" + cfg.ClientID + "/.default"}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	opts := []confidential.Option{confidential.WithInstanceDiscovery(cfg.InstanceDiscovery)}
	if cfg.HTTPClient != nil {
		opts = append(opts, confidential.WithHTTPClient(cfg.HTTPClient))
	}
	client, err := confidential.New(cfg.Authority, cfg.ClientID, cfg.Credential, opts...)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("wxteams console session\x00"), cfg.CookieKey...))
	block, err := aes.NewCipher(sum[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Auth{cfg: cfg, client: client, aead: aead, secure: strings.HasPrefix(cfg.RedirectURL, "https://")}, nil
}

const (
	sessionCookie = "wxteams_session"
	loginCookie   = "wxteams_login"
)

// login starts the flow: a state and a PKCE verifier go into a short-lived sealed cookie.
func (a *Auth) login(w http.ResponseWriter, r *http.Request) {
	state, verifier := randomToken(), randomToken()
	authURL, err := a.client.AuthCodeURL(r.Context(), a.cfg.ClientID, a.cfg.RedirectURL, a.cfg.Scopes)
	if err != nil {
		a.cfg.Log.Error("sign-in: authorize URL", zap.Error(err))
		http.Error(w, "sign-in is not available: "+err.Error(), http.StatusBadGateway)
		return
	}
	u, err := url.Parse(authURL)
	if err != nil {
		http.Error(w, "sign-in is not available", http.StatusBadGateway)
		return
	}
	challenge := sha256.Sum256([]byte(verifier))
	q := u.Query()
	q.Set("state", state)
	q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(challenge[:]))
	q.Set("code_challenge_method", "S256")
	u.RawQuery = q.Encode()
	a.setCookie(w, loginCookie, a.seal(map[string]any{"state": state, "verifier": verifier, "exp": a.cfg.Now().Add(10 * time.Minute)}), 600, http.SameSiteLaxMode)
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// callback finishes the flow: the state must match, the code is exchanged with the verifier.
func (a *Auth) callback(w http.ResponseWriter, r *http.Request) {
	var pending struct {
		State    string    `json:"state"`
		Verifier string    `json:"verifier"`
		Exp      time.Time `json:"exp"`
	}
	c, err := r.Cookie(loginCookie)
	if err != nil || !a.open(c.Value, &pending) || pending.Exp.Before(a.cfg.Now()) || r.URL.Query().Get("state") != pending.State {
		http.Error(w, "this sign-in was not started here or took too long; start again at /console/login", http.StatusBadRequest)
		return
	}
	if e := r.URL.Query().Get("error"); e != "" {
		http.Error(w, "Entra ID refused the sign-in: "+e+": "+r.URL.Query().Get("error_description"), http.StatusForbidden)
		return
	}
	res, err := a.client.AcquireTokenByAuthCode(r.Context(), r.URL.Query().Get("code"), a.cfg.RedirectURL, a.cfg.Scopes, confidential.WithChallenge(pending.Verifier))
	if err != nil {
		a.cfg.Log.Warn("sign-in: code exchange failed", zap.Error(err))
		http.Error(w, "sign-in failed; start again at /console/login", http.StatusBadGateway)
		return
	}
	name := res.IDToken.Name
	if name == "" {
		name = res.IDToken.PreferredUsername
	}
	if name == "" {
		name = res.Account.PreferredUsername
	}
	a.setCookie(w, loginCookie, "", -1, http.SameSiteLaxMode)
	a.setCookie(w, sessionCookie, a.seal(Session{Name: name, Token: res.AccessToken, Expires: res.ExpiresOn}), int(time.Until(res.ExpiresOn).Seconds()), http.SameSiteStrictMode)
	http.Redirect(w, r, "/", http.StatusFound)
}

func (a *Auth) logout(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(csrfHeader) != "1" {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	a.setCookie(w, sessionCookie, "", -1, http.SameSiteStrictMode)
	w.WriteHeader(http.StatusNoContent)
}

// session returns the signed-in person, if any.
func (a *Auth) session(r *http.Request) (Session, bool) {
	var s Session
	c, err := r.Cookie(sessionCookie)
	if err != nil || !a.open(c.Value, &s) || !s.Expires.After(a.cfg.Now()) {
		return Session{}, false
	}
	return s, true
}

func (a *Auth) setCookie(w http.ResponseWriter, name, value string, maxAge int, sameSite http.SameSite) {
	if maxAge == 0 {
		maxAge = -1
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: a.secure, SameSite: sameSite}) // #nosec G124 -- Secure whenever the redirect URL is https (plain http only on a developer's loopback)
}

func (a *Auth) seal(v any) string {
	plain, _ := json.Marshal(v)
	nonce := make([]byte, a.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(a.aead.Seal(nonce, nonce, plain, []byte("wxteams console")))
}

func (a *Auth) open(value string, v any) bool {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < a.aead.NonceSize() {
		return false
	}
	n := a.aead.NonceSize()
	plain, err := a.aead.Open(nil, raw[:n], raw[n:], []byte("wxteams console"))
	return err == nil && json.Unmarshal(plain, v) == nil
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
