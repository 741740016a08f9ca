// Package wechatfake is a fake of the WeChat Official Account platform for tests and the sandbox:
// the API (tokens, customer-service messages, media, QR codes, typing, templates, user info) with
// WeChat's rules — the per-user window ledger, token supersession and expiry, daily quotas, media
// limits and lifetime, verbatim errcodes and errmsgs — and the pusher that calls a callback URL as
// WeChat does: signed, encrypted, retried after 5 s with the same MsgId, with duplicates and faults on
// request. It runs on a virtual clock.
//
// It behaves as ../shared/reference/wechat-api-facts.md §8 describes, so the real client, callback,
// crypto and retry code run unchanged against it. It uses package wechat's crypto to sign and
// encrypt, which is itself checked against WeChat's published vectors.
package wechatfake

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/wxteams/wxteams/bridge"
)

// Config sets the fake's account and its rules. Zero values take WeChat's current defaults.
type Config struct {
	AppID      string
	Secret     string
	OriginalID string // gh_…

	TokenTTL         time.Duration // 7200 s
	TokenGrace       time.Duration // a superseded token keeps working this long: 5 min
	ExpiredCode      int           // an expired token answers 42001 (or 40014)
	DailyTokenLimit  int           // /cgi-bin/token calls per day: 2000
	StableForceLimit int           // stable_token force_refresh per day: 20
	StableForceGap   time.Duration // between force refreshes: 30 s

	MessageQuota  int           // messages after a customer message: 5
	MessageWindow time.Duration // 48 h
	FollowQuota   int           // after a follow or scan: 3
	FollowWindow  time.Duration // 1 min

	ImageLimit       int64         // 10 MiB (set 2 MiB to model older accounts)
	MediaLife        time.Duration // 3 days
	PermanentQRLimit int           // 100,000

	// AllowedIPs, when set, is the API IP whitelist (others get 40164).
	AllowedIPs []string
}

func (c *Config) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	seti := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&c.TokenTTL, 7200*time.Second)
	set(&c.TokenGrace, 5*time.Minute)
	set(&c.StableForceGap, 30*time.Second)
	set(&c.MessageWindow, 48*time.Hour)
	set(&c.FollowWindow, time.Minute)
	set(&c.MediaLife, 72*time.Hour)
	seti(&c.ExpiredCode, 42001)
	seti(&c.DailyTokenLimit, 2000)
	seti(&c.StableForceLimit, 20)
	seti(&c.MessageQuota, 5)
	seti(&c.FollowQuota, 3)
	seti(&c.PermanentQRLimit, 100000)
	if c.ImageLimit <= 0 {
		c.ImageLimit = 10 << 20
	}
}

// WeChat is the fake platform. Its Handler serves the API; its methods act as WeChat users do.
type WeChat struct {
	cfg   Config
	clock bridge.Clock

	// OnDeliver, if set, is told of each message delivered to a user, as it is (load tests time
	// deliveries with it). It runs with the fake's lock held: it must not call the fake. Set it
	// before anything is sent, or with SetOnDeliver.
	OnDeliver func(Delivered)

	mu           sync.Mutex
	tokens       map[string]*token // classic tokens by value
	latest       string            // the newest classic token
	stable       *token            // the current stable_token
	stablePrev   *token            // the previous one, valid until it expires
	stableForced []time.Time
	tokenCalls   map[string]int // per day
	users        map[string]*User
	media        map[string]*media
	tickets      map[string]*qrTicket
	permanent    map[string]string // scene → ticket of permanent codes
	delivered    []Delivered
	faults       map[string][]Fault
	requests     map[string]int // requests per path
	msgID        int64
	pusher       *Pusher
}

type token struct {
	value      string
	expires    time.Time
	superseded time.Time // zero while current
}

type media struct {
	kind, contentType string
	data              []byte
	created           time.Time
}

type qrTicket struct {
	scene     string
	url       string
	permanent bool
	expires   time.Time
}

// User is a WeChat user as the fake knows them.
type User struct {
	OpenID    string
	Following bool
	Language  string
	UnionID   string
	// The customer-service window: what opened it, how many messages remain, until when.
	WindowKind      string // "message" or "follow"
	Remaining       int
	WindowEnds      time.Time
	lastInteraction time.Time
	typingUntil     time.Time
	subscribedAt    time.Time
	qrScene         string
}

// Delivered is a message the fake delivered to a user (customer-service, template or typing).
type Delivered struct {
	OpenID   string
	MsgType  string // text, image, template
	Text     string // text content, or the template id
	MediaID  string
	Data     []byte // image bytes
	At       time.Time
	Template map[string]string
}

// Fault is what the next request to a path gets instead of a normal answer.
type Fault struct {
	Code  int           // answer with this errcode (and its verbatim errmsg); 0 = answer normally
	Delay time.Duration // wait this long (real time) before answering
	// Reset closes the connection without an answer. With Apply, the request takes effect first
	// (a message is delivered, then the answer is lost), as when a network drops an answer.
	Reset bool
	Apply bool
}

// New returns a fake platform for one Official Account.
func New(cfg Config, clock bridge.Clock) *WeChat {
	cfg.defaults()
	return &WeChat{
		cfg: cfg, clock: clock,
		tokens: map[string]*token{}, tokenCalls: map[string]int{}, users: map[string]*User{},
		media: map[string]*media{}, tickets: map[string]*qrTicket{}, permanent: map[string]string{},
		faults: map[string][]Fault{}, requests: map[string]int{}, msgID: firstMsgID(),
	}
}

// firstMsgID starts a fake's MsgIds past any an earlier fake gave: WeChat's are unique, and
// wxteams drops a push whose MsgId it has seen, so a sandbox restarted on its database would
// otherwise lose its customers' first messages. It grows by the microsecond, faster than a fake
// hands out ids.
func firstMsgID() int64 { return 6054768590064713728 + time.Now().UnixMicro() }

// SetOnDeliver sets OnDeliver while the fake may be delivering.
func (w *WeChat) SetOnDeliver(f func(Delivered)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.OnDeliver = f
}

// Config returns the fake's configuration.
func (w *WeChat) Config() Config { return w.cfg }

// Fail makes the next requests to an API path (e.g. "/cgi-bin/message/custom/send") meet faults,
// one each, in order.
func (w *WeChat) Fail(path string, faults ...Fault) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.faults[path] = append(w.faults[path], faults...)
}

// ClearFaults drops every fault not yet used.
func (w *WeChat) ClearFaults() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.faults = map[string][]Fault{}
}

// Requests reports how many requests a path has had.
func (w *WeChat) Requests(path string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.requests[path]
}

// Delivered returns what users received, in order; with an openid, only theirs.
func (w *WeChat) Delivered(openID string) []Delivered {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Delivered
	for _, d := range w.delivered {
		if openID == "" || d.OpenID == openID {
			out = append(out, d)
		}
	}
	return out
}

// Texts returns the texts a user received (template ids for templates, "[image]" for images).
func (w *WeChat) Texts(openID string) []string {
	var out []string
	for _, d := range w.Delivered(openID) {
		switch d.MsgType {
		case "image":
			out = append(out, "[image]")
		case "template":
			out = append(out, "template:"+d.Text)
		default:
			out = append(out, d.Text)
		}
	}
	return out
}

// User returns a copy of what the fake knows of a user.
func (w *WeChat) User(openID string) (User, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	u, ok := w.users[openID]
	if !ok {
		return User{}, false
	}
	return *u, true
}

// ExpireAllTokens makes every token expire now, as if 7200 s passed.
func (w *WeChat) ExpireAllTokens() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.clock.Now()
	for _, t := range w.tokens {
		t.expires = now
	}
	if w.stable != nil {
		w.stable.expires = now
	}
}

// IssueToken mints a classic token as a call to /cgi-bin/token from elsewhere would (another
// tool sharing the AppID), superseding the current one.
func (w *WeChat) IssueToken() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mintLocked().value
}

func (w *WeChat) mintLocked() *token {
	now := w.clock.Now()
	if prev, ok := w.tokens[w.latest]; ok && prev.superseded.IsZero() {
		prev.superseded = now
	}
	t := &token{value: randomToken(), expires: now.Add(w.cfg.TokenTTL)}
	w.tokens[t.value] = t
	w.latest = t.value
	return t
}

// checkToken validates an access token: 40001 unknown or superseded beyond the grace, the
// configured code when expired.
func (w *WeChat) checkToken(value string) int {
	now := w.clock.Now()
	t, ok := w.tokens[value]
	if !ok {
		for _, st := range []*token{w.stable, w.stablePrev} {
			if st != nil && st.value == value {
				t, ok = st, true
			}
		}
	}
	switch {
	case !ok:
		return 40001
	case !now.Before(t.expires):
		return w.cfg.ExpiredCode
	case !t.superseded.IsZero() && !now.Before(t.superseded.Add(w.cfg.TokenGrace)):
		return 40001
	}
	return 0
}

// errmsgs are WeChat's verbatim messages (wechat-api-facts §4.3); the fake appends " rid: …".
var errmsgs = map[int]string{
	-1:    "system error",
	40001: "invalid credential, access_token is invalid or not latest, could get access_token by getStableAccessToken, more details at https://mmbizurl.cn/s/JtxxFh33r",
	40002: "invalid grant_type",
	40003: "invalid openid",
	40004: "invalid media type",
	40005: "invalid file type",
	40006: "invalid media size",
	40007: "invalid media_id",
	40013: "invalid appid",
	40014: "invalid access_token",
	40037: "invalid template_id",
	40052: "invalid action name",
	40053: "invalid action info, please check document",
	40125: "invalid appsecret",
	40164: "invalid ip, not in whitelist",
	41001: "access_token missing",
	42001: "access_token expired",
	43004: "require subscribe",
	44002: "empty post data",
	45002: "content size out of limit",
	45009: "reach max api daily quota limit",
	45011: "api minute-quota reach limit mustslower retry next minute",
	45015: "response out of time limit or subscription is canceled",
	45047: "out of response count limit",
	45072: "command field invalid",
	45080: "typing is allowed only within 30 seconds of an interaction with the user",
	45081: "already typing",
	47001: "data format error",
	48001: "api unauthorized",
	48002: "api forbidden for user",
}

// ErrMsg returns the fake's errmsg for a code, with a request id as WeChat appends.
func ErrMsg(code int) string {
	msg, ok := errmsgs[code]
	if !ok {
		msg = "unknown error"
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("%s rid: %s-%s-%s", msg, h[:8], h[8:16], h[16:])
}

func randomToken() string {
	var b [48]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// clientIP is the request's source address.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (w *WeChat) day() string { return w.clock.Now().UTC().Format("2006-01-02") }
