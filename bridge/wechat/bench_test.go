package wechat_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/bridge/wechat"
)

// BenchmarkVerifyDecrypt is the cost of checking and opening one safe-mode push: both signatures,
// AES-256-CBC, and parsing the XML inside.
//
//	go test -run '^$' -bench BenchmarkVerifyDecrypt ./bridge/wechat/
func BenchmarkVerifyDecrypt(b *testing.B) {
	c, _ := wechat.NewCipher(aesKey, appID)
	plain := `<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[o6_bmjrPTlm6_2sgVt7hMZOPfL2M]]></FromUserName><CreateTime>1795000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[Could we talk about the bond fund tomorrow morning?]]></Content><MsgId>6054768590064713728</MsgId></xml>`
	encrypted, _ := c.Encrypt([]byte(plain))
	sig := wechat.Signature(token, "1795000000", "12345")
	msgSig := wechat.Signature(token, "1795000000", "12345", encrypted)
	b.ReportAllocs()
	for b.Loop() {
		if !wechat.VerifySignature(sig, token, "1795000000", "12345") || !wechat.VerifySignature(msgSig, token, "1795000000", "12345", encrypted) {
			b.Fatal("signature")
		}
		msg, _, err := c.Decrypt(encrypted)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := wechat.ParsePush(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCallback sends signed, encrypted customer messages over HTTP to the callback, which
// verifies, decrypts, parses, archives and commits each (with its Teams delivery row) before
// answering; the engine delivers to an in-memory Teams meanwhile. Saturated: 8 senders as fast as
// they go. Paced: a fixed total rate. It reports callbacks/s and the p50/p99 of the HTTP round trip.
//
//	go test -run '^$' -bench BenchmarkCallback -benchtime 10000x ./bridge/wechat/
func BenchmarkCallback(b *testing.B) {
	for _, rate := range []int{0, 500} {
		name := "saturated"
		if rate > 0 {
			name = fmt.Sprintf("paced-%d", rate)
		}
		b.Run("sqlite-"+name, func(b *testing.B) { benchCallback(b, sqlstoretest.SQLiteURL(b), rate) })
		b.Run("postgres-"+name, func(b *testing.B) { benchCallback(b, sqlstoretest.PostgresURL(b), rate) })
	}
}

type countTeams struct{ n atomic.Int64 }

func (c *countTeams) SendTeams(context.Context, *bridge.Employee, *bridge.TeamsMessage) (bridge.Delivery, error) {
	c.n.Add(1)
	return bridge.Delivery{}, nil
}

func benchCallback(b *testing.B, dbURL string, rate int) {
	const customers, senders = 64, 8
	ctx := context.Background()
	store := sqlstoretest.Open(b, dbURL)
	teams := &countTeams{}
	engine, err := bridge.NewEngine(bridge.Config{Store: store, Teams: teams, Clock: clock.System{}, Policy: bridge.DefaultPolicy(), PollInterval: 50 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := engine.EnableEmployee(ctx, bridge.EmployeeProfile{ID: ann}, "admin:bench"); err != nil {
		b.Fatal(err)
	}
	for i := range customers {
		if _, err := engine.Connect(ctx, bridge.Connect{Contact: bridge.OpenID(fmt.Sprintf("o-bench-%02d", i)), Scene: bridge.SceneFor(ann), Event: "subscribe"}); err != nil {
			b.Fatal(err)
		}
	}
	cb, err := wechat.NewCallback(wechat.CallbackConfig{AppID: appID, OriginalID: gh, Tokens: []string{token}, AESKeys: []string{aesKey}}, engine, clock.System{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(cb)
	defer srv.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = engine.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()

	// The pushes are built before the clock starts: their cost is WeChat's, not ours.
	type push struct{ query, body string }
	cipher, _ := wechat.NewCipher(aesKey, appID)
	pushes := make([]push, b.N)
	for i := range pushes {
		from := fmt.Sprintf("o-bench-%02d", i%customers)
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		nonce := strconv.Itoa(100000 + i)
		plain := "<xml><ToUserName><![CDATA[" + gh + "]]></ToUserName><FromUserName><![CDATA[" + from + "]]></FromUserName><CreateTime>" + ts +
			"</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[Could we talk about the bond fund tomorrow? (" + strconv.Itoa(i) + ")]]></Content><MsgId>" + strconv.Itoa(7000000000+i) + "</MsgId></xml>"
		enc, _ := cipher.Encrypt([]byte(plain))
		q := url.Values{"signature": {wechat.Signature(token, ts, nonce)}, "timestamp": {ts}, "nonce": {nonce}, "openid": {from},
			"encrypt_type": {"aes"}, "msg_signature": {wechat.Signature(token, ts, nonce, enc)}}
		pushes[i] = push{q.Encode(), "<xml><ToUserName><![CDATA[" + gh + "]]></ToUserName><Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>"}
	}
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
				if i >= int64(len(pushes)) {
					return
				}
				if tick != nil {
					<-tick
				}
				t0 := time.Now()
				resp, err := hc.Post(srv.URL+"?"+pushes[i].query, "text/xml", strings.NewReader(pushes[i].body))
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("push %d: HTTP %d", i, resp.StatusCode)
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
		b.Fatal("no pushes answered")
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "callbacks/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}
