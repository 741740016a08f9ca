package wechat

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
)

// receipts records what the callback tells of its receipts.
type receipts struct {
	mu      sync.Mutex
	got     []string
	lastAt  time.Time
	refused []string
}

func (r *receipts) Received(ch bridge.Channel, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, string(ch))
	r.lastAt = at
}

func (r *receipts) Refused(ch bridge.Channel, reason string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refused = append(r.refused, string(ch)+" "+reason)
}

// Only signed pushes are receipts; each one refused after that is told with its reason, so the
// completeness report can count them (a push refused before its signature checks is not WeChat's).
func TestCallbackTellsReceiptsAndRefusalsAfterReceipt(t *testing.T) {
	rc := &receipts{}
	cfg := CallbackConfig{AppID: appID, OriginalID: gh, Tokens: []string{"newtoken"}, AESKeys: []string{key1}, Receipts: rc}
	e := newEndpoint(t, cfg, now)
	good := textPush(gh, "o1", "1001", "hello")
	ct, body := encrypted(t, key1, appID, good)
	otherAccount, otherAccountBody := encrypted(t, key1, appID, textPush("gh_000000000000", "o1", "1004", "x"))

	post := func(q url.Values, body string, status int) {
		t.Helper()
		if got, reply := e.do("POST", q.Encode(), body); got != status {
			t.Errorf("push = %d %q; want %d", got, strings.TrimSpace(reply), status)
		}
	}
	post(signedQuery("newtoken", now.Unix(), ct), body, 200)                       // received, recorded
	post(signedQuery("nottoken", now.Unix(), ct), body, 403)                       // not WeChat's: no receipt
	post(signedQuery("newtoken", now.Unix(), otherAccount), otherAccountBody, 400) // received, undecryptable
	post(signedQuery("newtoken", now.Unix(), ""), good, 403)                       // received, plaintext in safe mode
	e.rec.fail = fmt.Errorf("database unavailable")
	ct2, body2 := encrypted(t, key1, appID, textPush(gh, "o1", "1005", "again"))
	post(signedQuery("newtoken", now.Unix(), ct2), body2, 503) // received, not recorded
	if _, reply := e.do("GET", signedQuery("newtoken", now.Unix(), "").Encode()+"&echostr=x", ""); reply != "x" {
		t.Errorf("URL verification = %q", reply) // not a receipt either
	}

	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.got) != 4 || !rc.lastAt.Equal(now) {
		t.Errorf("receipts = %v at %v; want the 4 signed pushes at %v", rc.got, rc.lastAt, now)
	}
	want := []string{"wechat undecryptable", "wechat mode", "wechat not_recorded"}
	if strings.Join(rc.refused, ",") != strings.Join(want, ",") {
		t.Errorf("refusals after receipt = %v; want %v", rc.refused, want)
	}
}
