package bot_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bot/teamsfake"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
)

// FuzzEndpoint posts arbitrary bodies and Authorization headers to the real endpoint on a real
// engine and SQLite store. Whatever comes, the answer is a clear 2xx or 4xx: never a panic, and never
// a 5xx while the database is healthy (a 503 would have Teams retry forever). The seeds are the
// documented payloads with a valid Bot Connector token, so the fuzzer starts from activities that
// get through authentication and into the bridge.
//
//	go test -run '^$' -fuzz FuzzEndpoint ./bot/
func FuzzEndpoint(f *testing.F) {
	const serviceURL = "https://smba.trafficmanager.net/amer/"
	anyServiceURL := regexp.MustCompile(`"serviceUrl":\s*"[^"]*"`)
	var seeds [][]byte
	for _, name := range []string{"message-personal.json", "conversation-update.json", "invoke-action-execute.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, anyServiceURL.ReplaceAll(b, []byte(`"serviceUrl": "`+serviceURL+`"`)))
	}
	seeds = append(seeds, []byte(`{"type":"message","serviceUrl":"`+serviceURL+`","from":{"aadObjectId":"x"},"conversation":{"id":"c"},"text":"a\u0000b"}`))

	clk := clock.System{}
	store := sqlstoretest.SQLite(f)
	engine, err := bridge.NewEngine(bridge.Config{Store: store, Clock: clk, Policy: bridge.DefaultPolicy()})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	if _, err := engine.EnableEmployee(ctx, bridge.EmployeeProfile{ID: meganID, Name: "Megan Bowen"}, "admin:fuzz"); err != nil {
		f.Fatal(err)
	}
	if _, err := engine.Connect(ctx, bridge.Connect{Contact: "o-ming", Scene: bridge.SceneFor(meganID), Event: "subscribe"}); err != nil {
		f.Fatal(err)
	}
	iss := teamsfake.NewIssuer(teamsfake.BotFrameworkIssuer, clk, "msteams")
	issSrv := httptest.NewServer(iss.Handler())
	f.Cleanup(issSrv.Close)
	iss.URL = issSrv.URL
	validator, err := bot.NewValidator(bot.ValidatorConfig{MetadataURL: issSrv.URL + "/v1/.well-known/openidconfiguration", Issuer: teamsfake.BotFrameworkIssuer,
		Audiences: []string{botAppID}, Clock: clk})
	if err != nil {
		f.Fatal(err)
	}
	connector, err := bot.NewConnector(bot.ConnectorConfig{AppID: botAppID, Credential: staticCredential{}, AllowedHosts: []string{"smba.trafficmanager.net"}})
	if err != nil {
		f.Fatal(err)
	}
	endpoint := bot.NewEndpoint(bot.EndpointConfig{AppID: botAppID}, validator, connector, engine, nil, nil)
	header := "Bearer " + iss.BotToken(botAppID, serviceURL)
	for _, b := range seeds {
		f.Add(b, header)
	}
	f.Add(seeds[0], "Bearer "+iss.SignWith(iss.CurrentKid(), jwt.SigningMethodNone, iss.BotClaims(botAppID, serviceURL)))
	f.Add(seeds[0], "Bearer a.b.c")

	f.Fuzz(func(t *testing.T, body []byte, authorization string) {
		req := httptest.NewRequest(http.MethodPost, "/api/messages", bytes.NewReader(body))
		req.Header.Set("Authorization", authorization)
		req.Header.Set("Content-Type", "application/json")
		ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
		defer cancel()
		rec := httptest.NewRecorder()
		start := time.Now()
		endpoint.ServeHTTP(rec, req.WithContext(ctx))
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("%s to answer %q", d, body)
		}
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("HTTP %d for %q: %s", rec.Code, body, rec.Body.String())
		}
	})
}
