package wechat_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/bridge/wechat"
)

const (
	canarySecret = "CANARYappsecret0123456789abcdef0"
	canaryToken  = "CANARYaccesstoken-0123456789"
)

// With WeChat unreachable, hanging up, slow, or answering with an errmsg that repeats them, no
// error holds the AppSecret (classic token mode puts it in the query string) or the access token
// (every call puts it there): errors name the method, host and path.
func TestClientErrorsHoldNoCredentials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := "http://" + ln.Addr().String()
	ln.Close()
	var mode atomic.Value // how the send endpoint behaves
	mode.Store("")
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/cgi-bin/token":
			_, _ = w.Write([]byte(`{"access_token":"` + canaryToken + `","expires_in":7200}`))
		case mode.Load() == "hang up":
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		case mode.Load() == "slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		case mode.Load() == "echo":
			_, _ = w.Write([]byte(`{"errcode":40003,"errmsg":"invalid openid hint: [` + r.URL.RawQuery + `] secret ` + canarySecret + `"}`))
		}
	}))
	t.Cleanup(api.Close)
	client := func(base string) *wechat.Client {
		store := sqlstoretest.SQLite(t)
		c, err := wechat.NewClient(wechat.ClientConfig{AppID: "wx1234567890abcdef", Secret: canarySecret, APIBase: base, ClassicToken: true,
			HTTP: &http.Client{Timeout: 300 * time.Millisecond}}, store, store, clock.System{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	check := func(what string, err error, want string, sentinel error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		for _, secret := range []string{canarySecret, canaryToken, "?", `"http`} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error %q holds %q", what, err, secret)
			}
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q; want it to say %q", what, err, want)
		}
		if sentinel != nil && !errors.Is(err, sentinel) {
			t.Errorf("%s: error %q is not %v", what, err, sentinel)
		}
	}
	ctx := context.Background()
	host := strings.TrimPrefix(unreachable, "http://")
	check("token with WeChat unreachable", client(unreachable).CheckToken(ctx), "GET "+host+"/cgi-bin/token: connection refused", wechat.ErrTransport)
	check("send with WeChat unreachable", client(unreachable).SendText(ctx, "o-1", "hi"), "GET "+host+"/cgi-bin/token: connection refused", bridge.ErrRetryLater)

	c := client(api.URL)
	host = strings.TrimPrefix(api.URL, "http://")
	mode.Store("hang up")
	check("send, WeChat hangs up", c.SendText(ctx, "o-1", "hi"), "POST "+host+"/cgi-bin/message/custom/send: connection closed without an answer", bridge.ErrOutcomeUnknown)
	mode.Store("slow")
	check("send, WeChat too slow", c.SendText(ctx, "o-1", "hi"), "POST "+host+"/cgi-bin/message/custom/send: timed out", bridge.ErrOutcomeUnknown)
	_, _, err = c.FetchMedia(ctx, "wechat:MEDIA1")
	check("media, WeChat too slow", err, "GET "+host+"/cgi-bin/media/get: timed out", bridge.ErrRetryLater)
	mode.Store("echo")
	err = c.SendText(ctx, "o-1", "hi")
	check("send, WeChat repeats the credentials", err, "errcode 40003", bridge.ErrNotFollower)
	var apiErr *wechat.APIError
	if !errors.As(err, &apiErr) || strings.Count(apiErr.Msg, "[redacted]") != 2 {
		t.Errorf("errmsg %q: want the token and the secret redacted", apiErr.Msg)
	}
}
