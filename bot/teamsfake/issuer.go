// Package teamsfake fakes the Microsoft side of the bot for tests and the sandbox: the Bot
// Connector service (it records what the bot sends, returns ids, and enforces Teams' per-thread
// limits with 429 and Retry-After, and the message size limit with 413), an OpenID/JWKS issuer that
// mints tokens shaped like the Bot Connector's and Entra ID's, an Entra token endpoint for
// azidentity (over TLS, as MSAL requires), and Graph's installedApps API. When an app is installed
// through Graph it sends the bot the conversationUpdate and installationUpdate Teams would.
//
// The real token validator, connector client and azidentity run unchanged against it.
package teamsfake

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxteams/wxteams/bridge"
)

// BotFrameworkIssuer is the issuer of Bot Connector tokens.
const BotFrameworkIssuer = "https://api.botframework.com"

// Issuer is an OpenID provider: metadata at /.well-known/openid-configuration (and the Bot
// Framework's /v1/.well-known/openidconfiguration), keys at /keys, tokens signed with RS256.
type Issuer struct {
	Name  string // the "iss" of its tokens
	clock bridge.Clock
	// URL is where it is served; set by the caller once the server runs.
	URL string

	mu      sync.Mutex
	keys    []*signingKey
	current *signingKey
}

type signingKey struct {
	kid          string
	priv         *rsa.PrivateKey
	endorsements []string
}

// NewIssuer returns an issuer with one key endorsed for the given channels (Bot Connector keys are
// endorsed for "msteams"; Entra keys have none).
func NewIssuer(name string, clock bridge.Clock, endorsements ...string) *Issuer {
	i := &Issuer{Name: name, clock: clock}
	i.AddKey(endorsements...)
	return i
}

// AddKey adds a new signing key, used for tokens from now on (a key rotation); it returns its kid.
func (i *Issuer) AddKey(endorsements ...string) string {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	k := &signingKey{kid: base64.RawURLEncoding.EncodeToString(b[:]), priv: priv, endorsements: endorsements}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = append(i.keys, k)
	i.current = k
	return k.kid
}

// Handler serves the metadata and the key set.
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	meta := func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer": i.Name, "jwks_uri": i.URL + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"},
			"token_endpoint_auth_methods_supported": []string{"private_key_jwt"},
		})
	}
	mux.HandleFunc("/v1/.well-known/openidconfiguration", meta)
	mux.HandleFunc("/.well-known/openid-configuration", meta)
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		i.mu.Lock()
		defer i.mu.Unlock()
		var keys []map[string]any
		for _, k := range i.keys {
			key := map[string]any{
				"kty": "RSA", "use": "sig", "kid": k.kid,
				"n": base64.RawURLEncoding.EncodeToString(k.priv.N.Bytes()),
				"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.priv.E)).Bytes()),
			}
			if k.endorsements != nil {
				key["endorsements"] = k.endorsements
			}
			keys = append(keys, key)
		}
		writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
	})
	return mux
}

// Sign signs claims with the current key (RS256).
func (i *Issuer) Sign(claims jwt.MapClaims) string {
	i.mu.Lock()
	k := i.current
	i.mu.Unlock()
	return i.SignWith(k.kid, jwt.SigningMethodRS256, claims)
}

// SignWith signs claims with a given key and method, for tests of what must be refused. With
// HS256 the key's public modulus is the HMAC secret (the classic algorithm-confusion attack); with
// "none" the token is unsigned.
func (i *Issuer) SignWith(kid string, method jwt.SigningMethod, claims jwt.MapClaims) string {
	i.mu.Lock()
	var key *signingKey
	for _, k := range i.keys {
		if k.kid == kid {
			key = k
		}
	}
	i.mu.Unlock()
	t := jwt.NewWithClaims(method, claims)
	t.Header["kid"] = kid
	var signingKey any
	switch method {
	case jwt.SigningMethodNone:
		signingKey = jwt.UnsafeAllowNoneSignatureType
	case jwt.SigningMethodHS256:
		signingKey = key.priv.N.Bytes()
	default:
		if key == nil { // an unknown kid: sign with a key nobody published
			priv, _ := rsa.GenerateKey(rand.Reader, 2048)
			signingKey = priv
		} else {
			signingKey = key.priv
		}
	}
	s, err := t.SignedString(signingKey)
	if err != nil {
		panic(err)
	}
	return s
}

// CurrentKid is the kid new tokens are signed with.
func (i *Issuer) CurrentKid() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.current.kid
}

// BotClaims are the claims of a Bot Connector token for an activity to appID from serviceURL.
func (i *Issuer) BotClaims(appID, serviceURL string) jwt.MapClaims {
	now := i.clock.Now()
	return jwt.MapClaims{
		"iss": i.Name, "aud": appID, "serviceurl": serviceURL,
		"nbf": now.Add(-5 * time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(), "iat": now.Add(-5 * time.Minute).Unix(),
	}
}

// BotToken is a Bot Connector token for an activity to appID from serviceURL.
func (i *Issuer) BotToken(appID, serviceURL string) string {
	return i.Sign(i.BotClaims(appID, serviceURL))
}

// UserToken is an Entra ID v2 access token for a person with app roles.
func (i *Issuer) UserToken(audience, tenantID, upn, objectID string, roles ...string) string {
	now := i.clock.Now()
	return i.Sign(jwt.MapClaims{
		"iss": i.Name, "aud": audience, "tid": tenantID, "oid": objectID, "preferred_username": upn, "upn": upn,
		"roles": roles, "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "ver": "2.0",
	})
}

// EntraAppToken is an access token Entra ID issues to a calling application (client credentials)
// for the bot's app: what Microsoft's SDKs accept on inbound activities besides Bot Connector
// tokens. version 1 has the v1 shape (issuer https://sts.windows.net/{tenant}/, the caller in
// "appid"), version 2 the v2 shape (issuer https://login.microsoftonline.com/{tenant}/v2.0, the
// caller in "azp"). It is signed with this issuer's current key: serve the tenant's keys from it.
func (i *Issuer) EntraAppToken(version int, tenantID, audience, callerAppID string) string {
	return i.Sign(i.EntraAppClaims(version, tenantID, audience, callerAppID))
}

// EntraAppClaims are the claims of EntraAppToken, for tests that change one.
func (i *Issuer) EntraAppClaims(version int, tenantID, audience, callerAppID string) jwt.MapClaims {
	now := i.clock.Now()
	sp := "sp-" + callerAppID // the caller's service principal in the tenant
	c := jwt.MapClaims{
		"aud": audience, "tid": tenantID, "oid": sp, "sub": sp, "aio": randomHex(24), "rh": randomHex(16), "uti": randomHex(22),
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	if version == 1 {
		c["iss"], c["ver"], c["appid"], c["appidacr"] = "https://sts.windows.net/"+tenantID+"/", "1.0", callerAppID, "1"
		c["idp"] = c["iss"]
	} else {
		c["iss"], c["ver"], c["azp"], c["azpacr"] = "https://login.microsoftonline.com/"+tenantID+"/v2.0", "2.0", callerAppID, "1"
	}
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
