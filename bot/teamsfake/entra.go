package teamsfake

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/wxteams/wxteams/bridge"
)

// Entra fakes the Microsoft identity platform for the bot's own credentials: the tenant's OpenID
// metadata and the v2.0 token endpoint (client credentials with a secret). azidentity reaches it
// through AZURE_AUTHORITY_HOST (or ClientOptions.Cloud) over TLS, with instance discovery off.
// Its Graph (graph.go) is served from the same host.
type Entra struct {
	URL      string // https://…, set once the TLS server runs
	TenantID string
	clock    bridge.Clock

	mu      sync.Mutex
	clients map[string]string // client id → secret
	tokens  map[string]issued
	// Requests counts token requests (azidentity should cache).
	Requests int
}

type issued struct {
	scope, clientID string
	expires         time.Time
}

// NewEntra returns a fake identity platform for one tenant.
func NewEntra(tenantID string, clock bridge.Clock) *Entra {
	return &Entra{TenantID: tenantID, clock: clock, clients: map[string]string{}, tokens: map[string]issued{}}
}

// AddClient registers an app (client id and secret).
func (e *Entra) AddClient(clientID, secret string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.clients[clientID] = secret
}

// Valid reports whether a token was issued for scope and has not expired.
func (e *Entra) Valid(token, scope string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.tokens[token]
	return ok && t.scope == scope && e.clock.Now().Before(t.expires)
}

// ExpireTokens makes every token issued so far invalid.
func (e *Entra) ExpireTokens() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tokens = map[string]issued{}
}

func (e *Entra) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		tenant := r.PathValue("tenant")
		base := e.URL + "/" + tenant
		writeJSON(w, http.StatusOK, map[string]any{
			"token_endpoint": base + "/oauth2/v2.0/token", "authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"issuer": e.URL + "/" + tenant + "/v2.0", "jwks_uri": base + "/discovery/v2.0/keys",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
			"tenant_region_scope":                   "EU",
		})
	})
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.Requests++
		e.mu.Unlock()
		if err := r.ParseForm(); err != nil {
			entraError(w, "invalid_request", "AADSTS900144: malformed request")
			return
		}
		if r.PathValue("tenant") != e.TenantID {
			entraError(w, "invalid_tenant", "AADSTS90002: Tenant '"+r.PathValue("tenant")+"' not found.")
			return
		}
		if r.Form.Get("grant_type") != "client_credentials" {
			entraError(w, "unsupported_grant_type", "AADSTS70003: grant type not supported")
			return
		}
		clientID, secret := r.Form.Get("client_id"), r.Form.Get("client_secret")
		if u, p, ok := r.BasicAuth(); ok {
			clientID, secret = u, p
		}
		e.mu.Lock()
		want, known := e.clients[clientID]
		e.mu.Unlock()
		switch {
		case !known:
			entraError(w, "unauthorized_client", "AADSTS700016: Application with identifier '"+clientID+"' was not found in the directory.")
			return
		case secret != want:
			entraError(w, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
			return
		}
		// MSAL adds "openid offline_access profile"; the resource is the ".default" scope.
		var scope string
		for _, s := range strings.Fields(r.Form.Get("scope")) {
			if strings.HasSuffix(s, "/.default") {
				scope = s
			}
		}
		if scope == "" {
			entraError(w, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.")
			return
		}
		token := randomHex(64)
		e.mu.Lock()
		e.tokens[token] = issued{scope: scope, clientID: clientID, expires: e.clock.Now().Add(time.Hour)}
		e.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})
	})
}

func entraError(w http.ResponseWriter, code, description string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"error": code, "error_description": description, "error_codes": []int{}})
}
