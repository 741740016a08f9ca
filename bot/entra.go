package bot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxteams/wxteams/bridge"
)

// Microsoft's SDKs (the Microsoft 365 Agents SDK, the Teams SDK) accept on inbound activities, besides
// Bot Connector tokens, tokens Entra ID issued for the bot in its tenant (teams-bot-facts §2.3).
// Accepting every such token would let any application of the tenant that can get a token for the
// bot post activities in an employee's name; the bot accepts them only from calling applications
// the operator lists (WXTEAMS_BOT_ENTRA_CALLERS), and refuses the rest with a log line naming the
// caller.

// EntraActivityConfig configures the acceptance of Entra-issued activity tokens.
type EntraActivityConfig struct {
	AppID    string
	TenantID string
	// MetadataURL is the tenant's OpenID metadata, whose keys sign the tenant's tokens
	// (https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration).
	MetadataURL string
	// Callers are the application (client) ids allowed to post activities: "appid" of v1 tokens,
	// "azp" of v2 tokens. Empty: every Entra-issued token is refused (and its caller logged).
	Callers []string
	HTTP    *http.Client
	Clock   bridge.Clock
}

// EntraActivities validates Entra-issued activity tokens.
type EntraActivities struct {
	validator *Validator
	v1, v2    string // the tenant's issuers
	tenant    string
	callers   []string
}

// NewEntraActivities returns the validator of Entra-issued activity tokens. A token is accepted
// when its issuer is the tenant's (v1 https://sts.windows.net/{tenant}/ or v2
// https://login.microsoftonline.com/{tenant}/v2.0, as Microsoft's SDKs have them), it is signed with
// a key of the tenant's metadata, its audience is the bot (the app id, api://{app id} or
// api://botid-{app id}, as the Teams SDK accepts), its tid is the tenant, and its calling
// application is listed.
func NewEntraActivities(cfg EntraActivityConfig) (*EntraActivities, error) {
	if cfg.AppID == "" || cfg.TenantID == "" {
		return nil, errors.New("bot: Entra-issued activity tokens need the app id and the tenant id")
	}
	e := &EntraActivities{
		v1:     "https://sts.windows.net/" + cfg.TenantID + "/",
		v2:     "https://login.microsoftonline.com/" + cfg.TenantID + "/v2.0",
		tenant: cfg.TenantID,
	}
	for _, c := range cfg.Callers {
		e.callers = append(e.callers, strings.ToLower(strings.TrimSpace(c)))
	}
	v, err := NewValidator(ValidatorConfig{MetadataURL: cfg.MetadataURL, Issuers: []string{e.v1, e.v2},
		Audiences: []string{cfg.AppID, "api://" + cfg.AppID, "api://botid-" + cfg.AppID}, HTTP: cfg.HTTP, Clock: cfg.Clock})
	if err != nil {
		return nil, err
	}
	e.validator = v
	return e, nil
}

// Issues reports whether a token claims to come from the tenant's Entra ID (before any check).
func (e *EntraActivities) Issues(iss string) bool { return iss == e.v1 || iss == e.v2 }

// CallerRefusedError is a valid Entra-issued token from an application that is not listed.
type CallerRefusedError struct{ Caller string }

func (e *CallerRefusedError) Error() string {
	return fmt.Sprintf("%v: an Entra ID token of this tenant from calling application %s was refused: "+
		"it is not in WXTEAMS_BOT_ENTRA_CALLERS; add it there if that application may post activities to this bot", ErrUnauthorized, e.Caller)
}

// Unwrap makes it an ErrUnauthorized.
func (e *CallerRefusedError) Unwrap() error { return ErrUnauthorized }

// ValidateActivity checks an Entra-issued token for an activity. Such tokens carry no serviceurl
// claim (the Teams SDK notes it); one that does must name the activity's serviceUrl. The
// serviceUrl must be on the allow-list either way (the endpoint checks it).
func (e *EntraActivities) ValidateActivity(ctx context.Context, authorization string, a *Activity) (*Claims, error) {
	claims, err := e.validator.Validate(ctx, authorization)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(claims.TenantID, e.tenant) {
		return nil, unauthorized("the token's tid is %q, not the bot's tenant", truncate(claims.TenantID, 64))
	}
	// v1 tokens name the calling application in appid, v2 tokens in azp.
	caller := claims.AZP
	if claims.Issuer == e.v1 {
		caller = claims.AppID
	}
	if caller == "" {
		return nil, unauthorized("the Entra ID token names no calling application (appid in v1 tokens, azp in v2)")
	}
	if !slices.Contains(e.callers, strings.ToLower(caller)) {
		return nil, &CallerRefusedError{Caller: truncate(caller, 64)}
	}
	if claims.ServiceURL != "" && !sameServiceURL(claims.ServiceURL, a.ServiceURL) {
		return nil, unauthorized("the token's serviceurl is not the activity's serviceUrl")
	}
	return claims, nil
}

// tokenIssuer reads a token's "iss" without checking anything, to pick the validator.
func tokenIssuer(authorization string) string {
	raw, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok {
		return ""
	}
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &c); err != nil {
		return ""
	}
	return c.Issuer
}
