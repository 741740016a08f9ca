package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/lib/pq"
)

// This file is what wxteams checks before it starts: which command the bare `wxteams` runs, the
// sandbox's loopback-only listeners and Host check, its keys, and the weak settings `serve` refuses.

// sandboxDatabaseURL is the sandbox's own database, the only one the bare `wxteams` starts it on.
const sandboxDatabaseURL = "sqlite:wxteams-sandbox.db"

// deploymentVariables are set only where wxteams is deployed; with any of them set, the bare
// `wxteams` does not start the sandbox (a channel variable is missing, not a sandbox wanted).
var deploymentVariables = []string{
	"WXTEAMS_ARCHIVE_KEY", "WXTEAMS_ARCHIVE_KEY_PREVIOUS", "WXTEAMS_SIGNING_KEY", "WXTEAMS_PUBLIC_URL",
	"WXTEAMS_WECHAT_SECRET", "WXTEAMS_WECHAT_TOKEN", "WXTEAMS_WECHAT_AES_KEY", "WXTEAMS_WECHAT_ORIGINAL_ID",
	"WXTEAMS_BOT_TENANT_ID", "WXTEAMS_BOT_CLIENT_SECRET", "WXTEAMS_BOT_CLIENT_CERT", "WXTEAMS_BOT_MANAGED_IDENTITY",
	"WXTEAMS_TEAMS_APP_ID",
}

// bareCommand is the command `wxteams` runs without one: serve when a channel is configured; the
// sandbox only when nothing says this is a deployment (the database is the sandbox's own and no
// deployment variable is set); otherwise an error naming the missing channel variables.
func bareCommand(getenv func(string) string) (string, error) {
	set := func(name string) bool { return strings.TrimSpace(getenv(name)) != "" }
	if set("WXTEAMS_WECHAT_APPID") || set("WXTEAMS_BOT_APP_ID") {
		return "serve", nil
	}
	var signs []string
	if db := strings.TrimSpace(getenv("WXTEAMS_DATABASE_URL")); db != "" && db != sandboxDatabaseURL {
		signs = append(signs, "WXTEAMS_DATABASE_URL names a database other than the sandbox's own ("+sandboxDatabaseURL+")")
	}
	for _, name := range deploymentVariables {
		if set(name) {
			signs = append(signs, name+" is set")
		}
	}
	if len(signs) == 0 {
		return "sandbox", nil
	}
	return "", fmt.Errorf(`no channel is configured, so there is nothing to serve: set WXTEAMS_WECHAT_APPID (the Official Account, with WXTEAMS_WECHAT_SECRET, WXTEAMS_WECHAT_TOKEN, WXTEAMS_WECHAT_AES_KEY and WXTEAMS_WECHAT_ORIGINAL_ID) and/or WXTEAMS_BOT_APP_ID (the Teams bot, with WXTEAMS_BOT_TENANT_ID and one credential); see the Configuration section of README.md.
Without a channel wxteams starts the sandbox, which has no sign-in, but only on the sandbox's own database, and this environment is a deployment's: %s.
To try wxteams, run "wxteams sandbox" in an environment without a deployment's variables`, strings.Join(signs, "; "))
}

// loopbackListen reports whether a listen address binds loopback only (localhost or a loopback IP).
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && loopbackName(host)
}

// loopbackName reports whether a host name is localhost or a loopback IP address.
func loopbackName(host string) bool {
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// checkSandboxListeners refuses sandbox listeners beyond loopback: the sandbox has no sign-in.
func checkSandboxListeners(cfg *Config) error {
	var errs []error
	for _, l := range []struct{ name, addr string }{{"WXTEAMS_LISTEN (--listen)", cfg.Listen}, {"WXTEAMS_INTERNAL_LISTEN", cfg.InternalListen}} {
		if !loopbackListen(l.addr) {
			errs = append(errs, fmt.Errorf("%s: the sandbox has no sign-in and listens on loopback only, not on %q; use 127.0.0.1:PORT or [::1]:PORT", l.name, l.addr))
		}
	}
	if len(errs) > 0 {
		return &ConfigError{Problems: errs}
	}
	return nil
}

// loopbackHostOnly answers 421 to requests whose Host is not a loopback name, so that a web page
// cannot reach the sandbox through a DNS name it rebinds to 127.0.0.1.
func loopbackHostOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !loopbackName(host) {
			http.Error(w, "the wxteams sandbox answers only requests addressed to localhost, 127.0.0.1 or [::1]; open it as http://localhost:PORT", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// sandboxKeyMark begins every key the sandbox makes (the other 24 bytes are random), so that serve
// recognises a sandbox key and refuses it.
var sandboxKeyMark = []byte("wxsandbx")

// publishedKeys are the SHA-256 fingerprints of keys that are public: sandbox keys once committed
// to the wxteams repository (they stay in its history). serve refuses them.
var publishedKeys = map[string]bool{
	"90687099ed1fe076fafeeed947d1e9933e296965c1563c9230f7ce90100a2496": true,
	"fc2f96e0a1e03fe70934a6d59f8179f8c00092bd60492d1ff97f2c19cfda6eae": true,
	"4b7bbc2319d737075cdc09e1e3124c24e5f1026ddf88947ed2a6d7cf93e7e15d": true,
	"1cc64c80a5d25b3d7cc01f33ab50572098aefd2eef3b33b506765b2641575fd6": true,
}

// weakKey says why a 32-byte key is not fit for serve, or "" if it looks random. The tests are
// ones a key from `openssl rand` fails with a probability below 1e-13.
func weakKey(k []byte) string {
	if bytes.HasPrefix(k, sandboxKeyMark) {
		return "it is a sandbox key (the sandbox writes its keys to a .keys.json file beside its database)"
	}
	sum := sha256.Sum256(k)
	if publishedKeys[hex.EncodeToString(sum[:])] {
		return "it was published in the wxteams repository"
	}
	for period := 1; period <= len(k)/2; period++ {
		if bytes.Equal(k[period:], k[:len(k)-period]) {
			if period == 1 {
				return "all its bytes are equal"
			}
			return fmt.Sprintf("it repeats a pattern of %d bytes", period)
		}
	}
	text := true
	distinct := map[byte]bool{}
	for _, b := range k {
		distinct[b] = true
		text = text && b >= 0x20 && b < 0x7f
	}
	if text {
		return "it is text, not random bytes (a password is not a key)"
	}
	if len(distinct) < 16 {
		return fmt.Sprintf("it has only %d different byte values, where a random key has about 30", len(distinct))
	}
	return ""
}

// minTokenLength is the shortest WeChat Token serve accepts. WeChat allows 3 to 32 letters and
// digits; the Token is the only secret in a push's signature, and a short one is found by trying.
const minTokenLength = 16

// weakToken says why a WeChat Token is too weak to sign pushes, or "".
func weakToken(token string) string {
	distinct := map[rune]bool{}
	for _, r := range token {
		distinct[r] = true
	}
	switch {
	case len(token) < minTokenLength:
		return fmt.Sprintf("it has %d characters, fewer than %d", len(token), minTokenLength)
	case len(distinct) < 8:
		return fmt.Sprintf("it has only %d different characters", len(distinct))
	}
	return ""
}

// plainHTTP reports whether raw is an http:// URL to a host other than loopback.
func plainHTTP(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && strings.EqualFold(u.Scheme, "http") && !loopbackName(u.Hostname())
}

// postgresWithoutTLS describes a PostgreSQL connection that may travel in the clear to a host other
// than loopback ("" if it cannot), and warns when TLS does not verify the server. The URL is read
// as lib/pq reads it, PG* environment variables included; its default sslmode is require.
func postgresWithoutTLS(dbURL string) (problem, warning string) {
	if !strings.HasPrefix(dbURL, "postgres://") && !strings.HasPrefix(dbURL, "postgresql://") {
		return "", ""
	}
	cfg, err := pq.NewConfig(dbURL)
	if err != nil {
		return "", "" // sqlstore.Open reports it
	}
	type target struct {
		host string
		addr netip.Addr
	}
	targets := []target{{cfg.Host, cfg.Hostaddr}}
	for _, m := range cfg.Multi {
		targets = append(targets, target{m.Host, m.Hostaddr})
	}
	var remote []string
	for _, t := range targets {
		switch {
		case t.addr.IsValid():
			if !t.addr.Unmap().IsLoopback() {
				remote = append(remote, t.addr.String())
			}
		case t.host == "" || filepath.IsAbs(t.host) || strings.HasPrefix(t.host, "@") || loopbackName(t.host):
		default:
			remote = append(remote, t.host)
		}
	}
	if len(remote) == 0 {
		return "", ""
	}
	switch cfg.SSLMode {
	case pq.SSLModeDisable, pq.SSLModeAllow, pq.SSLModePrefer:
		return fmt.Sprintf("connects to PostgreSQL on %s with sslmode=%s, so the archive may cross the network unencrypted", strings.Join(remote, ", "), cfg.SSLMode), ""
	case pq.SSLModeRequire, "": // lib/pq's default
		return "", fmt.Sprintf("WXTEAMS_DATABASE_URL: sslmode=require encrypts the connection to %s but does not verify the server's certificate; sslmode=verify-full (with sslrootcert) does", strings.Join(remote, ", "))
	}
	return "", ""
}

// serveSafety checks the settings serve refuses: weak or sandbox keys and Tokens (always), and
// plaintext callbacks, cleartext transport and an exposed internal listener unless the matching
// WXTEAMS_INSECURE_* variable allows them. It reports every refusal at once; when none, it returns
// the warnings serve logs at start, one per opt-in used.
func serveSafety(cfg *Config) (warnings []string, err error) {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	allowed := func(optIn bool, name, optInName, what string) {
		if optIn {
			warnings = append(warnings, fmt.Sprintf("%s: %s, allowed by %s=1", name, what, optInName))
			return
		}
		bad(name, "%s; set %s=1 only to allow it on purpose", what, optInName)
	}

	for _, k := range []struct {
		name string
		key  []byte
	}{{"WXTEAMS_ARCHIVE_KEY", cfg.ArchiveKey}, {"WXTEAMS_SIGNING_KEY", cfg.SigningKey}} {
		if why := weakKey(k.key); k.key != nil && why != "" {
			bad(k.name, "not a key to protect a real archive with: %s. Make one with `openssl rand -base64 32` and keep it in your secret store", why)
		}
	}
	if cfg.ArchiveKey != nil && bytes.Equal(cfg.ArchiveKey, cfg.SigningKey) {
		bad("WXTEAMS_SIGNING_KEY", "the same key as WXTEAMS_ARCHIVE_KEY; use a separate key for each (`openssl rand -base64 32`)")
	}
	if why := weakKey(cfg.ArchiveKeyPrevious); cfg.ArchiveKeyPrevious != nil && why != "" {
		warnings = append(warnings, "WXTEAMS_ARCHIVE_KEY_PREVIOUS: "+why+"; run `wxteams keys rewrap` and remove it")
	}

	if w := cfg.WeChat; w.AppID != "" {
		if why := weakToken(w.Token); why != "" {
			bad("WXTEAMS_WECHAT_TOKEN", "too weak to sign pushes: %s. Set a Token of 32 random letters and digits in the Official Account console (基本配置) and here", why)
		}
		if why := weakToken(w.PreviousToken); w.PreviousToken != "" && why != "" {
			warnings = append(warnings, "WXTEAMS_WECHAT_TOKEN_PREVIOUS: "+why+"; remove it once the console has the new Token")
		}
		if w.AESKey == "" {
			allowed(cfg.Insecure.PlaintextCallback, "WXTEAMS_WECHAT_AES_KEY", "WXTEAMS_INSECURE_PLAINTEXT_CALLBACK",
				"not set, so pushes arrive in plaintext mode, whose signature does not cover the message (a captured signature carries any other message). Switch the Official Account to safe mode (安全模式) and set its EncodingAESKey here")
		}
	}
	urls := []struct{ name, url string }{{"WXTEAMS_ADMIN_OPENID_URL", cfg.AdminOpenIDURL}}
	if cfg.WeChat.AppID != "" {
		urls = append(urls, struct{ name, url string }{"WXTEAMS_WECHAT_API_BASE", cfg.WeChat.APIBase})
	}
	if cfg.Bot.AppID != "" {
		urls = append(urls, struct{ name, url string }{"WXTEAMS_BOT_OPENID_URL", cfg.Bot.OpenIDURL}, struct{ name, url string }{"WXTEAMS_BOT_PROACTIVE_URL", cfg.Bot.ProactiveURL})
	}
	for _, u := range urls {
		if plainHTTP(u.url) {
			allowed(cfg.Insecure.Transport, u.name, "WXTEAMS_INSECURE_TRANSPORT", fmt.Sprintf("%q is plain http to a host that is not loopback; use https", redact(u.url)))
		}
	}
	if problem, warning := postgresWithoutTLS(cfg.DatabaseURL); problem != "" {
		allowed(cfg.Insecure.Transport, "WXTEAMS_DATABASE_URL", "WXTEAMS_INSECURE_TRANSPORT", problem+"; set sslmode=verify-full (with sslrootcert) or require")
	} else if warning != "" {
		warnings = append(warnings, warning)
	}
	if !loopbackListen(cfg.InternalListen) {
		allowed(cfg.Insecure.InternalListen, "WXTEAMS_INTERNAL_LISTEN", "WXTEAMS_INSECURE_INTERNAL_LISTEN",
			fmt.Sprintf("%q is reachable beyond this host, and it serves metrics and pprof without sign-in; use 127.0.0.1:PORT, or keep it behind a network policy", cfg.InternalListen))
	}
	if len(errs) > 0 {
		return nil, &ConfigError{Problems: errs}
	}
	return warnings, nil
}

// errSandboxDatabase refuses serve a database the sandbox created.
var errSandboxDatabase = errors.New("WXTEAMS_DATABASE_URL is a sandbox database (it holds the sandbox's fake tenant, and its content was sealed with sandbox keys): give serve a database of its own")
