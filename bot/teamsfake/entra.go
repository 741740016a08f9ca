package teamsfake

import (
	"bytes"
	"crypto/sha1" // #nosec G505 -- the x5t thumbprint is SHA-1 by RFC 7515
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Entra fakes the Microsoft identity platform for the bot's own credentials: the tenant's OpenID
// metadata and the v2.0 token endpoint for client credentials — with a secret, a certificate (a
// client assertion signed with the certificate's key, as MSAL makes it), or a federated token (a
// workload identity's). azidentity reaches it through AZURE_AUTHORITY_HOST (or
// ClientOptions.Cloud) over TLS, with instance discovery off. Its Graph (graph.go) is served from
// the same host.
//
// Like Microsoft's, it runs on real time: its access tokens, authorization codes and the client
// assertions it accepts expire by the wall clock, which is also what azidentity and MSAL cache
// tokens by. It takes no virtual clock, so moving one (the sandbox's "Jump 48 h", a test's fake
// clock) never makes it refuse a token the bot still holds as valid. JWTs it hands out for
// people are made by an Issuer, on the Issuer's clock, which is the one the API checking them
// uses.
type Entra struct {
	URL      string // https://…, set once the TLS server runs
	TenantID string

	mu        sync.Mutex
	clients   map[string]string // client id → secret
	certs     map[string]*x509.Certificate
	federated map[string]string // client id → the federated token it presents
	tokens    map[string]issued
	// Requests counts token requests (azidentity should cache).
	Requests int
	user     *signIn
	codes    map[string]pendingCode
}

type issued struct {
	scope, clientID string
	expires         time.Time
}

// NewEntra returns a fake identity platform for one tenant.
func NewEntra(tenantID string) *Entra {
	return &Entra{TenantID: tenantID, clients: map[string]string{}, certs: map[string]*x509.Certificate{},
		federated: map[string]string{}, tokens: map[string]issued{}}
}

// AddCertificate registers an app that authenticates with a certificate.
func (e *Entra) AddCertificate(clientID string, cert *x509.Certificate) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.certs[clientID] = cert
}

// AddFederated registers an app whose workload identity presents token (the projected service
// account token a workload identity reads from AZURE_FEDERATED_TOKEN_FILE).
func (e *Entra) AddFederated(clientID, token string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.federated[clientID] = token
}

// anyBase64 decodes standard or URL base64, padded or not; nil if it is neither.
func anyBase64(s string) []byte {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b
		}
	}
	return nil
}

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" // #nosec G101 -- an OAuth URN, not a credential

// checkAssertion verifies a client assertion: a federated token as registered, or a JWT signed
// with the client's certificate key, naming the client as issuer and subject and this token
// endpoint as audience, unexpired, with the certificate's thumbprint in its header.
func (e *Entra) checkAssertion(clientID, assertion, endpoint string) (ok bool, description string) {
	e.mu.Lock()
	cert, fed := e.certs[clientID], e.federated[clientID]
	e.mu.Unlock()
	if fed != "" {
		if assertion != fed {
			return false, "AADSTS700213: No matching federated identity record found for presented assertion."
		}
		return true, ""
	}
	if cert == nil {
		return false, "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application."
	}
	token, err := jwt.Parse(assertion, func(t *jwt.Token) (any, error) {
		sum1, sum256 := sha1.Sum(cert.Raw), sha256.Sum256(cert.Raw) // #nosec G401 -- the x5t thumbprint is SHA-1 by RFC 7515
		// RFC 7515 says base64url; MSAL writes standard base64 with padding, which Entra takes.
		x5t, _ := t.Header["x5t"].(string)
		x5tS256, _ := t.Header["x5t#S256"].(string)
		if !bytes.Equal(anyBase64(x5t), sum1[:]) && !bytes.Equal(anyBase64(x5tS256), sum256[:]) {
			return nil, errors.New("thumbprint")
		}
		return cert.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256", "PS256"}), jwt.WithAudience(endpoint), jwt.WithIssuer(clientID), jwt.WithSubject(clientID),
		jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Minute))
	if err != nil || !token.Valid {
		return false, "AADSTS700027: Client assertion failed signature validation."
	}
	return true, ""
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
	return ok && t.scope == scope && time.Now().Before(t.expires)
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
	mux.HandleFunc("GET /{tenant}/oauth2/v2.0/authorize", e.authorize)
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
		grant := r.Form.Get("grant_type")
		if grant != "client_credentials" && grant != "authorization_code" {
			entraError(w, "unsupported_grant_type", "AADSTS70003: grant type not supported")
			return
		}
		clientID, secret := r.Form.Get("client_id"), r.Form.Get("client_secret")
		if u, p, ok := r.BasicAuth(); ok {
			clientID, secret = u, p
		}
		e.mu.Lock()
		want, known := e.clients[clientID]
		_, hasCert := e.certs[clientID]
		_, hasFed := e.federated[clientID]
		e.mu.Unlock()
		switch {
		case r.Form.Get("client_assertion_type") == jwtBearer && (hasCert || hasFed):
			if ok, why := e.checkAssertion(clientID, r.Form.Get("client_assertion"), e.URL+r.URL.Path); !ok {
				entraError(w, "invalid_client", why)
				return
			}
		case !known:
			entraError(w, "unauthorized_client", "AADSTS700016: Application with identifier '"+clientID+"' was not found in the directory.")
			return
		case secret != want:
			entraError(w, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
			return
		}
		if grant == "authorization_code" {
			e.redeem(w, r, clientID)
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
		e.tokens[token] = issued{scope: scope, clientID: clientID, expires: time.Now().Add(time.Hour)}
		e.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})
	})
}

// signIn is who signs in at the authorize endpoint: a fake has no login page.
type signIn struct {
	issuer         *Issuer
	upn, oid, name string
	roles          []string
}

// pendingCode is an authorization code not yet redeemed.
type pendingCode struct {
	clientID, redirect, challenge, scope string
	who                                  signIn
	expires                              time.Time
}

// SignIn makes the authorize endpoint sign in this person (as if they typed their password and
// consented), with the app roles they hold; their tokens are signed by issuer — the tenant's v2.0
// issuer the APIs trust.
func (e *Entra) SignIn(issuer *Issuer, upn, objectID, name string, roles ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.user = &signIn{issuer: issuer, upn: upn, oid: objectID, name: name, roles: roles}
}

// authorize is the authorization endpoint of the code flow: it checks the request as Entra does
// and redirects back with a code (or an error).
func (e *Entra) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	e.mu.Lock()
	_, known := e.clients[q.Get("client_id")]
	_, hasCert := e.certs[q.Get("client_id")]
	who := e.user
	e.mu.Unlock()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	switch {
	case r.PathValue("tenant") != e.TenantID:
		http.Error(w, "AADSTS90002: Tenant not found.", http.StatusBadRequest)
		return
	case !known && !hasCert:
		http.Error(w, "AADSTS700016: Application not found in the directory.", http.StatusBadRequest)
		return
	case err != nil || redirect.Scheme == "" || redirect.Host == "":
		http.Error(w, "AADSTS50011: The redirect URI specified in the request does not match the redirect URIs configured for the application.", http.StatusBadRequest)
		return
	}
	back := redirect.Query()
	back.Set("state", q.Get("state"))
	switch {
	case q.Get("response_type") != "code":
		back.Set("error", "unsupported_response_type")
	case who == nil:
		back.Set("error", "access_denied")
		back.Set("error_description", "AADSTS65004: User declined to consent to access the app.")
	case q.Get("code_challenge") != "" && q.Get("code_challenge_method") != "S256":
		back.Set("error", "invalid_request")
		back.Set("error_description", "AADSTS501491: Invalid code_challenge_method.")
	default:
		code := randomHex(48)
		e.mu.Lock()
		if e.codes == nil {
			e.codes = map[string]pendingCode{}
		}
		e.codes[code] = pendingCode{clientID: q.Get("client_id"), redirect: q.Get("redirect_uri"), challenge: q.Get("code_challenge"),
			scope: q.Get("scope"), who: *who, expires: time.Now().Add(10 * time.Minute)}
		e.mu.Unlock()
		back.Set("code", code)
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound) // #nosec G710 -- the fake Entra, on loopback in tests and the sandbox
}

// redeem answers the token request of the code flow: the code once, for the client and redirect
// URI it was issued to, with the PKCE verifier when a challenge was given.
func (e *Entra) redeem(w http.ResponseWriter, r *http.Request, clientID string) {
	code := r.Form.Get("code")
	e.mu.Lock()
	p, ok := e.codes[code]
	delete(e.codes, code)
	e.mu.Unlock()
	verifier := sha256.Sum256([]byte(r.Form.Get("code_verifier")))
	switch {
	case !ok || p.expires.Before(time.Now()):
		entraError(w, "invalid_grant", "AADSTS70008: The provided authorization code or refresh token has expired or has already been used.")
		return
	case p.clientID != clientID:
		entraError(w, "invalid_grant", "AADSTS70000: The provided authorization code was issued to another client.")
		return
	case p.redirect != r.Form.Get("redirect_uri"):
		entraError(w, "invalid_grant", "AADSTS50148: The redirect_uri does not match the one the code was issued for.")
		return
	case p.challenge != "" && base64.RawURLEncoding.EncodeToString(verifier[:]) != p.challenge:
		entraError(w, "invalid_grant", "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.")
		return
	}
	audience := clientID
	for _, sc := range strings.Fields(p.scope) {
		if res, ok := strings.CutSuffix(sc, "/.default"); ok {
			audience = res
		}
	}
	who := p.who
	now := who.issuer.clock.Now()
	access := who.issuer.UserToken(audience, e.TenantID, who.upn, who.oid, who.roles...)
	id := who.issuer.Sign(jwt.MapClaims{"iss": who.issuer.Name, "aud": clientID, "sub": who.oid, "oid": who.oid, "tid": e.TenantID,
		"name": who.name, "preferred_username": who.upn, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "ver": "2.0"})
	info, _ := json.Marshal(map[string]string{"uid": who.oid, "utid": e.TenantID})
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "scope": p.scope,
		"access_token": access, "id_token": id, "client_info": base64.RawURLEncoding.EncodeToString(info)})
}

func entraError(w http.ResponseWriter, code, description string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"error": code, "error_description": description, "error_codes": []int{}})
}
