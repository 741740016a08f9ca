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
	"go.uber.org/zap"

	"github.com/wxteams/wxteams/bridge"
)

// This file validates the bearer tokens the bot receives: the Bot Connector's on /api/messages
// (teams-bot-facts §2), and Entra ID's on the admin and compliance APIs (and, from known callers, on
// /api/messages: entra.go). Keys come from the issuer's OpenID metadata; only RS256 is accepted;
// the clock skew allowed is 5 minutes. One metadata fetch is in flight at a time, and failed
// fetches back off, so callers with bad tokens cannot make the bot hammer the metadata URL. What a
// refused caller is told names nothing internal (RefusalError); the reason goes to the log.

// BotFrameworkIssuer is the "iss" of the Bot Connector's tokens (teams-bot-facts §2).
const BotFrameworkIssuer = "https://api.botframework.com"

// ErrUnauthorized wraps every reason a token is refused.
var ErrUnauthorized = errors.New("unauthorized")

// ErrKeysUnavailable means the issuer's signing keys could not be loaded, so no token can be
// checked: not the caller's fault, and worth a retry.
var ErrKeysUnavailable = errors.New("the signing keys cannot be loaded")

func unauthorized(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnauthorized, fmt.Sprintf(format, args...))
}

// RefusalError is a refused token as the caller may see it: Error is a fixed sentence and Status
// the HTTP status (401, or 503 while the keys cannot be loaded); Reason, for the log only, says why.
type RefusalError struct {
	Status int
	Reason error
}

func (e *RefusalError) Error() string {
	if e.Status == http.StatusServiceUnavailable {
		return "the token cannot be checked now; try again later"
	}
	return "the bearer token is not valid for this service"
}

// Unwrap gives the reason.
func (e *RefusalError) Unwrap() error { return e.Reason }

// Refusal turns a validation error into what the caller is told.
func Refusal(err error) *RefusalError {
	var r *RefusalError
	if errors.As(err, &r) {
		return r
	}
	if errors.Is(err, ErrKeysUnavailable) {
		return &RefusalError{Status: http.StatusServiceUnavailable, Reason: err}
	}
	return &RefusalError{Status: http.StatusUnauthorized, Reason: err}
}

// Metadata fetches that fail are not retried for a while: 1 s after the first failure, doubling to
// a minute while they keep failing.
const (
	firstBackoff = time.Second
	maxBackoff   = time.Minute
)

// Validator checks tokens from one issuer.
type Validator struct {
	metadataURL string
	// issuers are the accepted "iss" values; empty means the issuer the metadata names.
	issuers   []string
	audiences []string
	http      *http.Client
	clock     bridge.Clock
	log       *zap.Logger
	// Keys are cached this long; an unknown kid refreshes them at most once per refreshGap.
	maxAge     time.Duration
	refreshGap time.Duration

	mu         sync.Mutex
	keys       map[string]*jwk
	fetched    time.Time
	kidRefresh time.Time // the last refresh an unknown kid caused
	metaIssuer string
	inFlight   *fetch    // the metadata fetch under way, which others wait for
	failures   int       // consecutive failed fetches
	retryAt    time.Time // no fetch before this after a failure
	lastErr    error     // why the last fetch failed
}

// fetch is one metadata fetch; done is closed when err is set.
type fetch struct {
	done chan struct{}
	err  error
}

// ValidatorConfig configures a Validator.
type ValidatorConfig struct {
	MetadataURL string   // the OpenID configuration document
	Issuer      string   // required issuer; empty = the metadata's
	Issuers     []string // or any of these
	Audiences   []string // accepted "aud" values
	HTTP        *http.Client
	Clock       bridge.Clock
	Log         *zap.Logger   // Authorize logs why it refused a token [none]
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
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	issuers := slices.Clone(cfg.Issuers)
	if cfg.Issuer != "" {
		issuers = append(issuers, cfg.Issuer)
	}
	return &Validator{metadataURL: cfg.MetadataURL, issuers: issuers, audiences: cfg.Audiences, http: cfg.HTTP,
		clock: cfg.Clock, log: cfg.Log, maxAge: cfg.MaxAge, refreshGap: cfg.RefreshGap}, nil
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
	AppID      string   `json:"appid"` // the calling application, in v1 tokens
	AZP        string   `json:"azp"`   // the calling application, in v2 tokens
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

// Validate checks "Authorization: Bearer <jwt>" and returns its claims. Its errors say why, for
// the log; what the caller is told comes from Refusal.
func (v *Validator) Validate(ctx context.Context, authorization string) (*Claims, error) {
	scheme, raw, ok := strings.Cut(authorization, " ")
	if !ok || scheme != "Bearer" || raw == "" || strings.Contains(raw, " ") {
		return nil, unauthorized("the Authorization header is not \"Bearer <token>\"")
	}
	claims := &Claims{}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithLeeway(5*time.Minute),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(v.clock.Now),
	)
	_, err := parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		key, err := v.key(ctx, kid)
		if err != nil {
			return nil, err
		}
		claims.endorsements = key.Endorsements
		return key.pub, nil
	})
	if errors.Is(err, ErrKeysUnavailable) {
		return nil, err
	}
	if err != nil {
		return nil, unauthorized("%v", err)
	}
	issuers := v.issuers
	if len(issuers) == 0 {
		v.mu.Lock()
		issuers = []string{v.metaIssuer} // the keys verified the token, so the metadata is loaded
		v.mu.Unlock()
	}
	if iss, _ := claims.GetIssuer(); iss == "" || !slices.Contains(issuers, iss) {
		return nil, unauthorized("token has invalid issuer %q", truncate(iss, 100))
	}
	aud, _ := claims.GetAudience()
	if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(v.audiences, a) }) {
		return nil, unauthorized("the token is for %q, not this bot", truncate(strings.Join(aud, " "), 200))
	}
	return claims, nil
}

// Authorize checks a request's Entra ID bearer token and that it carries role. It returns the
// actor to archive (prefix + who the token names), or the HTTP status to answer (401 for a bad
// token, 503 while the keys cannot be loaded, 403 for a missing role — with the actor, since the
// token is valid) and an error that may be shown to the caller; why a token was refused goes to
// the log.
func (v *Validator) Authorize(r *http.Request, role, prefix string) (actor string, status int, err error) {
	claims, err := v.Validate(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		refusal := Refusal(err)
		v.log.Info("bearer token refused", zap.String("path", r.URL.Path), zap.Int("status", refusal.Status), zap.NamedError("reason", refusal.Reason))
		return "", refusal.Status, refusal
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
	joining := v.inFlight != nil
	v.mu.Unlock()
	switch {
	case !stale && known:
		return k, nil
	case !stale && kid == "":
		return nil, fmt.Errorf("%w: the token names no key (kid)", errUnknownKid)
	}
	if stale || mayRefresh || joining {
		if err := v.refresh(ctx); err != nil {
			v.mu.Lock()
			none := v.keys == nil
			v.mu.Unlock()
			if none {
				return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
			}
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if k, ok := v.keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w %q", errUnknownKid, truncate(kid, 64))
}

// refresh fetches the keys, or waits for the fetch under way. After a failure no fetch is made
// until the backoff has passed: the failure is returned again instead.
func (v *Validator) refresh(ctx context.Context) error {
	v.mu.Lock()
	if f := v.inFlight; f != nil {
		v.mu.Unlock()
		select {
		case <-f.done:
			return f.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if v.clock.Now().Before(v.retryAt) {
		err := v.lastErr
		v.mu.Unlock()
		return fmt.Errorf("not retried before %s: %w", v.retryAt.UTC().Format(time.RFC3339), err)
	}
	f := &fetch{done: make(chan struct{})}
	v.inFlight = f
	v.mu.Unlock()

	// The fetch serves every waiting caller: one caller giving up must not cancel it.
	err := v.fetchKeys(context.WithoutCancel(ctx))

	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		v.failures++
		backoff := maxBackoff
		if v.failures <= 6 {
			backoff = min(firstBackoff<<(v.failures-1), maxBackoff)
		}
		v.retryAt, v.lastErr = v.clock.Now().Add(backoff), err
	} else {
		v.failures, v.retryAt, v.lastErr = 0, time.Time{}, nil
	}
	v.inFlight, f.err = nil, err
	close(f.done)
	return err
}

// fetchKeys fetches the OpenID metadata and its key set.
func (v *Validator) fetchKeys(ctx context.Context) error {
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
