package bot

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxteams/wxteams/bridge"
)

// This file validates the bearer tokens the bot receives: the Bot Connector's on /api/messages
// (teams-bot-facts §2), and Entra ID's on the admin and compliance APIs. Keys come from the
// issuer's OpenID metadata; only RS256 is accepted; the clock skew allowed is 5 minutes.

// BotFrameworkIssuer is the "iss" of the Bot Connector's tokens (teams-bot-facts §2).
const BotFrameworkIssuer = "https://api.botframework.com"

// ErrUnauthorized wraps every reason a token is refused.
var ErrUnauthorized = errors.New("unauthorized")

func unauthorized(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnauthorized, fmt.Sprintf(format, args...))
}

// Validator checks tokens from one issuer.
type Validator struct {
	metadataURL string
	// issuer is required in "iss"; empty means the issuer the metadata names.
	issuer    string
	audiences []string
	http      *http.Client
	clock     bridge.Clock
	// Keys are cached this long; an unknown kid refreshes them at most once per refreshGap.
	maxAge     time.Duration
	refreshGap time.Duration

	mu         sync.Mutex
	keys       map[string]*jwk
	fetched    time.Time
	kidRefresh time.Time // the last refresh an unknown kid caused
	metaIssuer string
}

// ValidatorConfig configures a Validator.
type ValidatorConfig struct {
	MetadataURL string   // the OpenID configuration document
	Issuer      string   // required issuer; empty = the metadata's
	Audiences   []string // accepted "aud" values
	HTTP        *http.Client
	Clock       bridge.Clock
	MaxAge      time.Duration // [24 h]
	RefreshGap  time.Duration // [5 min]
}

// NewValidator returns a validator; keys are fetched on first use.
func NewValidator(cfg ValidatorConfig) (*Validator, error) {
	if cfg.MetadataURL == "" || len(cfg.Audiences) == 0 || cfg.Clock == nil {
		return nil, errors.New("bot: a token validator needs the metadata URL, audiences and a clock")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 24 * time.Hour
	}
	if cfg.RefreshGap <= 0 {
		cfg.RefreshGap = 5 * time.Minute
	}
	return &Validator{metadataURL: cfg.MetadataURL, issuer: cfg.Issuer, audiences: cfg.Audiences, http: cfg.HTTP,
		clock: cfg.Clock, maxAge: cfg.MaxAge, refreshGap: cfg.RefreshGap}, nil
}

// jwk is a signing key with the Bot Framework's endorsements (the channels it may sign for).
type jwk struct {
	Kty          string   `json:"kty"`
	Kid          string   `json:"kid"`
	N            string   `json:"n"`
	E            string   `json:"e"`
	Endorsements []string `json:"endorsements"`
	pub          *rsa.PublicKey
}

// Claims are the claims the bridge reads.
type Claims struct {
	jwt.RegisteredClaims
	ServiceURL string   `json:"serviceurl"`
	TenantID   string   `json:"tid"`
	Roles      []string `json:"roles"`
	ObjectID   string   `json:"oid"`
	UPN        string   `json:"upn"`
	Username   string   `json:"preferred_username"`
	AppID      string   `json:"appid"`
	// endorsements of the key that signed the token.
	endorsements []string
}

// Who names the person or app a token stands for, for the archive.
func (c *Claims) Who() string {
	for _, s := range []string{c.UPN, c.Username, c.ObjectID, c.Subject} {
		if s != "" {
			return s
		}
	}
	return "unknown"
}

// Validate checks "Authorization: Bearer <jwt>" and returns its claims.
func (v *Validator) Validate(ctx context.Context, authorization string) (*Claims, error) {
	scheme, raw, ok := strings.Cut(authorization, " ")
	if !ok || scheme != "Bearer" || raw == "" || strings.Contains(raw, " ") {
		return nil, unauthorized("the Authorization header is not \"Bearer <token>\"")
	}
	issuer, err := v.expectedIssuer(ctx)
	if err != nil {
		return nil, err
	}
	claims := &Claims{}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer(issuer),
		jwt.WithLeeway(5*time.Minute),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(v.clock.Now),
	)
	_, err = parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		key, err := v.key(ctx, kid)
		if err != nil {
			return nil, err
		}
		claims.endorsements = key.Endorsements
		return key.pub, nil
	})
	if err != nil {
		return nil, unauthorized("%v", err)
	}
	aud, _ := claims.GetAudience()
	if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(v.audiences, a) }) {
		return nil, unauthorized("the token is for %v, not this bot", aud)
	}
	return claims, nil
}

// Authorize checks a request's Entra ID bearer token and that it carries role. It returns the
// actor to archive (prefix + who the token names), or the HTTP status to answer (401 for a bad
// token, 403 for a missing role — with the actor, since the token is valid) and why.
func (v *Validator) Authorize(r *http.Request, role, prefix string) (actor string, status int, err error) {
	claims, err := v.Validate(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		return "", http.StatusUnauthorized, err
	}
	if !slices.Contains(claims.Roles, role) {
		return prefix + claims.Who(), http.StatusForbidden, fmt.Errorf("the token lacks the app role %s", role)
	}
	return prefix + claims.Who(), http.StatusOK, nil
}

// ValidateActivity checks a Bot Connector token for an activity: Validate, plus the key's
// endorsement of the activity's channel and the serviceurl claim equal to its serviceUrl.
func (v *Validator) ValidateActivity(ctx context.Context, authorization string, a *Activity) (*Claims, error) {
	claims, err := v.Validate(ctx, authorization)
	if err != nil {
		return nil, err
	}
	if a.ChannelID == "" || !slices.Contains(claims.endorsements, a.ChannelID) {
		return nil, unauthorized("the signing key is not endorsed for channel %q", a.ChannelID)
	}
	if claims.ServiceURL == "" {
		return nil, unauthorized("the token has no serviceurl claim")
	}
	if !sameServiceURL(claims.ServiceURL, a.ServiceURL) {
		return nil, unauthorized("the token's serviceurl is not the activity's serviceUrl")
	}
	return claims, nil
}

func sameServiceURL(a, b string) bool {
	return strings.EqualFold(strings.TrimRight(a, "/"), strings.TrimRight(b, "/"))
}

// expectedIssuer is the configured issuer, else the one the metadata names.
func (v *Validator) expectedIssuer(ctx context.Context) (string, error) {
	if v.issuer != "" {
		return v.issuer, nil
	}
	if _, err := v.key(ctx, ""); err != nil && !errors.Is(err, errUnknownKid) {
		return "", err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.metaIssuer == "" {
		return "", unauthorized("the OpenID metadata names no issuer")
	}
	return v.metaIssuer, nil
}

var errUnknownKid = errors.New("unknown signing key")

// key returns the signing key kid, fetching the key set when it is old, or — at most once per
// refreshGap — when kid is unknown (the issuer rotated its keys).
func (v *Validator) key(ctx context.Context, kid string) (*jwk, error) {
	v.mu.Lock()
	now := v.clock.Now()
	stale := v.keys == nil || now.Sub(v.fetched) > v.maxAge
	k, known := v.keys[kid]
	mayRefresh := v.kidRefresh.IsZero() || now.Sub(v.kidRefresh) >= v.refreshGap
	if !stale && !known && kid != "" && mayRefresh {
		v.kidRefresh = now
	}
	v.mu.Unlock()
	switch {
	case !stale && known:
		return k, nil
	case !stale && kid == "":
		return nil, fmt.Errorf("%w: the token names no key (kid)", errUnknownKid)
	}
	if stale || mayRefresh {
		if err := v.refresh(ctx); err != nil {
			if stale && v.keys == nil {
				return nil, unauthorized("cannot load the signing keys: %v", err)
			}
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if k, ok := v.keys[kid]; ok {
		return k, nil
	}
	if kid == "" {
		return nil, errUnknownKid
	}
	return nil, fmt.Errorf("%w %q", errUnknownKid, kid)
}

// refresh fetches the OpenID metadata and its key set.
func (v *Validator) refresh(ctx context.Context) error {
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := v.getJSON(ctx, v.metadataURL, &meta); err != nil {
		return fmt.Errorf("OpenID metadata: %w", err)
	}
	if meta.JWKSURI == "" {
		return errors.New("OpenID metadata has no jwks_uri")
	}
	var set struct {
		Keys []*jwk `json:"keys"`
	}
	if err := v.getJSON(ctx, meta.JWKSURI, &set); err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	keys := map[string]*jwk{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" || k.N == "" || k.E == "" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.N, "="))
		e, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.E, "="))
		if err1 != nil || err2 != nil || len(e) > 4 {
			continue
		}
		k.pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		keys[k.Kid] = k
	}
	v.mu.Lock()
	v.keys, v.fetched, v.metaIssuer = keys, v.clock.Now(), meta.Issuer
	v.mu.Unlock()
	return nil
}

func (v *Validator) getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := v.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}
