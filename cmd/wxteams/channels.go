package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bot/graph"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/wechat"
	"github.com/wxteams/wxteams/console"
)

// This file builds the channel adapters from the configuration.

// newWeChatClient is the WeChat API client; its access token is shared through the database.
func newWeChatClient(cfg *Config, store *sqlstore.Store, clk bridge.Clock, log *zap.Logger) (*wechat.Client, error) {
	host, _ := os.Hostname()
	return wechat.NewClient(wechat.ClientConfig{
		AppID:        cfg.WeChat.AppID,
		Secret:       cfg.WeChat.Secret,
		APIBase:      cfg.WeChat.APIBase,
		ClassicToken: cfg.WeChat.ClassicToken,
		Owner:        fmt.Sprintf("%s/%d", host, os.Getpid()),
	}, store, store, clk, log)
}

// newWeChatCallback is the endpoint WeChat pushes to, handing pushes to the engine.
func newWeChatCallback(cfg *Config, engine *bridge.Engine, receipts bridge.Receipts, clk bridge.Clock, log *zap.Logger) (*wechat.Callback, error) {
	w := cfg.WeChat
	keys := []string{}
	if w.AESKey != "" {
		keys = append(keys, w.AESKey)
	}
	if w.PreviousAESKey != "" {
		keys = append(keys, w.PreviousAESKey)
	}
	tokens := []string{w.Token}
	if w.PreviousToken != "" {
		tokens = append(tokens, w.PreviousToken)
	}
	return wechat.NewCallback(wechat.CallbackConfig{AppID: w.AppID, OriginalID: w.OriginalID, Tokens: tokens, AESKeys: keys, Receipts: receipts}, engine, clk, log)
}

// newBotCredential is the bot's identity for outbound calls: a client secret, a certificate, or
// (WXTEAMS_BOT_MANAGED_IDENTITY=1) a workload identity where Kubernetes provides one
// (AZURE_FEDERATED_TOKEN_FILE), else a user-assigned managed identity whose client id is the bot's
// app id. The authority follows AZURE_AUTHORITY_HOST; instance discovery is off when that is not a
// Microsoft host, so nothing asks login.microsoftonline.com first.
func newBotCredential(cfg *Config, getenv func(string) string, transport http.RoundTripper) (azcore.TokenCredential, error) {
	b := cfg.Bot
	opts := azcore.ClientOptions{}
	if transport != nil {
		opts.Transport = &http.Client{Transport: transport, Timeout: 30 * time.Second}
	}
	host := getenv("AZURE_AUTHORITY_HOST")
	discoveryOff := host != "" && !isMicrosoftAuthority(host)
	if host != "" {
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: host}
	}
	switch {
	case b.ClientSecret != "":
		return azidentity.NewClientSecretCredential(b.TenantID, b.AppID, b.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: discoveryOff})
	case b.ClientCert != "":
		data, err := os.ReadFile(b.ClientCert)
		if err != nil {
			return nil, fmt.Errorf("WXTEAMS_BOT_CLIENT_CERT: %w", err)
		}
		certs, key, err := azidentity.ParseCertificates(data, nil)
		if err != nil {
			return nil, fmt.Errorf("WXTEAMS_BOT_CLIENT_CERT: %w", err)
		}
		return azidentity.NewClientCertificateCredential(b.TenantID, b.AppID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: discoveryOff})
	case getenv("AZURE_FEDERATED_TOKEN_FILE") != "":
		return azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: opts, ClientID: b.AppID, TenantID: b.TenantID, TokenFilePath: getenv("AZURE_FEDERATED_TOKEN_FILE"),
			DisableInstanceDiscovery: discoveryOff})
	default:
		return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts, ID: azidentity.ClientID(b.AppID)})
	}
}

func isMicrosoftAuthority(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	h := strings.ToLower(u.Hostname())
	for _, suffix := range []string{"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn", "login.partner.microsoftonline.cn"} {
		if h == suffix {
			return true
		}
	}
	return false
}

// teamsChannel is the bot: the sender for the engine, and (once the engine exists) the endpoint and
// the admin API.
type teamsChannel struct {
	cfg       *Config
	store     *sqlstore.Store // archives refused activities
	client    *http.Client
	connector *bot.Connector
	sender    *bot.Sender
	installer bot.Installer   // nil without WXTEAMS_TEAMS_APP_ID
	directory bot.Directory   // Graph's users, to enable employees by e-mail address
	receipts  bridge.Receipts // told of the activities received and refused
}

// newTeamsChannel builds the bot's outbound side. transport carries every call to Microsoft (nil =
// the default; tests give one that trusts their fakes' certificate).
func newTeamsChannel(cfg *Config, getenv func(string) string, transport http.RoundTripper, store *sqlstore.Store, clk bridge.Clock) (*teamsChannel, error) {
	cred, err := newBotCredential(cfg, getenv, transport)
	if err != nil {
		return nil, fmt.Errorf("bot credential: %w", err)
	}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	connector, err := bot.NewConnector(bot.ConnectorConfig{AppID: cfg.Bot.AppID, Credential: cred, HTTP: client, AllowedHosts: cfg.Bot.ServiceURLAllow,
		TenantLimit: bot.Limit{N: cfg.Bot.TenantRPS, Per: time.Second}, Clock: clk, AttachmentHosts: cfg.Bot.AttachmentHosts})
	if err != nil {
		return nil, err
	}
	t := &teamsChannel{cfg: cfg, store: store, client: client, connector: connector, sender: bot.NewSender(connector, store, cfg.Bot.TenantID, cfg.Bot.ProactiveURL)}
	g, err := graph.New(graph.Config{Credential: cred, BaseURL: cfg.Bot.GraphBase, TeamsAppID: cfg.Bot.TeamsAppID, Transport: transport})
	if err != nil {
		return nil, err
	}
	t.directory = g
	if cfg.Bot.TeamsAppID != "" {
		t.installer = g
	}
	return t, nil
}

// admin is the admin API's logic over engine (also used by `wxteams admin`); v may be nil when no
// HTTP request is to be authenticated.
func (t *teamsChannel) admin(v *bot.Validator, engine *bridge.Engine, qr bot.QRSource, log *zap.Logger) *bot.Admin {
	a := bot.NewAdmin(v, engine, t.installer, qr, log)
	a.SetProactiveServiceURL(t.cfg.Bot.ProactiveURL)
	a.SetDirectory(t.directory)
	return a
}

// routes adds /api/messages and /admin/v1 to the public router. Bot Connector keys are refreshed
// for an unknown kid at most hourly, so forged kids cannot make the bot hammer the metadata URL.
// Activities of other tenants are refused; Entra-issued tokens are accepted from
// WXTEAMS_BOT_ENTRA_CALLERS, with the tenant's keys (WXTEAMS_ADMIN_OPENID_URL).
func (t *teamsChannel) routes(r *mux.Router, engine *bridge.Engine, qr bot.QRSource, officials *bot.Validator, clk bridge.Clock, log *zap.Logger) error {
	t.sender.SetAddressBook(engine)
	validator, err := bot.NewValidator(bot.ValidatorConfig{MetadataURL: t.cfg.Bot.OpenIDURL, Issuer: bot.BotFrameworkIssuer,
		Audiences: []string{t.cfg.Bot.AppID}, HTTP: t.metadataClient(), Clock: clk, RefreshGap: time.Hour})
	if err != nil {
		return err
	}
	entra, err := bot.NewEntraActivities(bot.EntraActivityConfig{AppID: t.cfg.Bot.AppID, TenantID: t.cfg.Bot.TenantID, MetadataURL: t.cfg.AdminOpenIDURL,
		Callers: t.cfg.Bot.EntraCallers, HTTP: t.metadataClient(), Clock: clk})
	if err != nil {
		return err
	}
	if len(t.cfg.Bot.EntraCallers) > 0 {
		log.Info("Entra ID tokens of the bot's tenant are accepted on /api/messages from these applications (WXTEAMS_BOT_ENTRA_CALLERS)",
			zap.Strings("callers", t.cfg.Bot.EntraCallers))
	}
	endpoint := bot.NewEndpoint(bot.EndpointConfig{AppID: t.cfg.Bot.AppID, TenantID: t.cfg.Bot.TenantID, Entra: entra, Archive: t.store, Clock: clk, Receipts: t.receipts},
		validator, t.connector, engine, qr, log)
	r.Handle("/api/messages", endpoint).Methods(http.MethodPost)
	t.admin(officials, engine, qr, log.Named("admin")).Routes(r)
	return nil
}

// officials validates administrators' and compliance officers' Entra ID tokens: issued for the
// bot's app registration, keys from WXTEAMS_ADMIN_OPENID_URL. Why a token was refused is logged.
func (t *teamsChannel) officials(clk bridge.Clock, log *zap.Logger) (*bot.Validator, error) {
	return bot.NewValidator(bot.ValidatorConfig{MetadataURL: t.cfg.AdminOpenIDURL,
		Audiences: []string{t.cfg.Bot.AppID, "api://" + t.cfg.Bot.AppID}, HTTP: t.metadataClient(), Clock: clk, Log: log})
}

// metadataClient fetches OpenID metadata and keys, which happens in the path of a request.
func (t *teamsChannel) metadataClient() *http.Client {
	return &http.Client{Transport: t.client.Transport, Timeout: 10 * time.Second}
}

// newConsoleAuth is the console's Entra ID sign-in for real mode, with the bot's own credential
// (a client secret, a certificate, or a workload identity's federated token). It returns nil when
// the console cannot offer sign-in: no WXTEAMS_PUBLIC_URL, or a managed identity, which cannot
// redeem authorization codes. cookieKey keys the session cookies (custody.cookie).
func newConsoleAuth(cfg *Config, cookieKey []byte, getenv func(string) string, transport http.RoundTripper, clk bridge.Clock, log *zap.Logger) (*console.Auth, error) {
	b := cfg.Bot
	if cfg.PublicURL == "" {
		log.Info("console not served: set WXTEAMS_PUBLIC_URL (the redirect URI registered for the app is WXTEAMS_PUBLIC_URL/console/callback)")
		return nil, nil
	}
	var (
		cred confidential.Credential
		err  error
	)
	switch {
	case b.ClientSecret != "":
		cred, err = confidential.NewCredFromSecret(b.ClientSecret)
	case b.ClientCert != "":
		data, rerr := os.ReadFile(b.ClientCert)
		if rerr != nil {
			return nil, fmt.Errorf("WXTEAMS_BOT_CLIENT_CERT: %w", rerr)
		}
		certs, key, perr := confidential.CertFromPEM(data, "")
		if perr != nil {
			return nil, fmt.Errorf("WXTEAMS_BOT_CLIENT_CERT: %w", perr)
		}
		cred, err = confidential.NewCredFromCert(certs, key)
	case getenv("AZURE_FEDERATED_TOKEN_FILE") != "":
		file := getenv("AZURE_FEDERATED_TOKEN_FILE")
		cred = confidential.NewCredFromAssertionCallback(func(context.Context, confidential.AssertionRequestOptions) (string, error) {
			token, err := os.ReadFile(file) // #nosec G304 -- AZURE_FEDERATED_TOKEN_FILE, set by the platform
			return strings.TrimSpace(string(token)), err
		})
	default:
		log.Warn("console not served: sign-in needs a client secret, a certificate or a workload identity; a managed identity cannot redeem sign-in codes")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	host := getenv("AZURE_AUTHORITY_HOST")
	if host == "" {
		host = "https://login.microsoftonline.com/"
	}
	return console.NewAuth(console.AuthConfig{
		Authority:         strings.TrimSuffix(host, "/") + "/" + b.TenantID,
		ClientID:          b.AppID,
		Credential:        cred,
		RedirectURL:       strings.TrimSuffix(cfg.PublicURL, "/") + "/console/callback",
		CookieKey:         cookieKey,
		HTTPClient:        &http.Client{Transport: transport, Timeout: 30 * time.Second},
		InstanceDiscovery: isMicrosoftAuthority(host),
		Now:               clk.Now,
		Log:               log,
	})
}
