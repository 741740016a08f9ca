// Package graph installs the wxteams Teams app for an employee through Microsoft Graph
// (msgraph-sdk-go), so the bot can message them before they ever write to it, and looks employees
// up by user principal name (e-mail) so administrators can enable them by address.
//
// msgraph-sdk-go is generated code: its root package (GraphServiceClient) pulls in every Graph
// API, over a hundred megabytes of source that takes minutes and gigabytes to compile cold. This
// package uses only its users request builders and models, on a kiota request adapter built here,
// and only cmd/wxteams imports it. It implements bot.Installer and bot.Directory.
package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abstractions "github.com/microsoft/kiota-abstractions-go"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	az "github.com/microsoft/kiota-authentication-azure-go"
	khttp "github.com/microsoft/kiota-http-go"
	kjson "github.com/microsoft/kiota-serialization-json-go"
	ktext "github.com/microsoft/kiota-serialization-text-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/internal/scrub"
)

// Scope is the scope of Graph tokens.
const Scope = "https://graph.microsoft.com/.default"

// Config configures the installer.
type Config struct {
	Credential azcore.TokenCredential // the bot's own identity, with TeamsAppInstallation.ReadWriteSelfForUser.All and User.Read.All
	BaseURL    string                 // WXTEAMS_GRAPH_BASE, e.g. https://graph.microsoft.com/v1.0
	TeamsAppID string                 // the app's id in the organisation's app catalog; needed to install it
	// Transport carries the requests [http.DefaultTransport]; tests give one that trusts their CA.
	Transport http.RoundTripper
}

// Installer installs the Teams app for users.
type Installer struct {
	users *users.UsersRequestBuilder
	cfg   Config
}

// sdkVersion is msgraph-sdk-go's version, for Graph's SdkVersion telemetry header, as its own
// client sends it.
func sdkVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, m := range info.Deps {
			if m.Path == "github.com/microsoftgraph/msgraph-sdk-go" {
				return strings.TrimPrefix(m.Version, "v")
			}
		}
	}
	return ""
}

// New returns an installer for the Graph at cfg.BaseURL. msgraph-sdk-go only attaches tokens to
// hosts it is told of: the base URL's host is added.
func New(cfg Config) (*Installer, error) {
	if cfg.Credential == nil {
		return nil, errors.New("graph: a credential is required")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("graph: base URL %q must be an https URL", cfg.BaseURL)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	auth, err := az.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cfg.Credential, []string{Scope}, []string{u.Hostname()})
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	parent := cfg.Transport
	if parent == nil {
		parent = http.DefaultTransport
	}
	opts := msgraphcore.GraphClientOptions{GraphServiceLibraryVersion: sdkVersion()}
	hc := &http.Client{Transport: khttp.NewCustomTransportWithParentTransport(parent, msgraphcore.GetDefaultMiddlewaresWithOptions(&opts)...), Timeout: 30 * time.Second}
	// Graph answers in JSON (and plain text for $count); the factories are the adapter's own,
	// not kiota's process-wide registries.
	parsers := absser.NewParseNodeFactoryRegistry()
	parsers.ContentTypeAssociatedFactories["application/json"] = kjson.NewJsonParseNodeFactory()
	parsers.ContentTypeAssociatedFactories["text/plain"] = ktext.NewTextParseNodeFactory()
	writers := absser.NewSerializationWriterFactoryRegistry()
	writers.ContentTypeAssociatedFactories["application/json"] = kjson.NewJsonSerializationWriterFactory()
	writers.ContentTypeAssociatedFactories["text/plain"] = ktext.NewTextSerializationWriterFactory()
	adapter, err := msgraphcore.NewGraphRequestAdapterBaseWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, opts, parsers, writers, hc)
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	// The models keep their values in a backing store; serialise only what was set, as
	// GraphServiceClient does.
	adapter.EnableBackingStore(nil)
	adapter.SetBaseUrl(cfg.BaseURL)
	return &Installer{users: users.NewUsersRequestBuilderInternal(map[string]string{"baseurl": cfg.BaseURL}, adapter), cfg: cfg}, nil
}

// InstallApp installs the app in the user's personal scope (a repeat install, 409, counts as
// installed) and returns the installation's chat id.
func (i *Installer) InstallApp(ctx context.Context, userID string) (string, error) {
	if i.cfg.TeamsAppID == "" {
		return "", errors.New("graph: the Teams app's catalog id is not configured (WXTEAMS_TEAMS_APP_ID)")
	}
	apps := i.users.ByUserId(userID).Teamwork().InstalledApps()
	body := models.NewUserScopeTeamsAppInstallation()
	// The literal "@odata.bind" key: the SDK's generated "odataBind" is refused by the service
	// (msgraph-sdk-go#717).
	body.SetAdditionalData(map[string]any{"teamsApp@odata.bind": i.cfg.BaseURL + "/appCatalogs/teamsApps/" + i.cfg.TeamsAppID})
	if _, err := apps.Post(ctx, body, nil); err != nil && status(err) != http.StatusConflict {
		return "", fmt.Errorf("graph: install the Teams app for %s: %w", userID, describe(err))
	}
	filter := "teamsApp/id eq '" + strings.ReplaceAll(i.cfg.TeamsAppID, "'", "''") + "'"
	list, err := apps.Get(ctx, &users.ItemTeamworkInstalledAppsRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.ItemTeamworkInstalledAppsRequestBuilderGetQueryParameters{Expand: []string{"teamsApp"}, Filter: &filter},
	})
	if err != nil {
		return "", fmt.Errorf("graph: find the installation for %s: %w", userID, describe(err))
	}
	if len(list.GetValue()) == 0 || list.GetValue()[0].GetId() == nil {
		return "", fmt.Errorf("graph: the app is not listed as installed for %s", userID)
	}
	chat, err := apps.ByUserScopeTeamsAppInstallationId(*list.GetValue()[0].GetId()).Chat().Get(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("graph: the installation's chat for %s: %w", userID, describe(err))
	}
	if chat.GetId() == nil {
		return "", nil
	}
	return *chat.GetId(), nil
}

// LookupUser finds a user of the tenant by object id or user principal name (GET /users/{id |
// userPrincipalName}, which needs User.Read.All). A user Graph does not know is bot.ErrNoSuchUser.
func (i *Installer) LookupUser(ctx context.Context, idOrUPN string) (bot.DirectoryUser, error) {
	u, err := i.users.ByUserId(idOrUPN).Get(ctx, &users.UserItemRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: []string{"id", "displayName", "mail", "userPrincipalName"}},
	})
	if status(err) == http.StatusNotFound {
		return bot.DirectoryUser{}, bot.ErrNoSuchUser
	}
	if err != nil {
		return bot.DirectoryUser{}, fmt.Errorf("graph: look up %s: %w", idOrUPN, describe(err))
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	out := bot.DirectoryUser{ID: str(u.GetId()), Name: str(u.GetDisplayName()), Email: str(u.GetMail())}
	if out.Email == "" {
		out.Email = str(u.GetUserPrincipalName())
	}
	if out.ID == "" {
		return out, fmt.Errorf("graph: look up %s: the answer names no object id", idOrUPN)
	}
	return out, nil
}

func status(err error) int {
	var odata *odataerrors.ODataError
	if errors.As(err, &odata) {
		return odata.ResponseStatusCode
	}
	return 0
}

// describe tells a failed Graph call in our words: Graph's status, code and message; or why no
// token came from Entra ID; or the transport failure without the URL's query (scrub). Nothing
// else of the error's text is kept, as it repeats requests and answers.
func describe(err error) error {
	var (
		odata  *odataerrors.ODataError
		answer abstractions.ApiErrorable
		failed *azidentity.AuthenticationFailedError
	)
	switch {
	case errors.As(err, &odata):
		if e := odata.GetErrorEscaped(); e != nil && e.GetCode() != nil {
			msg := ""
			if e.GetMessage() != nil {
				msg = *e.GetMessage()
			}
			if len(msg) > 256 {
				msg = strings.ToValidUTF8(msg[:256], "") + "…"
			}
			return fmt.Errorf("HTTP %d %s: %s", odata.ResponseStatusCode, *e.GetCode(), msg)
		}
		return fmt.Errorf("HTTP %d", odata.ResponseStatusCode)
	case errors.As(err, &answer):
		return fmt.Errorf("HTTP %d", answer.GetStatusCode())
	case errors.As(err, &failed):
		return bot.CredentialError(err)
	}
	if e, ok := scrub.Find(err); ok {
		return e
	}
	for _, c := range []error{context.DeadlineExceeded, context.Canceled} {
		if errors.Is(err, c) {
			return c
		}
	}
	return fmt.Errorf("the request failed (%T)", err)
}
