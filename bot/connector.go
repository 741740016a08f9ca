package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/internal/scrub"
)

// BotFrameworkScope is the scope of the bot's outbound tokens, whatever the app type.
const BotFrameworkScope = "https://api.botframework.com/.default"

// ConnectorConfig configures the connector client.
type ConnectorConfig struct {
	AppID      string
	Credential azcore.TokenCredential // client secret, certificate, managed or workload identity
	HTTP       *http.Client
	// AllowedHosts are the serviceUrl hosts the bot sends its token to (Teams' own); a suffix match
	// on a dot boundary, so "trafficmanager.net" allows "smba.trafficmanager.net".
	AllowedHosts []string
	// ThreadLimits are Teams' per-bot, per-conversation limits [7/1 s, 8/2 s, 60/30 s, 1800/h].
	ThreadLimits []Limit
	// TenantLimit is the global per-tenant limit [30 per second, the older, stricter figure].
	TenantLimit Limit
	// Clock times the rate limits [the system clock]; the engine's clock, so that a sandbox or test
	// clock moved forward frees the slots too.
	Clock bridge.Clock
	// MaxWait is the longest the client waits for a rate-limit slot itself; longer waits are handed
	// back as ErrDeferred, so the delivery is rescheduled without holding a delivery worker (and
	// without an archived retry: nothing was sent) [100 ms].
	MaxWait time.Duration
	// AttachmentHosts are the hosts, besides AllowedHosts, that attachments employees send are
	// fetched from: where Teams keeps files (SharePoint). "*.example.com" matches the subdomains of
	// example.com, "example.com" it and its subdomains. They never get the bot's token.
	AttachmentHosts []string
	// MaxAttachment caps the size of an attachment [10 MiB].
	MaxAttachment int64
	// InsecureLoopback lets attachments be fetched from loopback addresses, and over http from
	// loopback hosts: for tests against fakes on 127.0.0.1 only. Private and link-local addresses
	// stay refused.
	InsecureLoopback bool
}

// Limit is N operations per Per.
type Limit struct {
	N   int
	Per time.Duration
}

// Teams' documented per-thread limits for sending (teams-bot-facts §3.5).
var DefaultThreadLimits = []Limit{{7, time.Second}, {8, 2 * time.Second}, {60, 30 * time.Second}, {1800, time.Hour}}

// Connector calls the Bot Connector REST API.
type Connector struct {
	cfg     ConnectorConfig
	http    *http.Client
	files   *http.Client // attachments: dials public addresses only, redirects checked
	limiter *limiter
}

// NewConnector returns a connector client.
func NewConnector(cfg ConnectorConfig) (*Connector, error) {
	if cfg.AppID == "" || cfg.Credential == nil {
		return nil, errors.New("bot connector: an app id and a credential are required")
	}
	if len(cfg.AllowedHosts) == 0 {
		return nil, errors.New("bot connector: no allowed serviceUrl hosts")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if len(cfg.ThreadLimits) == 0 {
		cfg.ThreadLimits = DefaultThreadLimits
	}
	if cfg.TenantLimit.N == 0 {
		cfg.TenantLimit = Limit{30, time.Second}
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 100 * time.Millisecond
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.MaxAttachment <= 0 {
		cfg.MaxAttachment = 10 << 20
	}
	c := &Connector{cfg: cfg, http: cfg.HTTP, limiter: newLimiter(cfg.Clock)}
	c.files = c.attachmentClient()
	return c, nil
}

// HostAllowed reports whether a serviceUrl is one of Teams' hosts.
func (c *Connector) HostAllowed(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" && !isLoopback(u.Hostname()) {
		return false
	}
	return hostIn(u.Hostname(), c.cfg.AllowedHosts)
}

// hostIn reports whether host matches one of patterns: "*.example.com" its subdomains,
// "example.com" (or ".example.com") it and its subdomains.
func hostIn(host string, patterns []string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" {
		return false
	}
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSpace(p))
		if sub, ok := strings.CutPrefix(p, "*."); ok {
			if sub != "" && strings.HasSuffix(host, "."+sub) {
				return true
			}
			continue
		}
		p = strings.TrimPrefix(p, ".")
		if p != "" && (host == p || strings.HasSuffix(host, "."+p)) {
			return true
		}
	}
	return false
}

func isLoopback(host string) bool { return host == "127.0.0.1" || host == "localhost" || host == "::1" }

// ConnectorError is what the Bot Connector answered.
type ConnectorError struct {
	Status    int
	ErrorCode string // the error code in the body, e.g. ConversationBlockedByUser
	Message   string
	delay     time.Duration
	kind      error // the bridge sentinel it maps to, or nil
}

func (e *ConnectorError) Error() string {
	return fmt.Sprintf("bot connector: HTTP %d %s: %s", e.Status, e.ErrorCode, e.Message)
}

// Code implements bridge.ChannelError: the archive records the HTTP status.
func (e *ConnectorError) Code() int { return e.Status }

// Unwrap exposes the bridge sentinel.
func (e *ConnectorError) Unwrap() error { return e.kind }

// RetryAfter is Teams' Retry-After, or a jittered backoff.
func (e *ConnectorError) RetryAfter() time.Duration { return e.delay }

// ErrConversationGone means Teams no longer knows the conversation (404): the cached conversation
// id must be dropped and a new conversation created.
var ErrConversationGone = errors.New("teams conversation not found")

// terminal 403 codes: the employee cannot be reached until they act (teams-bot-facts §3.4).
var unreachableCodes = []string{"BotDisabledByAdmin", "BotNotInConversationRoster", "ConversationBlockedByUser", "ForbiddenOperationException", "MessageWritesBlocked"}

// classify maps an answer to the retry policy Teams documents: 429 after Retry-After; 412, 502,
// 503 and 504 with backoff and jitter; 403 codes terminal; 404 conversation gone; the rest final.
func classify(resp *http.Response, body []byte) *ConnectorError {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			SubCode string `json:"subCode"`
		} `json:"error"`
		SubCode string `json:"subCode"`
	}
	_ = json.Unmarshal(body, &e)
	ce := &ConnectorError{Status: resp.StatusCode, ErrorCode: cutText(e.Error.Code, 64), Message: cutText(e.Error.Message, 256)}
	sub := firstNonEmpty(e.Error.SubCode, e.SubCode)
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		ce.kind, ce.delay = bridge.ErrRetryLater, retryAfter(resp.Header)
		if ce.delay == 0 {
			ce.delay = jitter(2 * time.Second)
		}
	case http.StatusPreconditionFailed, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		ce.kind, ce.delay = bridge.ErrRetryLater, jitter(2*time.Second)
	case http.StatusForbidden:
		if slices.Contains(unreachableCodes, ce.ErrorCode) || slices.Contains(unreachableCodes, sub) {
			ce.kind = bridge.ErrRecipientGone
		}
	case http.StatusNotFound:
		ce.kind = ErrConversationGone
	}
	return ce
}

// cutText shortens what Teams answered to at most n bytes (on a UTF-8 boundary): it is archived.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// retryAfter reads Retry-After as seconds or an HTTP date.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// jitter spreads base by ±20 %, so retries from many lanes do not arrive together.
func jitter(base time.Duration) time.Duration {
	return time.Duration(float64(base) * (0.8 + 0.4*rand.Float64())) // #nosec G404 -- retry jitter, not a secret
}

// do sends one authenticated request to a serviceUrl and decodes the answer into out.
func (c *Connector) do(ctx context.Context, method, serviceURL, path, tenantID string, in, out any) error {
	if !c.HostAllowed(serviceURL) {
		return fmt.Errorf("bot connector: serviceUrl %q is not one of the allowed Teams hosts; the bot token is not sent there", scrub.URL(serviceURL))
	}
	if wait, ok := c.limiter.reserve(tenantID, c.cfg.TenantLimit, c.cfg.MaxWait); !ok {
		return &ConnectorError{Status: http.StatusTooManyRequests, ErrorCode: "TenantLimit", Message: "over the per-tenant rate limit", kind: bridge.ErrDeferred, delay: wait}
	} else if wait > 0 {
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
	tok, err := c.cfg.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{BotFrameworkScope}})
	if err != nil {
		return fmt.Errorf("bot connector: token: %w", errors.Join(CredentialError(err), bridge.ErrRetryLater))
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(serviceURL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("bot connector: the request to %s could not be built", scrub.URL(serviceURL))
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// Teams has no idempotency key either, but a repeated notice harms less than a lost
		// one: deliveries to employees are retried.
		return fmt.Errorf("bot connector: %w", errors.Join(scrub.Request(req, err), bridge.ErrRetryLater))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return classify(resp, answer)
	}
	if out != nil && len(bytes.TrimSpace(answer)) > 0 {
		if err := json.Unmarshal(answer, out); err != nil {
			return fmt.Errorf("bot connector: answer: %w", err)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// resourceResponse is the Bot Connector's answer to a send.
type resourceResponse struct {
	ID string `json:"id"`
}

// Send posts an activity to a conversation, within the conversation's rate limits, and returns
// the activity id Teams gave it.
func (c *Connector) Send(ctx context.Context, serviceURL, tenantID, conversationID string, a *Activity) (string, error) {
	if wait, ok := c.limiter.reserveAll(conversationID, c.cfg.ThreadLimits, c.cfg.MaxWait); !ok {
		return "", &ConnectorError{Status: http.StatusTooManyRequests, ErrorCode: "ThreadLimit", Message: "over the conversation's rate limit", kind: bridge.ErrDeferred, delay: wait}
	} else if wait > 0 {
		if err := sleep(ctx, wait); err != nil {
			return "", err
		}
	}
	var r resourceResponse
	err := c.do(ctx, http.MethodPost, serviceURL, "/v3/conversations/"+url.PathEscape(conversationID)+"/activities", tenantID, a, &r)
	return r.ID, err
}

// Update replaces an activity the bot sent.
func (c *Connector) Update(ctx context.Context, serviceURL, tenantID, conversationID, activityID string, a *Activity) error {
	return c.do(ctx, http.MethodPut, serviceURL, "/v3/conversations/"+url.PathEscape(conversationID)+"/activities/"+url.PathEscape(activityID), tenantID, a, nil)
}

// CreateConversation opens (or finds) the bot's personal chat with a user, for proactive messages,
// and returns its conversation id.
func (c *Connector) CreateConversation(ctx context.Context, serviceURL, tenantID, userID string) (string, error) {
	body := map[string]any{
		"bot": map[string]string{"id": "28:" + c.cfg.AppID}, "members": []map[string]string{{"id": userID}},
		"channelData": map[string]any{"tenant": map[string]string{"id": tenantID}}, "tenantId": tenantID, "isGroup": false,
	}
	if wait, ok := c.limiter.reserveAll("create:"+userID, c.cfg.ThreadLimits, c.cfg.MaxWait); !ok {
		return "", &ConnectorError{Status: http.StatusTooManyRequests, ErrorCode: "ThreadLimit", kind: bridge.ErrDeferred, delay: wait}
	} else if wait > 0 {
		if err := sleep(ctx, wait); err != nil {
			return "", err
		}
	}
	var r resourceResponse
	if err := c.do(ctx, http.MethodPost, serviceURL, "/v3/conversations", tenantID, body, &r); err != nil {
		return "", err
	}
	if r.ID == "" {
		return "", errors.New("bot connector: CreateConversation answered without an id")
	}
	return r.ID, nil
}

// ErrAttachmentRefused means an attachment was not fetched, and will not be: its address is not
// one Teams serves files from, it redirects elsewhere, it resolves to a private address, or it is
// too large.
var ErrAttachmentRefused = errors.New("attachment refused")

func attachmentRefused(format string, args ...any) error {
	return fmt.Errorf("bot: %w: %s", ErrAttachmentRefused, fmt.Sprintf(format, args...))
}

// Download fetches an attachment a user sent, from Teams' own hosts only: the serviceUrl hosts
// (inline images, which need the bot's token) and the attachment hosts (file download URLs, which
// carry their own authorization and get no token). Redirects are followed only to those hosts
// (at most 3, and the token only to serviceUrl hosts), over https, and every connection goes to a
// public address (checked when dialling, so DNS cannot point an allowed name inside). limit caps
// the size (0: the configured MaxAttachment). Errors name hosts, never the URL (download URLs
// carry credentials).
func (c *Connector) Download(ctx context.Context, rawURL string, limit int64) ([]byte, string, error) {
	if limit <= 0 || limit > c.cfg.MaxAttachment {
		limit = c.cfg.MaxAttachment
	}
	u, err := url.Parse(rawURL)
	if err != nil || !u.IsAbs() {
		return nil, "", attachmentRefused("the attachment's address is not an absolute URL")
	}
	withToken, err := c.attachmentTarget(u)
	if err != nil {
		return nil, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", attachmentRefused("the attachment's address is not a valid URL")
	}
	if withToken {
		tok, err := c.cfg.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{BotFrameworkScope}})
		if err != nil {
			return nil, "", fmt.Errorf("bot: no token to download the attachment: %w", errors.Join(CredentialError(err), bridge.ErrRetryLater))
		}
		req.Header.Set("Authorization", "Bearer "+tok.Token)
	}
	host := truncate(u.Hostname(), 100)
	resp, err := c.files.Do(req)
	if err != nil {
		if errors.Is(err, ErrAttachmentRefused) {
			var refused *refusedTarget
			if errors.As(err, &refused) {
				return nil, "", refused.err
			}
			return nil, "", attachmentRefused("%s is or resolves to a private, loopback or link-local address", host)
		}
		return nil, "", fmt.Errorf("bot: the attachment could not be downloaded from %s: %w", host, bridge.ErrRetryLater)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return nil, "", fmt.Errorf("bot: attachment download: HTTP %d: %w", resp.StatusCode, bridge.ErrRetryLater)
		}
		return nil, "", fmt.Errorf("bot: attachment download: HTTP %d", resp.StatusCode)
	}
	if resp.ContentLength > limit {
		return nil, "", attachmentRefused("the attachment is larger than %d MB", limit>>20)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, "", fmt.Errorf("bot: the attachment download from %s broke off: %w", host, bridge.ErrRetryLater)
	}
	if int64(len(data)) > limit {
		return nil, "", attachmentRefused("the attachment is larger than %d MB", limit>>20)
	}
	return data, resp.Header.Get("Content-Type"), nil
}

// attachmentTarget checks an attachment address (the first or a redirect's): https (http only to
// a loopback host with InsecureLoopback), no credentials in it, a host of AllowedHosts (which get
// the bot's token) or AttachmentHosts (which do not).
func (c *Connector) attachmentTarget(u *url.URL) (withToken bool, err error) {
	host := u.Hostname()
	switch {
	case u.User != nil:
		return false, attachmentRefused("the attachment's address holds credentials")
	case u.Scheme == "https":
	case u.Scheme == "http" && c.cfg.InsecureLoopback && isLoopback(host):
	default:
		return false, attachmentRefused("the attachment's address is not https")
	}
	withToken = hostIn(host, c.cfg.AllowedHosts)
	if !withToken && !hostIn(host, c.cfg.AttachmentHosts) {
		return false, attachmentRefused("%s is not a host Teams serves files from (WXTEAMS_BOT_SERVICEURL_ALLOW, WXTEAMS_BOT_ATTACHMENT_HOSTS)", truncate(host, 100))
	}
	return withToken, nil
}

// refusedTarget carries a redirect's refusal through the HTTP client.
type refusedTarget struct{ err error }

func (r *refusedTarget) Error() string { return r.err.Error() }
func (r *refusedTarget) Unwrap() error { return r.err }

// attachmentClient is the HTTP client for attachments: no proxy (the address dialled is the one
// checked), only public addresses dialled, redirects checked as the first address is, the token
// dropped on the way to a host that must not get it.
func (c *Connector) attachmentClient() *http.Client {
	var base *http.Transport
	if t, ok := c.http.Transport.(*http.Transport); ok && t != nil {
		base = t.Clone() // keeps the TLS configuration (tests trust their fakes' certificates)
	} else {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: publicAddressesOnly(c.cfg.InsecureLoopback)}
	base.Proxy, base.DialContext, base.DialTLSContext = nil, dialer.DialContext, nil
	timeout := c.http.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &http.Client{Transport: base, Timeout: timeout, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) > 3 {
			return &refusedTarget{attachmentRefused("the attachment's address redirects more than 3 times")}
		}
		withToken, err := c.attachmentTarget(req.URL)
		if err != nil {
			return &refusedTarget{err}
		}
		if !withToken {
			req.Header.Del("Authorization")
		}
		return nil
	}}
}

// Addresses no attachment is fetched from, besides loopback, private (RFC 1918, fc00::/7),
// link-local, multicast and unspecified ones.
var nonPublicPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, broadcast
	netip.MustParsePrefix("fec0::/10"),     // site-local
	netip.MustParsePrefix("100::/64"),      // discard
}

// publicAddressesOnly is a net.Dialer Control function refusing connections to non-public
// addresses (loopback allowed with loopbackOK). It sees the address actually dialled, after DNS.
func publicAddressesOnly(loopbackOK bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return ErrAttachmentRefused
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return ErrAttachmentRefused
		}
		ip = ip.WithZone("").Unmap()
		if ip.IsLoopback() {
			if loopbackOK {
				return nil
			}
			return ErrAttachmentRefused
		}
		if ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
			return ErrAttachmentRefused
		}
		for _, p := range nonPublicPrefixes {
			if p.Contains(ip) {
				return ErrAttachmentRefused
			}
		}
		return nil
	}
}

// limiter keeps sliding windows of send times per key (a conversation, a tenant).
type limiter struct {
	clock bridge.Clock
	mu    sync.Mutex
	sent  map[string][]time.Time
}

func newLimiter(clock bridge.Clock) *limiter {
	return &limiter{clock: clock, sent: map[string][]time.Time{}}
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// reserve takes a slot under one limit.
func (l *limiter) reserve(key string, lim Limit, maxWait time.Duration) (time.Duration, bool) {
	return l.reserveAll("tenant:"+key, []Limit{lim}, maxWait)
}

// reserveAll takes a slot under every limit for key: it returns how long to wait first, or false
// when that is longer than maxWait (nothing is reserved then).
func (l *limiter) reserveAll(key string, limits []Limit, maxWait time.Duration) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	times := l.sent[key]
	longest := time.Duration(0)
	for _, lim := range limits {
		longest = max(longest, lim.Per)
	}
	// Forget what no window can see any more.
	for len(times) > 0 && now.Sub(times[0]) >= longest {
		times = times[1:]
	}
	wait := time.Duration(0)
	for _, lim := range limits {
		// Within the last lim.Per there may be at most lim.N-1 sends before this one.
		in := 0
		for i := len(times) - 1; i >= 0 && now.Sub(times[i]) < lim.Per; i-- {
			in++
		}
		if in >= lim.N {
			oldest := times[len(times)-lim.N]
			wait = max(wait, lim.Per-now.Sub(oldest))
		}
	}
	if wait > maxWait {
		l.sent[key] = times
		return wait, false
	}
	l.sent[key] = append(times, now.Add(wait))
	return wait, true
}
