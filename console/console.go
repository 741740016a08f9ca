// Package console is the web console served at /: in the sandbox, a Teams pane, a WeChat phone
// pane, the live archive timeline and a clock to jump 24 h and 48 h; for administrators, the users
// (enable, disable, QR codes) and the firm's policy; for compliance officers, search, exports,
// verification and legal holds.
//
// The pages are plain HTML, CSS and JavaScript embedded in the binary; no build step. They never
// talk to the admin and compliance APIs directly: /console/api forwards to them in-process with a
// bearer token — the signed-in person's Entra ID token in real mode, a token the sandbox's own
// (fake) Entra ID issues in the sandbox — so every console action goes through the same token
// validation, role checks and archiving as an API call.
package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/wxteams/wxteams/manifest"
)

//go:embed assets
var assets embed.FS

// Sandbox is the fake world the sandbox console drives (cmd/wxteams implements it with the WeChat
// and Teams fakes). Every action goes through the product's public endpoints.
type Sandbox interface {
	State(ctx context.Context) (*SandboxState, error)
	TeamsPane(ctx context.Context, employee string) ([]PaneItem, error)
	TeamsSay(ctx context.Context, employee, text string) error
	TeamsClick(ctx context.Context, employee, activityID, verb string, data json.RawMessage) error
	WeChatPane(ctx context.Context, openID string) ([]PaneItem, error)
	WeChatNew(ctx context.Context) (string, error)
	WeChatScan(ctx context.Context, openID, employee string) error
	WeChatSay(ctx context.Context, openID, text string) error
	Advance(ctx context.Context, d time.Duration) error
	Timeline(ctx context.Context, afterID int64) ([]TimelineItem, error)
	// Token is a bearer token for the admin and compliance APIs with both roles.
	Token() string
}

// SandboxState is what the sandbox holds.
type SandboxState struct {
	Now       time.Time  `json:"now"`
	Jumped    string     `json:"jumped"` // how far the clock has been moved
	Employees []Employee `json:"employees"`
	Customers []Customer `json:"customers"`
}

// Employee is a Teams user of the sandbox tenant.
type Employee struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	// TeamsTrouble says, in words, why wxteams cannot reach the employee in Teams right now
	// (deliveries failing or being retried); empty when all is well.
	TeamsTrouble string `json:"teams_trouble,omitempty"`
}

// Customer is a WeChat user of the sandbox.
type Customer struct {
	OpenID string `json:"openid"`
	Name   string `json:"name"` // the one name wxteams gives them (bridge.Contact.DisplayName)
	Chat   string `json:"chat"` // the chat's status, "" when in none
}

// PaneItem is one bubble in a pane.
type PaneItem struct {
	At      time.Time `json:"at"`
	Mine    bool      `json:"mine"` // written by the pane's owner
	Text    string    `json:"text"`
	Image   string    `json:"image,omitempty"` // data: URL
	ID      string    `json:"id,omitempty"`    // the activity, for buttons
	Actions []Action  `json:"actions,omitempty"`
	Note    bool      `json:"note,omitempty"` // a notice card or auto-message
	// Failed marks what wxteams could not deliver to this pane (shown from the archive).
	Failed bool `json:"failed,omitempty"`
	// Fate is what became of a message the pane's owner wrote, as the archive tells it (sending,
	// queued, delivered, failed, unknown, cancelled, refused …); FateText says it in words.
	Fate     string `json:"fate,omitempty"`
	FateText string `json:"fate_text,omitempty"`
	// Author names the colleague who wrote a message of a team chat shown to this employee.
	Author string `json:"author,omitempty"`
}

// Action is a card button.
type Action struct {
	Title string          `json:"title"`
	Verb  string          `json:"verb"`
	Data  json.RawMessage `json:"data"`
}

// TimelineItem is an archived record, for the live timeline.
type TimelineItem struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Stream string    `json:"stream"`
	Seq    int64     `json:"seq"`
	Kind   string    `json:"kind"`
	Actor  string    `json:"actor"`
	// ActorName is who the actor is, by name; StreamName names whose stream it is in.
	ActorName  string `json:"actor_name"`
	StreamName string `json:"stream_name"`
	Text       string `json:"text,omitempty"`
	Detail     string `json:"detail,omitempty"`
	// MessageID is the message the record is or reports on; Receipt marks a report (queued,
	// delivered, failed …), whose State the timeline shows under the message.
	MessageID string `json:"message_id,omitempty"`
	Receipt   bool   `json:"receipt,omitempty"`
	State     string `json:"state,omitempty"`
}

// Config configures the console.
type Config struct {
	// API serves /admin/v1 and /compliance/v1 (the public router).
	API http.Handler
	// Sandbox is set in the sandbox; nil in real mode, where people sign in (Auth).
	Sandbox Sandbox
	Auth    *Auth
	// Policy returns the firm's policy as JSON, for the policy page.
	Policy func() any
	Log    *zap.Logger
}

// Console serves the pages and /console/api.
type Console struct {
	cfg Config
}

// New returns the console.
func New(cfg Config) (*Console, error) {
	if cfg.API == nil || (cfg.Sandbox == nil && cfg.Auth == nil) {
		return nil, errors.New("console: the API and either the sandbox or sign-in are required")
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Console{cfg: cfg}, nil
}

// Routes adds the console to r.
func (c *Console) Routes(r *mux.Router) {
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServer(http.FS(static))
	r.Handle("/", c.page("index.html")).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/favicon.ico", favicon).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix("/console/assets/").Handler(http.StripPrefix("/console/assets/", noDirListing(files))).Methods(http.MethodGet, http.MethodHead)
	api := r.PathPrefix("/console/api").Subrouter()
	api.Use(c.guard)
	api.HandleFunc("/whoami", c.whoami).Methods(http.MethodGet)
	api.HandleFunc("/policy", c.policy).Methods(http.MethodGet)
	api.PathPrefix("/admin/").HandlerFunc(c.forward("/console/api/admin/", "/admin/v1/"))
	api.PathPrefix("/compliance/").HandlerFunc(c.forward("/console/api/compliance/", "/compliance/v1/"))
	if c.cfg.Sandbox != nil {
		c.sandboxRoutes(api.PathPrefix("/sandbox").Subrouter())
	}
	if c.cfg.Auth != nil {
		r.HandleFunc("/console/login", c.cfg.Auth.login).Methods(http.MethodGet)
		r.HandleFunc("/console/callback", c.cfg.Auth.callback).Methods(http.MethodGet)
		r.HandleFunc("/console/logout", c.cfg.Auth.logout).Methods(http.MethodPost)
	}
}

// page serves an embedded page with a strict content security policy.
func (c *Console) page(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := assets.ReadFile("assets/" + name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		secureHeaders(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Vary", "Accept-Language")
		if lang := Language(r.Header.Get("Accept-Language")); lang != "en" {
			data = bytes.Replace(data, []byte(`<html lang="en">`), []byte(`<html lang="`+lang+`">`), 1)
		}
		_, _ = w.Write(data) // #nosec G705 -- an embedded page; lang is one of ours
	})
}

// Language is the console's language for an Accept-Language header: "zh-CN" when the browser
// prefers Chinese to English, else "en". (The page also reads navigator.language, and people can
// switch; their choice is kept in the browser.)
func Language(acceptLanguage string) string {
	best, bestQ := "en", -1.0
	for _, part := range strings.Split(acceptLanguage, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		tag = strings.ToLower(tag)
		var lang string
		switch {
		case tag == "zh" || strings.HasPrefix(tag, "zh-"):
			lang = "zh-CN"
		case tag == "en" || strings.HasPrefix(tag, "en-"):
			lang = "en"
		default:
			continue
		}
		if q > bestQ {
			best, bestQ = lang, q
		}
	}
	return best
}

// icon is the Teams app's colour icon, which browsers show for the console too (they read a PNG
// served as /favicon.ico).
var icon = sync.OnceValue(manifest.ColorIcon)

func favicon(w http.ResponseWriter, r *http.Request) {
	secureHeaders(w)
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	http.ServeContent(w, r, "favicon.png", time.Time{}, bytes.NewReader(icon()))
}

func secureHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func noDirListing(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || r.URL.Path == "" {
			http.NotFound(w, r)
			return
		}
		secureHeaders(w)
		w.Header().Set("Cache-Control", "public, max-age=300")
		h.ServeHTTP(w, r)
	})
}

// csrfHeader must accompany every /console/api request: browsers do not send custom headers
// cross-site without a CORS preflight, which the console never allows.
const csrfHeader = "X-Wxteams-Console"

// guard refuses requests without the console's header and, in real mode, without a session.
func (c *Console) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secureHeaders(w)
		if r.Header.Get(csrfHeader) != "1" {
			writeError(w, http.StatusForbidden, "console requests carry the "+csrfHeader+" header")
			return
		}
		if c.cfg.Sandbox == nil {
			if _, ok := c.cfg.Auth.session(r); !ok {
				writeError(w, http.StatusUnauthorized, "sign in first: /console/login")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// token is the bearer token console calls carry.
func (c *Console) token(r *http.Request) string {
	if c.cfg.Sandbox != nil {
		return c.cfg.Sandbox.Token()
	}
	s, _ := c.cfg.Auth.session(r)
	return s.Token
}

func (c *Console) whoami(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Sandbox != nil {
		writeJSON(w, http.StatusOK, map[string]any{"name": "Sandbox administrator", "sandbox": true})
		return
	}
	s, _ := c.cfg.Auth.session(r)
	writeJSON(w, http.StatusOK, map[string]any{"name": s.Name, "sandbox": false})
}

func (c *Console) policy(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Policy == nil {
		writeError(w, http.StatusNotFound, "no policy")
		return
	}
	writeJSON(w, http.StatusOK, c.cfg.Policy())
}

// forward sends a console request to the admin or compliance API in-process with the bearer token.
func (c *Console) forward(from, to string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		path := to + strings.TrimPrefix(r.URL.Path, from)
		body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		req, err := http.NewRequestWithContext(r.Context(), r.Method, path, bytes.NewReader(body)) // #nosec G704 -- served in-process by the API router below, never sent over the network
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		req.URL.RawQuery = r.URL.RawQuery
		req.Header.Set("Authorization", "Bearer "+c.token(r))
		req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
		req.RemoteAddr = r.RemoteAddr
		c.cfg.API.ServeHTTP(w, req)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
