package bot_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bot/teamsfake"
	"github.com/wxteams/wxteams/bridge/clock"
)

const (
	botAppID   = "c9e8c047-2a74-40a2-b28a-b162d5f5327c"
	serviceURL = "https://smba.trafficmanager.net/amer/"
)

func issuerRig(t *testing.T, clk *clock.Fake) (*teamsfake.Issuer, *bot.Validator) {
	t.Helper()
	iss := teamsfake.NewIssuer(teamsfake.BotFrameworkIssuer, clk, "msteams")
	srv := httptest.NewServer(iss.Handler())
	t.Cleanup(srv.Close)
	iss.URL = srv.URL
	v, err := bot.NewValidator(bot.ValidatorConfig{MetadataURL: srv.URL + "/v1/.well-known/openidconfiguration", Issuer: teamsfake.BotFrameworkIssuer,
		Audiences: []string{botAppID}, Clock: clk, RefreshGap: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return iss, v
}

func activity() *bot.Activity {
	return &bot.Activity{Type: "message", ID: "1485983408511", ChannelID: "msteams", ServiceURL: serviceURL}
}

func TestBotConnectorTokenIsAccepted(t *testing.T) {
	clk := clock.NewFake(time.Now())
	iss, v := issuerRig(t, clk)
	claims, err := v.ValidateActivity(context.Background(), "Bearer "+iss.BotToken(botAppID, serviceURL), activity())
	if err != nil {
		t.Fatal(err)
	}
	if claims.ServiceURL != serviceURL {
		t.Errorf("serviceurl = %q", claims.ServiceURL)
	}
	// The serviceurl claim matches regardless of case and a trailing slash (.NET and Teams SDK do so).
	a := activity()
	a.ServiceURL = "HTTPS://smba.trafficmanager.net/amer"
	if _, err := v.ValidateActivity(context.Background(), "Bearer "+iss.BotToken(botAppID, serviceURL), a); err != nil {
		t.Errorf("serviceUrl differing in case and trailing slash: %v", err)
	}
}

func TestBotConnectorTokenNegatives(t *testing.T) {
	clk := clock.NewFake(time.Now())
	iss, v := issuerRig(t, clk)
	kid := iss.CurrentKid()
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := iss.BotClaims(botAppID, serviceURL)
		edit(c)
		return c
	}
	unendorsedKid := iss.AddKey() // published, but not endorsed for msteams
	iss.AddKey("msteams")         // the current key again is endorsed
	now := clk.Now()
	for _, tc := range []struct {
		name   string
		header string
		act    func(*bot.Activity)
		want   string
	}{
		{"missing header", "", nil, `not "Bearer <token>"`},
		{"basic scheme", "Basic dXNlcjpwYXNz", nil, `not "Bearer <token>"`},
		{"lower-case bearer", "bearer " + iss.BotToken(botAppID, serviceURL), nil, `not "Bearer <token>"`},
		{"alg none", "Bearer " + iss.SignWith(kid, jwt.SigningMethodNone, iss.BotClaims(botAppID, serviceURL)), nil, "signing method none is invalid"},
		{"HS256 signed with the public key", "Bearer " + iss.SignWith(kid, jwt.SigningMethodHS256, iss.BotClaims(botAppID, serviceURL)), nil, "signing method HS256 is invalid"},
		{"RS384", "Bearer " + iss.SignWith(kid, jwt.SigningMethodRS384, iss.BotClaims(botAppID, serviceURL)), nil, "signing method RS384 is invalid"},
		{"wrong issuer", "Bearer " + iss.Sign(claims(func(c jwt.MapClaims) { c["iss"] = "https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/" })), nil, "invalid issuer"},
		{"wrong audience", "Bearer " + iss.Sign(claims(func(c jwt.MapClaims) { c["aud"] = "11111111-2222-3333-4444-555555555555" })), nil, "not this bot"},
		{"expired beyond the 5 min skew", "Bearer " + iss.Sign(claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-6 * time.Minute).Unix() })), nil, "token is expired"},
		{"not yet valid beyond the skew", "Bearer " + iss.Sign(claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(6 * time.Minute).Unix() })), nil, "token is not valid yet"},
		{"no expiry", "Bearer " + iss.Sign(claims(func(c jwt.MapClaims) { delete(c, "exp") })), nil, "exp claim is required"},
		{"unknown kid", "Bearer " + iss.SignWith("not-a-published-kid", jwt.SigningMethodRS256, iss.BotClaims(botAppID, serviceURL)), nil, "unknown signing key"},
		{"no kid (found by FuzzEndpoint: it once panicked)", "Bearer " + iss.SignWith("", jwt.SigningMethodRS256, iss.BotClaims(botAppID, serviceURL)), nil, "names no key"},
		{"key without the msteams endorsement", "Bearer " + iss.SignWith(unendorsedKid, jwt.SigningMethodRS256, iss.BotClaims(botAppID, serviceURL)), nil, "not endorsed for channel \"msteams\""},
		{"activity from another channel", "Bearer " + iss.BotToken(botAppID, serviceURL), func(a *bot.Activity) { a.ChannelID = "webchat" }, "not endorsed"},
		{"serviceurl mismatch", "Bearer " + iss.BotToken(botAppID, serviceURL), func(a *bot.Activity) { a.ServiceURL = "https://evil.example/" }, "not the activity's serviceUrl"},
		{"no serviceurl claim", "Bearer " + iss.Sign(claims(func(c jwt.MapClaims) { delete(c, "serviceurl") })), nil, "no serviceurl claim"},
		{"payload swapped under the signature", "Bearer " + tamper(iss.BotToken(botAppID, serviceURL), iss.BotToken(botAppID, "https://evil.example/")), nil, "signature is invalid"},
	} {
		a := activity()
		if tc.act != nil {
			tc.act(a)
		}
		_, err := v.ValidateActivity(context.Background(), tc.header, a)
		if !errors.Is(err, bot.ErrUnauthorized) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want unauthorized containing %q", tc.name, err, tc.want)
		}
	}
	// Within the skew is fine.
	ok := iss.Sign(claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-4 * time.Minute).Unix() }))
	if _, err := v.ValidateActivity(context.Background(), "Bearer "+ok, activity()); err != nil {
		t.Errorf("expired 4 minutes ago (inside the 5 min skew): %v", err)
	}
}

// tamper puts another valid payload under a token's signature.
func tamper(token, otherToken string) string {
	parts, other := strings.Split(token, "."), strings.Split(otherToken, ".")
	parts[1] = other[1]
	return strings.Join(parts, ".")
}

func TestKeysAreRefreshedOnAnUnknownKidAtMostOncePerGap(t *testing.T) {
	clk := clock.NewFake(time.Now())
	iss, v := issuerRig(t, clk)
	ctx := context.Background()
	if _, err := v.ValidateActivity(ctx, "Bearer "+iss.BotToken(botAppID, serviceURL), activity()); err != nil {
		t.Fatal(err)
	}
	// The issuer rotates its key: the new kid is fetched on first sight.
	iss.AddKey("msteams")
	if _, err := v.ValidateActivity(ctx, "Bearer "+iss.BotToken(botAppID, serviceURL), activity()); err != nil {
		t.Errorf("token signed with a rotated key: %v", err)
	}
	// Another rotation within the refresh gap is not fetched (no refresh storm on bad kids)…
	iss.AddKey("msteams")
	if _, err := v.ValidateActivity(ctx, "Bearer "+iss.BotToken(botAppID, serviceURL), activity()); err == nil {
		t.Error("a second unknown kid within the refresh gap was fetched")
	}
	// …but after it.
	clk.Advance(time.Minute)
	if _, err := v.ValidateActivity(ctx, "Bearer "+iss.BotToken(botAppID, serviceURL), activity()); err != nil {
		t.Errorf("after the refresh gap: %v", err)
	}
}

func TestEntraAdminTokens(t *testing.T) {
	clk := clock.NewFake(time.Now())
	tenant := "72f988bf-86f1-41af-91ab-2d7cd011db47"
	iss := teamsfake.NewIssuer("https://login.microsoftonline.com/"+tenant+"/v2.0", clk)
	srv := httptest.NewServer(iss.Handler())
	defer srv.Close()
	iss.URL = srv.URL
	v, err := bot.NewValidator(bot.ValidatorConfig{MetadataURL: srv.URL + "/.well-known/openid-configuration", Audiences: []string{botAppID, "api://" + botAppID}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Validate(context.Background(), "Bearer "+iss.UserToken("api://"+botAppID, tenant, "it@acme.example", "oid-1", "WeChat.Admin"))
	if err != nil {
		t.Fatal(err)
	}
	if claims.Who() != "it@acme.example" || len(claims.Roles) != 1 {
		t.Errorf("claims = %+v", claims)
	}
	// The issuer comes from the metadata: another tenant's token is refused.
	other := teamsfake.NewIssuer("https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0", clk)
	other.URL = srv.URL
	forged := iss.Sign(jwt.MapClaims{"iss": other.Name, "aud": botAppID, "exp": clk.Now().Add(time.Hour).Unix()})
	if _, err := v.Validate(context.Background(), "Bearer "+forged); err == nil {
		t.Error("a token naming another tenant's issuer was accepted")
	}
}
