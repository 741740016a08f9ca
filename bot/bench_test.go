package bot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bot/teamsfake"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
)

const benchServiceURL = "https://smba.trafficmanager.net/amer/"

// BenchmarkValidateActivity is the cost of authenticating one activity with the signing keys cached:
// parsing the JWT, the RS256 signature, the claims, the endorsement and the serviceurl check.
//
//	go test -run '^$' -bench BenchmarkValidateActivity ./bot/
func BenchmarkValidateActivity(b *testing.B) {
	clk := clock.System{}
	iss := teamsfake.NewIssuer(teamsfake.BotFrameworkIssuer, clk, "msteams")
	srv := httptest.NewServer(iss.Handler())
	defer srv.Close()
	iss.URL = srv.URL
	v, err := bot.NewValidator(bot.ValidatorConfig{MetadataURL: srv.URL + "/v1/.well-known/openidconfiguration", Issuer: teamsfake.BotFrameworkIssuer,
		Audiences: []string{botAppID}, Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	header := "Bearer " + iss.BotToken(botAppID, benchServiceURL)
	a := &bot.Activity{Type: "message", ID: "1", ChannelID: "msteams", ServiceURL: benchServiceURL}
	if _, err := v.ValidateActivity(context.Background(), header, a); err != nil { // fetches the keys
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.ValidateActivity(context.Background(), header, a); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkActivities posts signed Teams message activities over HTTP to the real endpoint, which
// authenticates each (RS256, claims, endorsement, serviceurl), archives and commits it with its
// WeChat delivery row, and answers; the engine delivers to an in-memory WeChat meanwhile. 8
// employees write to one customer each, from 8 senders. Saturated: as fast as they go. Paced: a
// fixed total rate. It reports activities/s and the p50/p99 of the HTTP round trip.
//
//	go test -run '^$' -bench BenchmarkActivities -benchtime 6000x ./bot/
func BenchmarkActivities(b *testing.B) {
	for _, rate := range []int{0, 300} {
		name := "saturated"
		if rate > 0 {
			name = fmt.Sprintf("paced-%d", rate)
		}
		b.Run("sqlite-"+name, func(b *testing.B) { benchActivities(b, sqlstoretest.SQLiteURL(b), rate) })
		b.Run("postgres-"+name, func(b *testing.B) { benchActivities(b, sqlstoretest.PostgresURL(b), rate) })
	}
}

// countingWeChat accepts every delivery and counts it.
type countingWeChat struct{ n atomic.Int64 }

func (c *countingWeChat) SendWeChat(context.Context, *bridge.Contact, *bridge.WeChatMessage) (bridge.Delivery, error) {
	c.n.Add(1)
	return bridge.Delivery{ID: "ok"}, nil
}

func (c *countingWeChat) SendTeams(context.Context, *bridge.Employee, *bridge.TeamsMessage) (bridge.Delivery, error) {
	c.n.Add(1)
	return bridge.Delivery{ID: "ok"}, nil
}

// staticCredential is a credential the benchmark never needs (nothing is sent to Teams).
type staticCredential struct{}

func (staticCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "unused", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func benchActivities(b *testing.B, dbURL string, rate int) {
	const employees = 8
	ctx := context.Background()
	clk := clock.System{}
	store := sqlstoretest.Open(b, dbURL)
	pol := bridge.DefaultPolicy()
	pol.Cap, pol.Quota = 1<<30, 1<<30 // every message is delivered: measure the path, not the queue
	sink := &countingWeChat{}
	engine, err := bridge.NewEngine(bridge.Config{Store: store, WeChat: sink, Teams: sink, Clock: clk, Policy: pol, PollInterval: 50 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	iss := teamsfake.NewIssuer(teamsfake.BotFrameworkIssuer, clk, "msteams")
	issSrv := httptest.NewServer(iss.Handler())
	defer issSrv.Close()
	iss.URL = issSrv.URL
	validator, err := bot.NewValidator(bot.ValidatorConfig{MetadataURL: issSrv.URL + "/v1/.well-known/openidconfiguration", Issuer: teamsfake.BotFrameworkIssuer,
		Audiences: []string{botAppID}, Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	connector, err := bot.NewConnector(bot.ConnectorConfig{AppID: botAppID, Credential: staticCredential{}, AllowedHosts: []string{"smba.trafficmanager.net"}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(bot.NewEndpoint(bot.EndpointConfig{AppID: botAppID}, validator, connector, engine, nil, nil))
	defer srv.Close()

	// Each employee is enabled, has installed the app, and has one active chat with a customer.
	type who struct{ aad, conversation string }
	staff := make([]who, employees)
	for i := range staff {
		staff[i] = who{fmt.Sprintf("00000000-0000-4000-8000-%012d", i), fmt.Sprintf("a:bench-%d", i)}
		id := bridge.EmployeeID(staff[i].aad)
		if _, err := engine.EnableEmployee(ctx, bridge.EmployeeProfile{ID: id, Name: "Bench " + strconv.Itoa(i), Tenant: tenant}, "admin:bench"); err != nil {
			b.Fatal(err)
		}
		if _, err := engine.RegisterTeamsUser(ctx, bridge.TeamsUser{ID: id, Tenant: tenant, Name: "Bench " + strconv.Itoa(i),
			Address: bridge.TeamsAddress{ServiceURL: benchServiceURL, ConversationID: staff[i].conversation, UserID: "29:bench-" + strconv.Itoa(i)}}); err != nil {
			b.Fatal(err)
		}
		contact := bridge.OpenID(fmt.Sprintf("o-bench-%d", i))
		if _, err := engine.Connect(ctx, bridge.Connect{Contact: contact, Scene: bridge.SceneFor(id), Event: "subscribe"}); err != nil {
			b.Fatal(err)
		}
		if _, err := engine.CustomerWrites(ctx, bridge.Inbound{Contact: contact, Message: bridge.TextMessage("hello")}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := engine.Drain(ctx); err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = engine.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()

	// Activities and their token are built before the clock starts: that is Teams' work. Teams
	// reuses a token for many activities; the endpoint validates it on every request regardless.
	header := "Bearer " + iss.BotToken(botAppID, benchServiceURL)
	bodies := make([][]byte, b.N)
	cd, _ := json.Marshal(map[string]any{"tenant": map[string]string{"id": tenant}})
	for i := range bodies {
		w := staff[i%employees]
		bodies[i], _ = json.Marshal(&bot.Activity{
			Type: "message", ID: strconv.Itoa(1700000000000 + i), Timestamp: time.Now().UTC().Format(time.RFC3339Nano),
			ServiceURL: benchServiceURL, ChannelID: "msteams", Text: "The bond fund's prospectus is on its way (" + strconv.Itoa(i) + ")",
			From:         bot.ChannelAccount{ID: "29:bench-" + strconv.Itoa(i%employees), AADObjectID: w.aad},
			Conversation: bot.ConversationAccount{ID: w.conversation, ConversationType: "personal", TenantID: tenant},
			Recipient:    bot.ChannelAccount{ID: "28:" + botAppID}, ChannelData: cd,
		})
	}
	const senders = employees
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	latencies := make([][]time.Duration, senders)
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tick <-chan time.Time
			if rate > 0 {
				period := time.Duration(senders) * time.Second / time.Duration(rate)
				time.Sleep(period * time.Duration(w) / senders)
				t := time.NewTicker(period)
				defer t.Stop()
				tick = t.C
			}
			for {
				i := next.Add(1) - 1
				if i >= int64(len(bodies)) {
					return
				}
				if tick != nil {
					<-tick
				}
				req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", header)
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("activity %d: HTTP %d", i, resp.StatusCode)
					return
				}
				latencies[w] = append(latencies[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(latencies...)
	slices.Sort(all)
	if len(all) == 0 {
		b.Fatal("no activities answered")
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "activities/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}
