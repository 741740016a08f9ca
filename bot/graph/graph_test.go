package graph_test

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
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bot/graph"
	"github.com/wxteams/wxteams/bot/teamsfake"
	"github.com/wxteams/wxteams/bridge/clock"
)

const (
	tenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	botAppID = "c9e8c047-2a74-40a2-b28a-b162d5f5327c"
	appID    = "b1c2d3e4-0000-4000-8000-000000000001"
	userID   = "7faf8ab2-3d56-4244-b585-20c8a42ed2b8"
)

// The real msgraph-sdk-go and azidentity against the fake Entra and Graph, over TLS.
func TestInstallAppThroughGraph(t *testing.T) {
	clk := clock.System{}
	entra := teamsfake.NewEntra(tenant)
	entra.AddClient(botAppID, "bot-secret")
	issuer := teamsfake.NewIssuer(teamsfake.BotFrameworkIssuer, clk, "msteams")
	teams := teamsfake.New(botAppID, issuer, entra, clk)
	var botCalls int
	botSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { botCalls++ }))
	defer botSrv.Close()
	teams.BotEndpoint, teams.URL = botSrv.URL, "https://smba.example/teams/"
	teams.AddUser(userID, "Megan Bowen", tenant)
	g := teamsfake.NewGraph(entra, teams, appID)
	ms := httptest.NewTLSServer(teamsfake.MicrosoftHandler(entra, g))
	defer ms.Close()
	entra.URL = ms.URL

	cred, err := azidentity.NewClientSecretCredential(tenant, botAppID, "bot-secret", &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: ms.URL + "/"}, Transport: ms.Client()},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	inst, err := graph.New(graph.Config{Credential: cred, BaseURL: ms.URL + "/v1.0", TeamsAppID: appID, Transport: ms.Client().Transport})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	chat, err := inst.InstallApp(ctx, userID)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := teams.User(userID)
	if chat == "" || chat != u.ConversationID || !g.Installed(userID) {
		t.Errorf("InstallApp = %q; want the user's chat %q", chat, u.ConversationID)
	}
	if botCalls != 2 {
		t.Errorf("the bot got %d activities; want installationUpdate and conversationUpdate", botCalls)
	}
	// Installing again answers 409, which counts as installed.
	again, err := inst.InstallApp(ctx, userID)
	if err != nil || again != chat {
		t.Errorf("second InstallApp = %q, %v; want the same chat (409 is success)", again, err)
	}
	if g.Requests != 2 {
		t.Errorf("install requests = %d; want 2", g.Requests)
	}
	if _, err := inst.InstallApp(ctx, "00000000-0000-0000-0000-00000000dead"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("install for an unknown user = %v; want a 404", err)
	}
	// Users are found by object id or user principal name; an unknown one is bot.ErrNoSuchUser.
	teams.SetUPN(userID, "megan.bowen@contoso.example")
	for _, id := range []string{"Megan.Bowen@contoso.example", userID} {
		if u, err := inst.LookupUser(ctx, id); err != nil || u != (bot.DirectoryUser{ID: userID, Name: "Megan Bowen", Email: "megan.bowen@contoso.example"}) {
			t.Errorf("LookupUser(%s) = %+v, %v", id, u, err)
		}
	}
	if _, err := inst.LookupUser(ctx, "nobody@contoso.example"); !errors.Is(err, bot.ErrNoSuchUser) {
		t.Errorf("LookupUser(nobody) = %v; want ErrNoSuchUser", err)
	}
	// Tokens come from the fake Entra and are cached by azidentity.
	if entra.Requests != 1 {
		t.Errorf("token requests = %d; want 1 (cached)", entra.Requests)
	}
	if _, err := graph.New(graph.Config{Credential: cred, BaseURL: "http://graph.example/v1.0", TeamsAppID: appID}); err == nil {
		t.Error("a plain-http Graph base URL was accepted")
	}
}

// A failed install is told in our words — Graph unreachable, Entra refusing the bot's secret —
// never with the request's URL or azidentity's and the transport's own text.
func TestInstallFailuresInOurWords(t *testing.T) {
	entra := teamsfake.NewEntra(tenant)
	entra.AddClient(botAppID, "bot-secret")
	ms := httptest.NewTLSServer(teamsfake.MicrosoftHandler(entra, nil))
	defer ms.Close()
	entra.URL = ms.URL
	gone := httptest.NewTLSServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()
	install := func(secret, base string) error {
		cred, err := azidentity.NewClientSecretCredential(tenant, botAppID, secret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: ms.URL + "/"}, Transport: ms.Client()},
			DisableInstanceDiscovery: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		inst, err := graph.New(graph.Config{Credential: cred, BaseURL: base, TeamsAppID: appID, Transport: ms.Client().Transport})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = inst.InstallApp(ctx, userID)
		return err
	}
	for _, c := range []struct {
		what, secret, base, want string
	}{
		{"Graph unreachable", "bot-secret", goneURL + "/v1.0", "graph: install the Teams app for " + userID + ": POST " + strings.TrimPrefix(goneURL, "https://") + "/v1.0/users/" + userID + "/teamwork/installedApps: connection refused"},
		{"Entra refuses the secret", "wrong-secret", ms.URL + "/v1.0", "graph: install the Teams app for " + userID + ": Entra ID refused the bot's token request: HTTP 400 invalid_client AADSTS7000215"},
	} {
		err := install(c.secret, c.base)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: error %q; want %q", c.what, err, c.want)
		}
	}
}
