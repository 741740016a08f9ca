package wechat

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wxteams/wxteams/bridge"
)

// Ingest is what the callback hands pushes to (bridge.Engine).
type Ingest interface {
	Connect(ctx context.Context, in bridge.Connect) (bridge.Result, error)
	CustomerWrites(ctx context.Context, in bridge.Inbound) (bridge.Result, error)
	Unsubscribe(ctx context.Context, contact bridge.OpenID, dedupeKey string) error
	RecordCustomerEvent(ctx context.Context, in bridge.CustomerEvent) error
}

var _ Ingest = (*bridge.Engine)(nil)

// CallbackConfig configures the callback endpoint.
type CallbackConfig struct {
	AppID      string // the Official Account's AppID, checked inside every ciphertext
	OriginalID string // gh_…, checked against every push's ToUserName
	// Tokens and AESKeys: the current value first, then the previous one, accepted while WeChat
	// still signs or encrypts with it after a rotation. No AESKeys means plaintext mode.
	Tokens  []string
	AESKeys []string
	// MaxBody caps a push's size [256 KiB]; ReplayWindow is how far a push's timestamp may be from
	// now [5 min].
	MaxBody      int64
	ReplayWindow time.Duration
	// Receipts, if set, is told of every signed push and of each one then refused.
	Receipts bridge.Receipts
}

// Callback is the endpoint WeChat pushes to (GET for URL verification, POST for messages and
// events). Each push is verified, decrypted, parsed and handed to Ingest, which archives and commits
// it; only then does WeChat get its answer — "success", or an empty body in safe mode. A push that
// could not be committed gets a 503, so WeChat retries it.
type Callback struct {
	cfg     CallbackConfig
	ciphers []*Cipher
	ingest  Ingest
	clock   bridge.Clock
	log     *zap.Logger
}

// NewCallback checks the configuration and returns the endpoint.
func NewCallback(cfg CallbackConfig, ingest Ingest, clock bridge.Clock, log *zap.Logger) (*Callback, error) {
	if cfg.AppID == "" || cfg.OriginalID == "" || len(cfg.Tokens) == 0 || cfg.Tokens[0] == "" {
		return nil, errors.New("wechat callback: AppID, original id and Token are required")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 256 << 10
	}
	if cfg.ReplayWindow <= 0 {
		cfg.ReplayWindow = 5 * time.Minute
	}
	if log == nil {
		log = zap.NewNop()
	}
	cb := &Callback{cfg: cfg, ingest: ingest, clock: clock, log: log}
	for i, k := range cfg.AESKeys {
		if k == "" {
			continue
		}
		c, err := NewCipher(k, cfg.AppID)
		if err != nil {
			return nil, fmt.Errorf("wechat callback: AES key %d: %w", i+1, err)
		}
		cb.ciphers = append(cb.ciphers, c)
	}
	return cb, nil
}

// httpError is a refusal with its status; the text goes to WeChat and the log, never a secret;
// detail goes to the log only.
type httpError struct {
	status int
	msg    string
	detail string
}

func (e *httpError) Error() string { return e.msg }

func refuse(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP handles GET (URL verification) and POST (pushes).
func (cb *Callback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var (
		reply string
		err   error
	)
	switch r.Method {
	case http.MethodGet:
		reply, err = cb.verifyURL(r)
	case http.MethodPost:
		reply, err = cb.receive(r, w)
	default:
		err = refuse(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err != nil {
		status, detail := http.StatusInternalServerError, ""
		var he *httpError
		if errors.As(err, &he) {
			status, detail = he.status, he.detail
		}
		cb.log.Warn("wechat push refused", zap.Int("status", status), zap.Error(err), zap.String("detail", detail), zap.String("remote", r.RemoteAddr))
		http.Error(w, err.Error(), status)
		return
	}
	_, _ = io.WriteString(w, reply) // #nosec G705 -- text/plain: echostr or an encrypted XML reply, as WeChat requires
}

// verifyURL answers WeChat's GET: echostr back if signature, timestamp and nonce check out.
func (cb *Callback) verifyURL(r *http.Request) (string, error) {
	q := r.URL.Query()
	if err := cb.checkSignature(q.Get("signature"), q.Get("timestamp"), q.Get("nonce")); err != nil {
		return "", err
	}
	echo := q.Get("echostr")
	if echo == "" {
		return "", refuse(http.StatusBadRequest, "echostr missing")
	}
	return echo, nil
}

// checkSignature verifies the plain signature with the current or the previous token, and the
// timestamp against the replay window.
func (cb *Callback) checkSignature(sig, timestamp, nonce string) error {
	if sig == "" || timestamp == "" || nonce == "" {
		return refuse(http.StatusForbidden, "signature, timestamp and nonce are required")
	}
	ok := false
	for _, token := range cb.cfg.Tokens {
		if token != "" && VerifySignature(sig, token, timestamp, nonce) {
			ok = true
		}
	}
	if !ok {
		return refuse(http.StatusForbidden, "signature does not match")
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return refuse(http.StatusForbidden, "timestamp %q is not a number", timestamp)
	}
	if d := cb.clock.Now().Sub(time.Unix(ts, 0)); d > cb.cfg.ReplayWindow || d < -cb.cfg.ReplayWindow {
		return refuse(http.StatusForbidden, "timestamp is %s away from now, outside the %s replay window", d.Round(time.Second), cb.cfg.ReplayWindow)
	}
	return nil
}

// receive verifies, decrypts and parses a push, hands it on, and returns the reply. A push whose
// signature checks out is a receipt (CallbackConfig.Receipts); if it is then refused, that is told
// too, with the reason.
func (cb *Callback) receive(r *http.Request, w http.ResponseWriter) (reply string, err error) {
	q := r.URL.Query()
	timestamp, nonce := q.Get("timestamp"), q.Get("nonce")
	if err := cb.checkSignature(q.Get("signature"), timestamp, nonce); err != nil {
		return "", err
	}
	reason := "malformed"
	if rc := cb.cfg.Receipts; rc != nil {
		at := cb.clock.Now()
		rc.Received(bridge.ChannelWeChat, at)
		defer func() {
			if err != nil {
				rc.Refused(bridge.ChannelWeChat, reason, at)
			}
		}()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, cb.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return "", refuse(http.StatusRequestEntityTooLarge, "push larger than %d bytes", cb.cfg.MaxBody)
		}
		return "", refuse(http.StatusBadRequest, "reading the push: %v", err)
	}
	envelope, err := ParsePush(body)
	if err != nil {
		return "", refuse(http.StatusBadRequest, "%v", err)
	}
	push := envelope
	encrypted := q.Get("encrypt_type") == "aes" || envelope.Encrypt != ""
	switch {
	case encrypted && len(cb.ciphers) == 0:
		reason = "mode"
		return "", refuse(http.StatusBadRequest, "encrypted push, but no EncodingAESKey is configured (WXTEAMS_WECHAT_AES_KEY)")
	case !encrypted && len(cb.ciphers) > 0:
		// With a key configured, a plaintext push proves only knowledge of the token.
		reason = "mode"
		return "", refuse(http.StatusForbidden, "plaintext push refused: the account is configured for safe mode")
	case encrypted:
		if push, err = cb.decrypt(envelope, q.Get("msg_signature"), timestamp, nonce); err != nil {
			reason = "undecryptable"
			return "", err
		}
	}
	if err := push.Validate(); err != nil {
		return "", refuse(http.StatusBadRequest, "%v", err)
	}
	if subtle.ConstantTimeCompare([]byte(push.ToUserName), []byte(cb.cfg.OriginalID)) != 1 {
		reason = "wrong_account"
		return "", refuse(http.StatusForbidden, "push is for account %q, not this one", push.ToUserName)
	}
	if err := cb.handle(r.Context(), push); err != nil {
		if errors.Is(err, bridge.ErrInvalid) {
			reason = "invalid"
			return "", refuse(http.StatusBadRequest, "%v", err)
		}
		reason = "not_recorded"
		return "", refuse(http.StatusServiceUnavailable, "push not recorded, WeChat should retry: %v", err)
	}
	if encrypted {
		return "", nil // safe mode: an empty body, which WeChat neither shows nor retries
	}
	return "success", nil
}

// undecryptable is the one answer to a signed push that does not open: whether its padding, its
// length field, its AppID, its XML or its addressee is wrong is not told to the caller (that would
// be a padding oracle on captured pushes); the log has it.
const undecryptable = "the encrypted push does not open with this account's EncodingAESKey"

// decrypt checks msg_signature over the ciphertext with the current or previous token, decrypts
// with the current or previous key, and parses and checks the inner push (fields, addressee). Every
// failure after the signature check is the same refusal.
func (cb *Callback) decrypt(envelope *Push, msgSignature, timestamp, nonce string) (*Push, error) {
	if envelope.Encrypt == "" {
		return nil, refuse(http.StatusBadRequest, "encrypt_type=aes but the push has no Encrypt")
	}
	if msgSignature == "" {
		return nil, refuse(http.StatusForbidden, "msg_signature missing")
	}
	signed := false
	for _, token := range cb.cfg.Tokens {
		if token != "" && VerifySignature(msgSignature, token, timestamp, nonce, envelope.Encrypt) {
			signed = true
		}
	}
	if !signed {
		return nil, refuse(http.StatusForbidden, "msg_signature does not match")
	}
	var why []string
	for i, c := range cb.ciphers {
		plain, _, err := c.Decrypt(envelope.Encrypt)
		var inner *Push
		if err == nil {
			inner, err = ParsePush(plain)
		}
		if err == nil {
			err = inner.Validate()
		}
		if err == nil && subtle.ConstantTimeCompare([]byte(inner.ToUserName), []byte(cb.cfg.OriginalID)) != 1 {
			err = errors.New("the push inside is for another account")
		}
		if err == nil {
			return inner, nil
		}
		why = append(why, fmt.Sprintf("key %d: %s", i+1, openFailure(err)))
	}
	return nil, &httpError{status: http.StatusBadRequest, msg: undecryptable, detail: strings.Join(why, "; ")}
}

// openFailure names what failed in opening a push, for the log: the kind only, never the
// decrypted bytes an XML error could quote.
func openFailure(err error) string {
	for _, known := range []error{ErrBadCipher, ErrBadPadding, ErrBadLength, ErrWrongAppID} {
		if errors.Is(err, known) {
			return known.Error()
		}
	}
	if errors.Is(err, ErrMalformed) {
		return "the decrypted push is not a well-formed push"
	}
	return err.Error()
}

// handle hands a verified push to the bridge. Duplicates (WeChat's retries) are already handled.
func (cb *Callback) handle(ctx context.Context, p *Push) error {
	contact := bridge.OpenID(p.FromUserName)
	var err error
	if !p.IsEvent() {
		_, err = cb.ingest.CustomerWrites(ctx, bridge.Inbound{
			Contact: contact, Message: p.message(), ExternalID: p.MsgID,
			DedupeKey: "wechat:" + cb.cfg.AppID + ":msg:" + p.FromUserName + ":" + p.MsgID,
		})
	} else {
		key := "wechat:" + cb.cfg.AppID + ":event:" + p.FromUserName + ":" + strconv.FormatInt(p.CreateTime, 10) + ":" + p.Event + ":" + p.EventKey
		switch event := strings.ToLower(p.Event); {
		case event == "unsubscribe":
			err = cb.ingest.Unsubscribe(ctx, contact, key)
		case event == "subscribe" || event == "scan":
			if scene, ok := p.Scene(); ok {
				_, err = cb.ingest.Connect(ctx, bridge.Connect{Contact: contact, Scene: scene, Event: p.Event, DedupeKey: key})
				break
			}
			following := true
			err = cb.ingest.RecordCustomerEvent(ctx, bridge.CustomerEvent{Contact: contact, Event: p.Event, Detail: p.EventKey, Following: &following, DedupeKey: key})
		default:
			err = cb.ingest.RecordCustomerEvent(ctx, bridge.CustomerEvent{Contact: contact, Event: p.Event, Detail: p.eventDetail(), DedupeKey: key})
		}
	}
	if errors.Is(err, bridge.ErrDuplicate) {
		return nil // a retry of a push already recorded: answer as before
	}
	return err
}

// message turns a customer's message push into the bridge's Message.
func (p *Push) message() bridge.Message {
	switch p.MsgType {
	case "text":
		return bridge.TextMessage(p.Content)
	case "image":
		return bridge.Message{Type: "image", Media: &bridge.Media{Source: MediaSource(p.MediaID), Name: p.MediaID + ".jpg"}}
	case "voice":
		return bridge.Message{Type: "voice", Text: p.Recognition, Media: &bridge.Media{Source: MediaSource(p.MediaID), Name: p.MediaID + "." + strings.ToLower(p.Format)}}
	case "video", "shortvideo":
		return bridge.Message{Type: "video", Media: &bridge.Media{Source: MediaSource(p.MediaID), Name: p.MediaID + ".mp4"}}
	case "location":
		return bridge.Message{Type: "location", Text: fmt.Sprintf("📍 %s (%.6f, %.6f)", p.Label, p.LocationX, p.LocationY)}
	case "link":
		return bridge.Message{Type: "link", Text: strings.TrimSpace(p.Title + "\n" + p.Description + "\n" + p.URL)}
	}
	return bridge.Message{Type: p.MsgType, Text: "[a " + p.MsgType + " message, which wxteams does not relay]"}
}

// eventDetail summarises an event for the archive (never message content).
func (p *Push) eventDetail() string {
	switch strings.ToUpper(p.Event) {
	case "LOCATION":
		return fmt.Sprintf("%.6f,%.6f ±%.0f", p.Latitude, p.Longitude, p.Precision)
	case "TEMPLATESENDJOBFINISH":
		return "template message " + p.JobMsgID + ": " + p.Status
	}
	return p.EventKey
}

// MediaSource names WeChat media by its media_id, for bridge.Media.Source.
func MediaSource(mediaID string) string { return "wechat:" + mediaID }
