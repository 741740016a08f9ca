package main

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
)

// Config is everything wxteams reads from its environment (DESIGN §6). Each field names its
// variable; loadConfig validates them all and reports every problem at once.
type Config struct {
	Listen         string // WXTEAMS_LISTEN: public listener
	InternalListen string // WXTEAMS_INTERNAL_LISTEN: /metrics and /debug/pprof, never public
	DatabaseURL    string // WXTEAMS_DATABASE_URL: sqlite:PATH or postgres://…
	DBConnections  int    // WXTEAMS_DB_CONNECTIONS: PostgreSQL connections the steps share
	PublicURL      string // WXTEAMS_PUBLIC_URL: external https base URL
	AutoMigrate    bool   // WXTEAMS_AUTO_MIGRATE: serve migrates the database at start
	PolicyFile     string // WXTEAMS_POLICY_FILE: the firm's policy as JSON over the defaults
	LogLevel       string // WXTEAMS_LOG_LEVEL: debug, info, warn, error
	LogFormat      string // WXTEAMS_LOG_FORMAT: json or console
	ShutdownGrace  time.Duration

	WeChat WeChatConfig
	Bot    BotConfig

	AdminOpenIDURL string // WXTEAMS_ADMIN_OPENID_URL
	ArchiveKey     []byte // WXTEAMS_ARCHIVE_KEY: 32 bytes, base64
	// ArchiveKeyPrevious still unwraps data keys wrapped before a key-encryption key rotation,
	// until `wxteams keys rewrap` has rewrapped them.
	ArchiveKeyPrevious []byte        // WXTEAMS_ARCHIVE_KEY_PREVIOUS
	SigningKey         []byte        // WXTEAMS_SIGNING_KEY: Ed25519 seed, 32 bytes, base64
	CheckpointEvery    time.Duration // WXTEAMS_CHECKPOINT_EVERY: how often serve signs a checkpoint
	SMTPURL            string        // WXTEAMS_SMTP_URL: smtp://user:pass@host:587 (STARTTLS) or smtps://host:465
	SMTPFrom           string        // WXTEAMS_SMTP_FROM: envelope sender of mailed exports
	ExportDir          string        // WXTEAMS_EXPORT_DIR: where the compliance API writes exports (shared by replicas)
	PurgeEvery         time.Duration // WXTEAMS_PURGE_EVERY: how often serve runs the retention purge
	// ExportRetention is how long export folders stay in ExportDir before serve removes them
	// (archived); 0 keeps them for ever.
	ExportRetention time.Duration // WXTEAMS_EXPORT_RETENTION

	// DeliveryOverdue is how long a delivery may wait (pending or being sent) before the daily
	// completeness report lists it as a gap.
	DeliveryOverdue time.Duration // WXTEAMS_DELIVERY_OVERDUE
	// StallAfter is how long live chats may go without inbound traffic before serve calls the
	// bridge stalled; 0 never does.
	StallAfter time.Duration // WXTEAMS_STALL_AFTER

	// Insecure are the settings serve refuses unless explicitly allowed (startup.go).
	Insecure Insecure

	Policy bridge.Policy // loaded from PolicyFile, or the defaults
}

// WeChatConfig is the Official Account.
type WeChatConfig struct {
	AppID      string // WXTEAMS_WECHAT_APPID
	Secret     string // WXTEAMS_WECHAT_SECRET
	Token      string // WXTEAMS_WECHAT_TOKEN
	AESKey     string // WXTEAMS_WECHAT_AES_KEY: EncodingAESKey; empty = plaintext mode
	OriginalID string // WXTEAMS_WECHAT_ORIGINAL_ID: gh_…
	APIBase    string // WXTEAMS_WECHAT_API_BASE
	// During a rotation in the WeChat console, pushes signed or encrypted with the previous Token
	// or EncodingAESKey are still accepted.
	PreviousToken  string // WXTEAMS_WECHAT_TOKEN_PREVIOUS
	PreviousAESKey string // WXTEAMS_WECHAT_AES_KEY_PREVIOUS
	ClassicToken   bool   // WXTEAMS_WECHAT_CLASSIC_TOKEN=1: /cgi-bin/token instead of stable_token
}

// Insecure are explicit opt-ins to settings `serve` otherwise refuses at start; each is logged at
// every start. They exist for tests and for networks the operator has closed by other means.
type Insecure struct {
	// PlaintextCallback allows WeChat's plaintext mode (no WXTEAMS_WECHAT_AES_KEY), whose signature
	// does not cover the body.
	PlaintextCallback bool // WXTEAMS_INSECURE_PLAINTEXT_CALLBACK=1
	// Transport allows http:// endpoints and PostgreSQL without TLS (sslmode disable, allow or
	// prefer) on hosts other than loopback.
	Transport bool // WXTEAMS_INSECURE_TRANSPORT=1
	// InternalListen allows the internal listener (metrics, pprof) on an address beyond loopback.
	InternalListen bool // WXTEAMS_INSECURE_INTERNAL_LISTEN=1
}

// BotConfig is the Teams bot registration.
type BotConfig struct {
	AppID           string   // WXTEAMS_BOT_APP_ID
	TenantID        string   // WXTEAMS_BOT_TENANT_ID
	ClientSecret    string   // WXTEAMS_BOT_CLIENT_SECRET
	ClientCert      string   // WXTEAMS_BOT_CLIENT_CERT: PEM path
	ManagedIdentity bool     // WXTEAMS_BOT_MANAGED_IDENTITY=1
	OpenIDURL       string   // WXTEAMS_BOT_OPENID_URL
	ServiceURLAllow []string // WXTEAMS_BOT_SERVICEURL_ALLOW
	GraphBase       string   // WXTEAMS_GRAPH_BASE
	// TenantRPS is how many sends per second the bot allows itself per tenant (Teams' limit is
	// 30 or 50 depending on the documentation's age; raise it only if Microsoft raised yours).
	TenantRPS int // WXTEAMS_BOT_TENANT_RPS
	// ProactiveURL is the serviceUrl for conversations the bot starts itself (sovereign clouds have
	// their own).
	ProactiveURL string // WXTEAMS_BOT_PROACTIVE_URL
	// TeamsAppID is the app's id in the organisation's Teams app catalog; with it, enabling an
	// employee installs the app for them through Graph.
	TeamsAppID string // WXTEAMS_TEAMS_APP_ID
	// AttachmentHosts are where attachments employees send may be fetched from besides the
	// serviceUrl hosts: the tenant's file hosts (they never get the bot's token).
	AttachmentHosts []string // WXTEAMS_BOT_ATTACHMENT_HOSTS
	// EntraCallers are the applications (client ids) whose Entra-issued tokens of the bot's tenant
	// are accepted on /api/messages besides Bot Connector tokens.
	EntraCallers []string // WXTEAMS_BOT_ENTRA_CALLERS
}

// Configured reports whether any channel is configured; without one, wxteams runs the sandbox.
func (c *Config) Configured() bool { return c.WeChat.AppID != "" || c.Bot.AppID != "" }

// Defaults from DESIGN §6.
const (
	defaultListen         = ":8080"
	defaultInternalListen = "127.0.0.1:9090"
	defaultDatabaseURL    = "sqlite:wxteams.db"
	defaultWeChatAPIBase  = "https://api.weixin.qq.com"
	defaultBotOpenIDURL   = "https://login.botframework.com/v1/.well-known/openidconfiguration"
	defaultGraphBase      = "https://graph.microsoft.com/v1.0"
	defaultProactiveURL   = "https://smba.trafficmanager.net/teams/"
)

var defaultServiceURLHosts = []string{
	"smba.trafficmanager.net",
	"smba.onyx.prod.teams.trafficmanager.net",
	"smba.infra.gcc.teams.microsoft.com",
	"smba.infra.gov.teams.microsoft.us",
	"smba.infra.dod.teams.microsoft.us",
}

// defaultAttachmentHosts are the file hosts Teams hands the bot download URLs on (SharePoint and
// OneDrive for Business: <tenant>.sharepoint.com, <tenant>-my.sharepoint.com; .us in GCC High and
// DoD) and the host of inline images in messages' HTML (asm.skype.com).
var defaultAttachmentHosts = []string{"*.sharepoint.com", "*.sharepoint.us", "*.asm.skype.com"}

var (
	reAppID      = regexp.MustCompile(`^wx[0-9a-f]{16}$`)
	reOriginalID = regexp.MustCompile(`^gh_[0-9a-f]{12}$`)
	reToken      = regexp.MustCompile(`^[A-Za-z0-9]{3,32}$`)
	reAESKey     = regexp.MustCompile(`^[A-Za-z0-9]{43}$`)
	reGUID       = regexp.MustCompile(`^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$`)
)

// loadConfig reads the configuration from getenv (os.Getenv in production) and validates it.
func loadConfig(getenv func(string) string) (*Config, error) {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	boolean := func(name string, def bool) bool {
		v := get(name, "")
		if v == "" {
			return def
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad(name, "%q is not a boolean (use 1/0, true/false)", v)
		}
		return b
	}
	c := &Config{
		Listen:         get("WXTEAMS_LISTEN", defaultListen),
		InternalListen: get("WXTEAMS_INTERNAL_LISTEN", defaultInternalListen),
		DatabaseURL:    get("WXTEAMS_DATABASE_URL", defaultDatabaseURL),
		PublicURL:      get("WXTEAMS_PUBLIC_URL", ""),
		AutoMigrate:    boolean("WXTEAMS_AUTO_MIGRATE", true),
		PolicyFile:     get("WXTEAMS_POLICY_FILE", ""),
		LogLevel:       get("WXTEAMS_LOG_LEVEL", "info"),
		LogFormat:      get("WXTEAMS_LOG_FORMAT", "json"),
		WeChat: WeChatConfig{
			AppID:      get("WXTEAMS_WECHAT_APPID", ""),
			Secret:     get("WXTEAMS_WECHAT_SECRET", ""),
			Token:      get("WXTEAMS_WECHAT_TOKEN", ""),
			AESKey:     get("WXTEAMS_WECHAT_AES_KEY", ""),
			OriginalID: get("WXTEAMS_WECHAT_ORIGINAL_ID", ""),
			APIBase:    get("WXTEAMS_WECHAT_API_BASE", defaultWeChatAPIBase),

			PreviousToken:  get("WXTEAMS_WECHAT_TOKEN_PREVIOUS", ""),
			PreviousAESKey: get("WXTEAMS_WECHAT_AES_KEY_PREVIOUS", ""),
			ClassicToken:   boolean("WXTEAMS_WECHAT_CLASSIC_TOKEN", false),
		},
		Bot: BotConfig{
			AppID:           get("WXTEAMS_BOT_APP_ID", ""),
			TenantID:        get("WXTEAMS_BOT_TENANT_ID", ""),
			ClientSecret:    get("WXTEAMS_BOT_CLIENT_SECRET", ""),
			ClientCert:      get("WXTEAMS_BOT_CLIENT_CERT", ""),
			ManagedIdentity: boolean("WXTEAMS_BOT_MANAGED_IDENTITY", false),
			OpenIDURL:       get("WXTEAMS_BOT_OPENID_URL", defaultBotOpenIDURL),
			GraphBase:       get("WXTEAMS_GRAPH_BASE", defaultGraphBase),
			ProactiveURL:    get("WXTEAMS_BOT_PROACTIVE_URL", defaultProactiveURL),
			TenantRPS:       30,
			TeamsAppID:      get("WXTEAMS_TEAMS_APP_ID", ""),
		},
		AdminOpenIDURL: get("WXTEAMS_ADMIN_OPENID_URL", ""),
		Policy:         bridge.DefaultPolicy(),
	}
	conns := get("WXTEAMS_DB_CONNECTIONS", strconv.Itoa(sqlstore.DefaultConnections))
	if n, err := strconv.Atoi(conns); err != nil || n < 2 || n > 1000 {
		bad("WXTEAMS_DB_CONNECTIONS", "%q is not a number of connections between 2 and 1000", conns)
	} else {
		c.DBConnections = n
	}
	grace := get("WXTEAMS_SHUTDOWN_GRACE", "30s")
	var err error
	if c.ShutdownGrace, err = time.ParseDuration(grace); err != nil || c.ShutdownGrace <= 0 {
		bad("WXTEAMS_SHUTDOWN_GRACE", "%q is not a positive duration such as 30s", grace)
	}

	for name, addr := range map[string]string{"WXTEAMS_LISTEN": c.Listen, "WXTEAMS_INTERNAL_LISTEN": c.InternalListen} {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			bad(name, "%q is not a listen address such as :8080 or 127.0.0.1:9090", addr)
		}
	}
	if c.Listen == c.InternalListen && !strings.HasSuffix(c.Listen, ":0") {
		bad("WXTEAMS_INTERNAL_LISTEN", "must differ from WXTEAMS_LISTEN: metrics and pprof must never be on the public listener")
	}
	if !strings.HasPrefix(c.DatabaseURL, "sqlite:") && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		bad("WXTEAMS_DATABASE_URL", "want sqlite:PATH or postgres://user@host/db, got %q", redact(c.DatabaseURL))
	}
	if c.PublicURL != "" {
		checkURL(bad, "WXTEAMS_PUBLIC_URL", c.PublicURL, true)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("WXTEAMS_LOG_LEVEL", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "console":
	default:
		bad("WXTEAMS_LOG_FORMAT", "%q is not json or console", c.LogFormat)
	}

	if w := c.WeChat; w.AppID != "" {
		if !reAppID.MatchString(w.AppID) {
			bad("WXTEAMS_WECHAT_APPID", "%q is not an AppID (wx followed by 16 hex digits)", w.AppID)
		}
		if w.Secret == "" {
			bad("WXTEAMS_WECHAT_SECRET", "required with WXTEAMS_WECHAT_APPID (the AppSecret from the Official Account console)")
		}
		if !reToken.MatchString(w.Token) {
			bad("WXTEAMS_WECHAT_TOKEN", "required: the callback Token, 3 to 32 letters and digits, as set in the Official Account console")
		}
		if w.AESKey != "" && !reAESKey.MatchString(w.AESKey) {
			bad("WXTEAMS_WECHAT_AES_KEY", "the EncodingAESKey must be 43 letters and digits (it is %d characters)", len(w.AESKey))
		}
		if w.PreviousToken != "" && !reToken.MatchString(w.PreviousToken) {
			bad("WXTEAMS_WECHAT_TOKEN_PREVIOUS", "the previous Token must be 3 to 32 letters and digits")
		}
		if w.PreviousAESKey != "" && !reAESKey.MatchString(w.PreviousAESKey) {
			bad("WXTEAMS_WECHAT_AES_KEY_PREVIOUS", "the previous EncodingAESKey must be 43 letters and digits")
		}
		if w.PreviousAESKey != "" && w.AESKey == "" {
			bad("WXTEAMS_WECHAT_AES_KEY_PREVIOUS", "set without WXTEAMS_WECHAT_AES_KEY: a previous key only makes sense while rotating to a new one")
		}
		if !reOriginalID.MatchString(w.OriginalID) {
			bad("WXTEAMS_WECHAT_ORIGINAL_ID", "required: the account's original id, gh_ followed by 12 hex digits")
		}
		checkURL(bad, "WXTEAMS_WECHAT_API_BASE", w.APIBase, false)
	} else if w.Secret != "" || w.Token != "" || w.AESKey != "" || w.OriginalID != "" {
		bad("WXTEAMS_WECHAT_APPID", "required: other WXTEAMS_WECHAT_* variables are set without it")
	}

	if b := c.Bot; b.AppID != "" {
		if !reGUID.MatchString(b.AppID) {
			bad("WXTEAMS_BOT_APP_ID", "%q is not a Microsoft App ID (a GUID)", b.AppID)
		}
		if b.TenantID == "" {
			bad("WXTEAMS_BOT_TENANT_ID", "required with WXTEAMS_BOT_APP_ID: the Entra tenant of the single-tenant bot")
		}
		creds := 0
		for _, set := range []bool{b.ClientSecret != "", b.ClientCert != "", b.ManagedIdentity} {
			if set {
				creds++
			}
		}
		if creds != 1 {
			bad("WXTEAMS_BOT_CLIENT_SECRET", "set exactly one of WXTEAMS_BOT_CLIENT_SECRET, WXTEAMS_BOT_CLIENT_CERT or WXTEAMS_BOT_MANAGED_IDENTITY=1 (found %d)", creds)
		}
		if b.ClientCert != "" {
			if _, err := os.Stat(b.ClientCert); err != nil {
				bad("WXTEAMS_BOT_CLIENT_CERT", "cannot read the certificate: %v", err)
			}
		}
		checkURL(bad, "WXTEAMS_BOT_OPENID_URL", b.OpenIDURL, false)
		checkURL(bad, "WXTEAMS_GRAPH_BASE", b.GraphBase, true)
		checkURL(bad, "WXTEAMS_BOT_PROACTIVE_URL", b.ProactiveURL, false)
		if v := get("WXTEAMS_BOT_TENANT_RPS", ""); v != "" {
			if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 10000 {
				bad("WXTEAMS_BOT_TENANT_RPS", "%q is not a number of sends per second between 1 and 10000", v)
			} else {
				c.Bot.TenantRPS = n
			}
		}
		if b.TeamsAppID != "" && !reGUID.MatchString(b.TeamsAppID) {
			bad("WXTEAMS_TEAMS_APP_ID", "%q is not a Teams app id (a GUID from the app catalog)", b.TeamsAppID)
		}
	}
	c.Bot.ServiceURLAllow = defaultServiceURLHosts
	if v := get("WXTEAMS_BOT_SERVICEURL_ALLOW", ""); v != "" {
		c.Bot.ServiceURLAllow = nil
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				c.Bot.ServiceURLAllow = append(c.Bot.ServiceURLAllow, h)
			}
		}
	}
	c.Bot.AttachmentHosts = defaultAttachmentHosts
	if v := get("WXTEAMS_BOT_ATTACHMENT_HOSTS", ""); v != "" {
		c.Bot.AttachmentHosts = nil
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				c.Bot.AttachmentHosts = append(c.Bot.AttachmentHosts, h)
			}
		}
	}
	for _, id := range strings.Split(get("WXTEAMS_BOT_ENTRA_CALLERS", ""), ",") {
		if id = strings.TrimSpace(id); id == "" {
			continue
		} else if !reGUID.MatchString(id) {
			bad("WXTEAMS_BOT_ENTRA_CALLERS", "%q is not an application (client) id: a comma-separated list of GUIDs is expected", id)
		} else {
			c.Bot.EntraCallers = append(c.Bot.EntraCallers, id)
		}
	}
	if c.AdminOpenIDURL == "" && c.Bot.TenantID != "" {
		c.AdminOpenIDURL = "https://login.microsoftonline.com/" + c.Bot.TenantID + "/v2.0/.well-known/openid-configuration"
	}
	if c.AdminOpenIDURL != "" {
		checkURL(bad, "WXTEAMS_ADMIN_OPENID_URL", c.AdminOpenIDURL, false)
	}
	c.ArchiveKey = key32(bad, "WXTEAMS_ARCHIVE_KEY", get("WXTEAMS_ARCHIVE_KEY", ""))
	c.SigningKey = key32(bad, "WXTEAMS_SIGNING_KEY", get("WXTEAMS_SIGNING_KEY", ""))
	c.SMTPURL, c.SMTPFrom = get("WXTEAMS_SMTP_URL", ""), get("WXTEAMS_SMTP_FROM", "")
	c.ExportDir = get("WXTEAMS_EXPORT_DIR", "exports")
	retention := get("WXTEAMS_EXPORT_RETENTION", "30d")
	if c.ExportRetention, err = parseDays(retention); err != nil || c.ExportRetention < 0 || (c.ExportRetention > 0 && c.ExportRetention < time.Hour) {
		bad("WXTEAMS_EXPORT_RETENTION", "%q is not a duration of at least 1h such as 30d or 720h, or 0 to keep exports for ever", retention)
	}
	overdue := get("WXTEAMS_DELIVERY_OVERDUE", "15m")
	if c.DeliveryOverdue, err = time.ParseDuration(overdue); err != nil || c.DeliveryOverdue < time.Minute {
		bad("WXTEAMS_DELIVERY_OVERDUE", "%q is not a duration of at least 1m, such as 15m", overdue)
	}
	stall := get("WXTEAMS_STALL_AFTER", "30m")
	if c.StallAfter, err = time.ParseDuration(stall); err != nil || c.StallAfter < 0 || (c.StallAfter > 0 && c.StallAfter < time.Minute) {
		bad("WXTEAMS_STALL_AFTER", "%q is not a duration of at least 1m, such as 30m, or 0 to never call the bridge stalled", stall)
	}
	c.Insecure = Insecure{
		PlaintextCallback: boolean("WXTEAMS_INSECURE_PLAINTEXT_CALLBACK", false),
		Transport:         boolean("WXTEAMS_INSECURE_TRANSPORT", false),
		InternalListen:    boolean("WXTEAMS_INSECURE_INTERNAL_LISTEN", false),
	}
	if c.SMTPURL != "" {
		if _, err := parseSMTPURL(c.SMTPURL); err != nil {
			bad("WXTEAMS_SMTP_URL", "%v", err)
		}
		if _, err := mail.ParseAddress(c.SMTPFrom); err != nil {
			bad("WXTEAMS_SMTP_FROM", "required with WXTEAMS_SMTP_URL: the address exports are mailed from (%v)", err)
		}
	}
	c.ArchiveKeyPrevious = key32(bad, "WXTEAMS_ARCHIVE_KEY_PREVIOUS", get("WXTEAMS_ARCHIVE_KEY_PREVIOUS", ""))
	if c.ArchiveKeyPrevious != nil && c.ArchiveKey == nil {
		bad("WXTEAMS_ARCHIVE_KEY_PREVIOUS", "set without WXTEAMS_ARCHIVE_KEY: the previous key only unwraps while rotating to a new one")
	}
	for name, d := range map[string]*time.Duration{"WXTEAMS_CHECKPOINT_EVERY": &c.CheckpointEvery, "WXTEAMS_PURGE_EVERY": &c.PurgeEvery} {
		def := map[string]string{"WXTEAMS_CHECKPOINT_EVERY": "1h", "WXTEAMS_PURGE_EVERY": "24h"}[name]
		v := get(name, def)
		if *d, err = time.ParseDuration(v); err != nil || *d < time.Minute {
			bad(name, "%q is not a duration of at least 1m, such as 1h", v)
		}
	}

	if c.PolicyFile != "" {
		data, err := os.ReadFile(c.PolicyFile)
		if err != nil {
			bad("WXTEAMS_POLICY_FILE", "%v", err)
		} else if c.Policy, err = bridge.ParsePolicy(data); err != nil {
			bad("WXTEAMS_POLICY_FILE", "%s: %v", c.PolicyFile, err)
		}
	}
	if len(errs) > 0 {
		return nil, &ConfigError{Problems: errs}
	}
	return c, nil
}

// ConfigError lists every problem found in the configuration.
type ConfigError struct{ Problems []error }

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("configuration is not valid:")
	for _, p := range e.Problems {
		b.WriteString("\n  - " + p.Error())
	}
	b.WriteString("\nSee the Configuration section of README.md.")
	return b.String()
}

// Unwrap lets errors.Is see each problem.
func (e *ConfigError) Unwrap() []error { return e.Problems }

// checkURL reports a variable that is not an absolute http(s) URL (https when httpsOnly).
func checkURL(bad func(string, string, ...any), name, raw string, httpsOnly bool) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "":
		bad(name, "%q is not an absolute URL", raw)
	case httpsOnly && u.Scheme != "https":
		bad(name, "%q must be an https URL", raw)
	case u.Scheme != "https" && u.Scheme != "http":
		bad(name, "%q must be an http(s) URL", raw)
	}
}

// key32 decodes a base64 32-byte key; empty is allowed (the feature using it is off).
func key32(bad func(string, string, ...any), name, v string) []byte {
	if v == "" {
		return nil
	}
	k, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(k) != 32 {
		bad(name, "must be 32 bytes in standard base64 (e.g. from `openssl rand -base64 32`)")
		return nil
	}
	return k
}

// parseDays reads a Go duration such as 720h, whole days such as 30d, or 0.
func parseDays(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*366 {
			return 0, fmt.Errorf("%q is not a number of days", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	if v == "0" {
		return 0, nil
	}
	return time.ParseDuration(v)
}

// redact hides a password in a URL.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	return raw
}
