package bot_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bot/teamsfake"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
)

const canary = "CANARYtempauth0123456789"

// hangUp is a server that closes every connection without an answer.
func hangUp(t *testing.T, tlsServer bool) *httptest.Server {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		if tcp, ok := conn.(interface{ SetLinger(int) error }); ok {
			_ = tcp.SetLinger(0) // a reset, not a close
		}
		conn.Close()
	})
	var s *httptest.Server
	if tlsServer {
		s = httptest.NewTLSServer(h)
	} else {
		s = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s
}

// ourWords fails t unless err is told in our words: none of the transport's or azidentity's text,
// no query string, no canary.
func ourWords(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	msg := err.Error()
	for _, bad := range []string{canary, "?", `Get "`, `Post "`, "RESPONSE", "troubleshoot", "https://", "http://"} {
		if strings.Contains(msg, bad) {
			t.Errorf("%s: error %q holds %q", what, msg, bad)
		}
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: error %q; want it to say %q", what, msg, w)
		}
	}
}

// A failed Bot Connector call, attachment download and token request are told in our words: the
// method, host and path, the status and Entra's codes — never the URL's query (a file download URL
// carries its authorization there), nor what the transport or azidentity wrote.
func TestConnectorFailuresInOurWords(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Now())
	entra := teamsfake.NewEntra(tenant)
	entra.AddClient(botAppID, botSecret)
	ms := httptest.NewTLSServer(teamsfake.MicrosoftHandler(entra, nil))
	t.Cleanup(ms.Close)
	entra.URL = ms.URL
	credential := func(authority, secret string) azcore.TokenCredential {
		cred, err := azidentity.NewClientSecretCredential(tenant, botAppID, secret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: authority + "/"}, Transport: ms.Client(),
				Retry: policy.RetryOptions{MaxRetries: -1}}, DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatal(err)
		}
		return cred
	}
	connector := func(cred azcore.TokenCredential) *bot.Connector {
		c, err := bot.NewConnector(bot.ConnectorConfig{AppID: botAppID, Credential: cred, AllowedHosts: []string{"smba.trafficmanager.net", "127.0.0.1"},
			HTTP: ms.Client(), Clock: clk, InsecureLoopback: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	good := connector(credential(ms.URL, botSecret))
	gone := hangUp(t, false)
	activity := &bot.Activity{Type: "message", Text: "hello"}

	_, err := good.Send(ctx, gone.URL+"/teams/", tenant, "a:conv", activity)
	ourWords(t, "send to a connector that hangs up", err, "bot connector: POST "+strings.TrimPrefix(gone.URL, "http://")+"/teams/v3/conversations/a:conv/activities: connection ")
	if !errors.Is(err, bridge.ErrRetryLater) {
		t.Errorf("a send that got no answer is not retried: %v", err)
	}

	_, err = connector(credential(ms.URL, "wrong-secret")).Send(ctx, gone.URL+"/teams/", tenant, "a:conv", activity)
	ourWords(t, "send with a secret Entra refuses", err, "Entra ID refused the bot's token request: HTTP 400 invalid_client AADSTS7000215")

	closed := hangUp(t, true)
	_, err = connector(credential(closed.URL, botSecret)).Send(ctx, gone.URL+"/teams/", tenant, "a:conv", activity)
	ourWords(t, "send while Entra hangs up", err, "Entra ID did not answer the bot's token request")
	if !errors.Is(err, bridge.ErrRetryLater) {
		t.Errorf("a send without a token is not retried: %v", err)
	}

	// SharePoint download URLs carry their authorization in the query string.
	files := hangUp(t, true)
	_, _, err = good.Download(ctx, files.URL+"/sites/x/_layouts/15/download.aspx?UniqueId=1&tempauth="+canary, 1<<20)
	ourWords(t, "download from a host that hangs up", err, "could not be downloaded from 127.0.0.1")
	_, _, err = good.Download(ctx, "http://contoso.sharepoint.com/download.aspx?tempauth="+canary, 1<<20)
	ourWords(t, "download over plain http", err, "the attachment's address is not https")
	_, _, err = good.Download(ctx, "https://contoso.sharepoint.com/%zz?tempauth="+canary, 1<<20)
	ourWords(t, "download from a URL that does not parse", err, "not an absolute URL")

	// Teams' own answer is kept, but cut short: it is archived.
	long := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":{"code":"BadArgument","message":"` + strings.Repeat("x", 100000) + `"}}`))
	}))
	t.Cleanup(long.Close)
	_, err = good.Send(ctx, long.URL+"/teams/", tenant, "a:conv", activity)
	if err == nil || len(err.Error()) > 400 || !strings.Contains(err.Error(), "HTTP 400 BadArgument") {
		t.Errorf("a long answer from Teams = %d bytes of error", len(err.Error()))
	}
}
