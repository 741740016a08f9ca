package scrub_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wxteams/wxteams/internal/scrub"
)

const secret = "CANARYsecret0123456789"

// Real transport failures — refused, reset, closed, timed out, plain HTTP to a TLS client — each
// told in our words with the method, host and path, and never the query string the request carried.
func TestRequestFailuresInOurWords(t *testing.T) {
	closedAddr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}()
	hangUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	defer hangUp.Close()
	reset := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		_ = conn.(*net.TCPConn).SetLinger(0) // RST instead of FIN
		conn.Close()
	}))
	defer reset.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()

	for _, c := range []struct {
		name, base, reason string
		is                 error
		timeout            time.Duration
	}{
		{"refused", "http://" + closedAddr, "connection refused", syscall.ECONNREFUSED, 0},
		{"closed", hangUp.URL, "connection closed without an answer", nil, 0},
		{"reset", reset.URL, "connection reset", syscall.ECONNRESET, 0},
		{"timed out", slow.URL, "timed out", context.DeadlineExceeded, 200 * time.Millisecond},
		{"not TLS", strings.Replace(plain.URL, "http:", "https:", 1), "", nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			if c.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, c.timeout)
				defer cancel()
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/cgi-bin/token?appid=wx1&secret="+secret, strings.NewReader("{}"))
			_, raw := http.DefaultClient.Do(req)
			if raw == nil || !strings.Contains(raw.Error(), secret) {
				t.Fatalf("the transport's own error %v does not hold the query: the test proves nothing", raw)
			}
			err := scrub.Request(req, raw)
			host := strings.TrimPrefix(strings.TrimPrefix(c.base, "http://"), "https://")
			if !strings.HasPrefix(err.Error(), "POST "+host+"/cgi-bin/token: ") || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "?") {
				t.Errorf("error = %q", err)
			}
			if c.reason != "" && !strings.HasSuffix(err.Error(), ": "+c.reason) {
				t.Errorf("error = %q; want the reason %q", err, c.reason)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, c.is)
			}
			var e *scrub.Error
			if !errors.As(err, &e) || e.Timeout() != (c.reason == "timed out") {
				t.Errorf("%#v: Timeout() = %v", e, e.Timeout())
			}
			t.Logf("%s: %v", c.name, err)
		})
	}
}

func TestTargetDropsQueryUserAndFragment(t *testing.T) {
	for raw, want := range map[string]string{
		"https://user:pw@contoso.sharepoint.com/sites/x/download.aspx?tempauth=" + secret + "#frag": "contoso.sharepoint.com/sites/x/download.aspx",
		"http://127.0.0.1:8080/cgi-bin/message/custom/send?access_token=" + secret:                  "127.0.0.1:8080/cgi-bin/message/custom/send",
		"%zz?" + secret: "(an unreadable URL)",
	} {
		if got := scrub.URL(raw); got != want {
			t.Errorf("URL(%q) = %q; want %q", raw, got, want)
		}
	}
	// Without the request, the method and URL come from the *url.Error, still without the query.
	_, raw := http.Get("http://127.0.0.1:1/cgi-bin/token?secret=" + secret)
	if got, ok := scrub.Find(fmt.Errorf("a library: %w", raw)); !ok || got.Error() != "GET 127.0.0.1:1/cgi-bin/token: connection refused" {
		t.Errorf("Find = %v, %v", got, ok)
	}
	if _, ok := scrub.Find(errors.New("no transport here")); ok {
		t.Error("Find found a transport failure in a plain error")
	}
	if err := scrub.Request(nil, nil); err != nil {
		t.Errorf("Request(nil, nil) = %v", err)
	}
}

func TestTextDropsQueriesFromEveryURL(t *testing.T) {
	for in, want := range map[string]string{
		`wechat: Get "http://api.weixin.qq.com/cgi-bin/token?appid=wx1&secret=` + secret + `": EOF`:                              `wechat: Get "http://api.weixin.qq.com/cgi-bin/token": EOF`,
		"teams:https://u:p@contoso.sharepoint.com/a/download.aspx?tempauth=" + secret + "#x and https://b.example/c?d=" + secret: "teams:https://contoso.sharepoint.com/a/download.aspx and https://b.example/c",
		"no URL here?": "no URL here?",
		"":             "",
	} {
		if got := scrub.Text(in); got != want {
			t.Errorf("Text(%q) = %q; want %q", in, got, want)
		}
	}
}
