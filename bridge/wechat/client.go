package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/internal/scrub"
)

// ClientConfig configures the API client.
type ClientConfig struct {
	AppID   string
	Secret  string
	APIBase string // https://api.weixin.qq.com, or a fake's URL
	// ClassicToken uses /cgi-bin/token instead of /cgi-bin/stable_token. stable_token is the default:
	// in normal mode it is idempotent, so a refresh elsewhere does not invalidate ours.
	ClassicToken bool
	// Owner names this process in the token lease (e.g. host and pid).
	Owner string
	// ImageLimit is the largest image WeChat accepts [10 MiB]; some accounts are held to 2 MiB.
	ImageLimit int64
	// HTTP is the HTTP client [one with a 30 s timeout].
	HTTP *http.Client
}

// MediaStore reads stored media (bridge/sqlstore implements it).
type MediaStore interface {
	MediaData(ctx context.Context, sha256 string) (*bridge.Media, []byte, error)
}

// Client calls the WeChat Official Account API. It implements the bridge's WeChat sender and media
// fetcher.
type Client struct {
	cfg    ClientConfig
	http   *http.Client
	tokens *tokens
	media  MediaStore
	clock  bridge.Clock
	log    *zap.Logger
	qrURLs sync.Map // scene → the content of its permanent QR code
}

var (
	_ bridge.WeChatSender = (*Client)(nil)
	_ bridge.MediaFetcher = (*Client)(nil)
)

// NewClient returns a client whose access token is shared through store.
func NewClient(cfg ClientConfig, store TokenStore, media MediaStore, clock bridge.Clock, log *zap.Logger) (*Client, error) {
	if cfg.AppID == "" || cfg.Secret == "" || cfg.APIBase == "" {
		return nil, errors.New("wechat client: AppID, secret and API base are required")
	}
	if _, err := url.Parse(cfg.APIBase); err != nil {
		return nil, fmt.Errorf("wechat client: API base: %w", err)
	}
	cfg.APIBase = strings.TrimRight(cfg.APIBase, "/")
	if cfg.ImageLimit <= 0 {
		cfg.ImageLimit = 10 << 20
	}
	if cfg.Owner == "" {
		cfg.Owner = "wxteams"
	}
	if log == nil {
		log = zap.NewNop()
	}
	hc := cfg.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	c := &Client{cfg: cfg, http: hc, media: media, clock: clock, log: log}
	c.tokens = &tokens{
		appID: cfg.AppID, owner: cfg.Owner, store: store, fetch: c.fetchToken, clock: clock,
		log: log, margin: 5 * time.Minute, leaseFor: 15 * time.Second,
	}
	return c, nil
}

// response is the errcode/errmsg every API answer carries.
type response struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// call makes one API request with the access token and returns the body. A token WeChat refuses
// (40001/40014/42001) is refreshed — compare-and-swap through the token authority — and the
// request made once more; WeChat refused it, so nothing happened the first time.
//
// send marks a request with an effect on the customer (a message). When such a request fails
// after it was written to the network — a timeout, a reset connection — WeChat may have delivered
// it: the error wraps bridge.ErrOutcomeUnknown and the request is never repeated. Requests that
// failed before they were written wrap bridge.ErrRetryLater.
func (c *Client) call(ctx context.Context, op string, send bool, build func(token string) (*http.Request, error)) (http.Header, []byte, error) {
	for attempt := 0; ; attempt++ {
		token, err := c.tokens.get(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("wechat %s: %w", op, errors.Join(err, bridge.ErrRetryLater))
		}
		req, err := build(token)
		if err != nil {
			// Not the error's text: a URL that does not parse is repeated in it, token and all.
			return nil, nil, fmt.Errorf("wechat %s: the request could not be built", op)
		}
		header, body, err := c.roundTrip(req, op, send)
		if err != nil {
			return nil, nil, err
		}
		var r response
		if isJSON(header, body) {
			if err := json.Unmarshal(body, &r); err != nil {
				return nil, nil, c.noAnswer(op, send, true, fmt.Errorf("answer is not JSON: %w", err))
			}
		}
		if r.ErrCode == 0 {
			return header, body, nil
		}
		apiErr := &APIError{Op: op, Code: r.ErrCode, Msg: c.redact(r.ErrMsg, token)}
		if apiErr.Kind() == KindToken && attempt == 0 {
			c.log.Info("access token refused; refreshing", zap.String("op", op), zap.Int("wechat_errcode", r.ErrCode))
			if _, err := c.tokens.invalidate(ctx, token); err != nil {
				return nil, nil, fmt.Errorf("wechat %s: %w", op, errors.Join(err, apiErr))
			}
			continue
		}
		if apiErr.Kind() == KindConfig {
			c.log.Error("WeChat reports a configuration problem", zap.String("op", op), zap.Int("wechat_errcode", r.ErrCode), zap.String("wechat_errmsg", r.ErrMsg))
		}
		return nil, nil, apiErr
	}
}

// redact takes the AppSecret and the access token out of a text WeChat answered, should it ever
// repeat them.
func (c *Client) redact(msg, token string) string {
	for _, secret := range []string{c.cfg.Secret, token} {
		if secret != "" {
			msg = strings.ReplaceAll(msg, secret, "[redacted]")
		}
	}
	return msg
}

// roundTrip sends req and reads the answer, telling apart failures before and after the request
// reached the network. A failure is told in our words (scrub): the transport's own error repeats
// the URL, whose query holds the access token, or the AppSecret in classic token mode.
func (c *Client) roundTrip(req *http.Request, op string, send bool) (http.Header, []byte, error) {
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) }}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, c.noAnswer(op, send, wrote.Load(), scrub.Request(req, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, nil, c.noAnswer(op, send, true, scrub.Request(req, err))
	}
	if resp.StatusCode != http.StatusOK {
		// WeChat answers everything with 200; anything else came from something in between.
		return nil, nil, c.noAnswer(op, send, true, fmt.Errorf("HTTP %s", resp.Status))
	}
	return resp.Header, body, nil
}

func (c *Client) noAnswer(op string, send, reached bool, err error) error {
	if send && reached {
		return fmt.Errorf("wechat %s: the request was sent but no answer came back: %w", op, errors.Join(ErrTransport, bridge.ErrOutcomeUnknown, err))
	}
	return fmt.Errorf("wechat %s: %w", op, errors.Join(ErrTransport, bridge.ErrRetryLater, err))
}

func isJSON(h http.Header, body []byte) bool {
	ct := h.Get("Content-Type")
	return strings.Contains(ct, "json") || strings.HasPrefix(ct, "text/plain") || bytes.HasPrefix(bytes.TrimSpace(body), []byte("{"))
}

// postJSON builds a POST of v to path with the token.
func (c *Client) postJSON(ctx context.Context, path string, query url.Values, v any) func(token string) (*http.Request, error) {
	return func(token string) (*http.Request, error) {
		body, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(path, token, query), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		return req, nil
	}
}

func (c *Client) get(ctx context.Context, path string, query url.Values) func(token string) (*http.Request, error) {
	return func(token string) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, c.url(path, token, query), nil)
	}
}

func (c *Client) url(path, token string, query url.Values) string {
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	if token != "" {
		q.Set("access_token", token)
	}
	return c.cfg.APIBase + path + "?" + q.Encode()
}

// fetchToken asks WeChat for an access token: stable_token (force_refresh only when asked), or the
// classic /cgi-bin/token.
func (c *Client) fetchToken(ctx context.Context, force bool) (string, time.Duration, error) {
	var req *http.Request
	var err error
	if c.cfg.ClassicToken {
		q := url.Values{"grant_type": {"client_credential"}, "appid": {c.cfg.AppID}, "secret": {c.cfg.Secret}}
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.APIBase+"/cgi-bin/token?"+q.Encode(), nil)
	} else {
		body, _ := json.Marshal(map[string]any{"grant_type": "client_credential", "appid": c.cfg.AppID, "secret": c.cfg.Secret, "force_refresh": force})
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.APIBase+"/cgi-bin/stable_token", bytes.NewReader(body))
		if req != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if err != nil {
		return "", 0, errors.New("wechat token: the request could not be built")
	}
	_, body, err := c.roundTrip(req, "token", false)
	if err != nil {
		return "", 0, err
	}
	var r struct {
		response
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", 0, fmt.Errorf("wechat token: answer is not JSON: %w", err)
	}
	if r.ErrCode != 0 {
		return "", 0, &APIError{Op: "token", Code: r.ErrCode, Msg: c.redact(r.ErrMsg, "")}
	}
	if r.AccessToken == "" || r.ExpiresIn <= 0 {
		return "", 0, errors.New("wechat token: answer has no access_token")
	}
	return r.AccessToken, time.Duration(r.ExpiresIn) * time.Second, nil
}

// CheckToken makes sure a valid access token is at hand (from memory, the shared store, or WeChat).
// Readiness probes call it; an *APIError of KindConfig means the deployment is misconfigured.
func (c *Client) CheckToken(ctx context.Context) error {
	_, err := c.tokens.get(ctx)
	return err
}

// SendWeChat delivers one message to a customer through the customer-service API (or the template
// API for template messages). A message carries text, or one image.
func (c *Client) SendWeChat(ctx context.Context, to *bridge.Contact, m *bridge.WeChatMessage) (bridge.Delivery, error) {
	openID := string(to.OpenID)
	switch {
	case m.Template != nil:
		id, payload, err := c.SendTemplate(ctx, openID, m.Template)
		return bridge.Delivery{ID: id, Payload: payload}, asDelivery(err)
	case m.Media != nil:
		if m.Type != "image" {
			return bridge.Delivery{}, fmt.Errorf("wechat: a %s cannot be sent as a customer-service message; only text and images can", m.Type)
		}
		if strings.TrimSpace(m.Text) != "" {
			return bridge.Delivery{}, errors.New("wechat: a message carries text or an image, not both; send them as two messages")
		}
		payload, err := c.SendImage(ctx, openID, m.Media)
		return bridge.Delivery{Payload: payload}, asDelivery(err)
	default:
		err := c.SendText(ctx, openID, m.Text)
		return bridge.Delivery{}, asDelivery(err)
	}
}

// SendText sends a text message to a customer.
func (c *Client) SendText(ctx context.Context, openID, text string) error {
	body := map[string]any{"touser": openID, "msgtype": "text", "text": map[string]string{"content": text}}
	_, _, err := c.call(ctx, "message/custom/send", true, c.postJSON(ctx, "/cgi-bin/message/custom/send", nil, body))
	return err
}

// SendImage uploads stored media as a temporary image and sends it to a customer. It returns the
// payload sent.
func (c *Client) SendImage(ctx context.Context, openID string, media *bridge.Media) ([]byte, error) {
	if c.media == nil {
		return nil, errors.New("wechat: no media store to read the image from")
	}
	meta, data, err := c.media.MediaData(ctx, media.SHA256)
	if err != nil {
		if errors.Is(err, bridge.ErrNotFound) {
			return nil, fmt.Errorf("wechat: image %s is not in the media store", media.SHA256)
		}
		return nil, errors.Join(err, bridge.ErrRetryLater)
	}
	name := media.Name
	if name == "" {
		name = meta.Name
	}
	mediaID, err := c.UploadMedia(ctx, "image", name, data)
	if err != nil {
		return nil, err
	}
	body := map[string]any{"touser": openID, "msgtype": "image", "image": map[string]string{"media_id": mediaID}}
	payload, _ := json.Marshal(body)
	_, _, err = c.call(ctx, "message/custom/send", true, c.postJSON(ctx, "/cgi-bin/message/custom/send", nil, body))
	return payload, err
}

// SendTemplate sends a template message (the only way to reach a customer outside the window).
// It returns WeChat's msgid and the payload sent.
func (c *Client) SendTemplate(ctx context.Context, openID string, t *bridge.TemplateSend) (string, []byte, error) {
	data := map[string]map[string]string{}
	for k, v := range t.Data {
		data[k] = map[string]string{"value": v}
	}
	body := map[string]any{"touser": openID, "template_id": t.ID, "data": data}
	if t.URL != "" {
		body["url"] = t.URL
	}
	payload, _ := json.Marshal(body)
	_, answer, err := c.call(ctx, "message/template/send", true, c.postJSON(ctx, "/cgi-bin/message/template/send", nil, body))
	if err != nil {
		return "", payload, err
	}
	var r struct {
		MsgID json.Number `json:"msgid"`
	}
	_ = json.Unmarshal(answer, &r)
	return r.MsgID.String(), payload, nil
}

// Typing shows (or cancels) "typing…" to a customer.
func (c *Client) Typing(ctx context.Context, openID string, on bool) error {
	command := "Typing"
	if !on {
		command = "CancelTyping"
	}
	body := map[string]string{"touser": openID, "command": command}
	_, _, err := c.call(ctx, "message/custom/typing", false, c.postJSON(ctx, "/cgi-bin/message/custom/typing", nil, body))
	return err
}

// QRCode is a parametric QR code WeChat made.
type QRCode struct {
	Ticket string `json:"ticket"`
	URL    string `json:"url"` // what the QR code encodes; render it with QRPNG
}

// CreateQR makes the permanent QR code (QR_LIMIT_STR_SCENE) whose scan connects a customer to scene.
func (c *Client) CreateQR(ctx context.Context, scene string) (QRCode, error) {
	if scene == "" || len(scene) > 64 {
		return QRCode{}, fmt.Errorf("wechat: a QR scene must be 1 to 64 characters, got %d", len(scene))
	}
	body := map[string]any{"action_name": "QR_LIMIT_STR_SCENE", "action_info": map[string]any{"scene": map[string]string{"scene_str": scene}}}
	_, answer, err := c.call(ctx, "qrcode/create", false, c.postJSON(ctx, "/cgi-bin/qrcode/create", nil, body))
	if err != nil {
		return QRCode{}, err
	}
	var q QRCode
	if err := json.Unmarshal(answer, &q); err != nil || q.URL == "" {
		return QRCode{}, fmt.Errorf("wechat qrcode/create: answer has no url")
	}
	return q, nil
}

// QRCode returns the PNG of the permanent QR code that connects customers to scene, making the
// code through WeChat once (its url never changes) and rendering it locally.
func (c *Client) QRCode(ctx context.Context, scene string) ([]byte, error) {
	url, ok := c.qrURLs.Load(scene)
	if !ok {
		code, err := c.CreateQR(ctx, scene)
		if err != nil {
			return nil, err
		}
		url = code.URL
		c.qrURLs.Store(scene, url)
	}
	return QRPNG(url.(string), 300)
}

// UserInfo is what WeChat still says about a follower (no nickname or avatar since 2021-12-27).
type UserInfo struct {
	Subscribe      int    `json:"subscribe"`
	OpenID         string `json:"openid"`
	Language       string `json:"language"`
	SubscribeTime  int64  `json:"subscribe_time"`
	UnionID        string `json:"unionid"`
	SubscribeScene string `json:"subscribe_scene"`
	QRSceneStr     string `json:"qr_scene_str"`
}

// UserInfo looks a follower up.
func (c *Client) UserInfo(ctx context.Context, openID string) (UserInfo, error) {
	_, answer, err := c.call(ctx, "user/info", false, c.get(ctx, "/cgi-bin/user/info", url.Values{"openid": {openID}, "lang": {"zh_CN"}}))
	if err != nil {
		return UserInfo{}, err
	}
	var u UserInfo
	if err := json.Unmarshal(answer, &u); err != nil {
		return UserInfo{}, fmt.Errorf("wechat user/info: %w", err)
	}
	return u, nil
}

// Upload limits per media type (wechat-api-facts §3.6).
var uploadLimits = map[string]struct {
	max   func(c *Client) int64
	types []string
}{
	"image": {func(c *Client) int64 { return c.cfg.ImageLimit }, []string{"image/png", "image/jpeg", "image/gif"}},
	"voice": {func(*Client) int64 { return 2 << 20 }, []string{"audio/amr", "audio/mpeg"}},
	"video": {func(*Client) int64 { return 10 << 20 }, []string{"video/mp4"}},
	"thumb": {func(*Client) int64 { return 64 << 10 }, []string{"image/jpeg"}},
}

// UploadMedia uploads temporary media (kept by WeChat for 3 days) and returns its media_id. The
// type and size are checked against WeChat's limits first, with a clear error.
func (c *Client) UploadMedia(ctx context.Context, kind, name string, data []byte) (string, error) {
	limit, ok := uploadLimits[kind]
	if !ok {
		return "", fmt.Errorf("wechat: media type %q is not one of image, voice, video, thumb", kind)
	}
	if max := limit.max(c); int64(len(data)) > max {
		return "", fmt.Errorf("wechat: the %s is %.1f MB; WeChat takes at most %.1f MB", kind, float64(len(data))/(1<<20), float64(max)/(1<<20))
	}
	ct := SniffMedia(data)
	found := false
	for _, t := range limit.types {
		found = found || t == ct
	}
	if !found {
		return "", fmt.Errorf("wechat: a %s must be one of %s; this is %s", kind, strings.Join(limit.types, ", "), ct)
	}
	if name == "" {
		name = kind
	}
	build := func(token string) (*http.Request, error) {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		part, err := w.CreateFormFile("media", name)
		if err != nil {
			return nil, err
		}
		if _, err := part.Write(data); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/cgi-bin/media/upload", token, url.Values{"type": {kind}}), &buf)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", w.FormDataContentType())
		return req, nil
	}
	_, answer, err := c.call(ctx, "media/upload", false, build)
	if err != nil {
		return "", err
	}
	var r struct {
		MediaID string `json:"media_id"`
	}
	if err := json.Unmarshal(answer, &r); err != nil || r.MediaID == "" {
		return "", errors.New("wechat media/upload: answer has no media_id")
	}
	return r.MediaID, nil
}

// SniffMedia is http.DetectContentType, plus the audio types it does not know (AMR, MP3).
func SniffMedia(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("#!AMR")):
		return "audio/amr"
	case bytes.HasPrefix(data, []byte("ID3")), len(data) > 1 && data[0] == 0xFF && data[1]&0xE0 == 0xE0:
		return "audio/mpeg"
	}
	ct := http.DetectContentType(data)
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return ct
}

// FetchMedia downloads a customer's media by its source ("wechat:MEDIA_ID"). WeChat keeps it for
// three days; after that it answers 40007.
func (c *Client) FetchMedia(ctx context.Context, source string) ([]byte, string, error) {
	mediaID, ok := strings.CutPrefix(source, "wechat:")
	if !ok || mediaID == "" {
		return nil, "", fmt.Errorf("wechat: %q is not a WeChat media source", source)
	}
	header, body, err := c.call(ctx, "media/get", false, c.get(ctx, "/cgi-bin/media/get", url.Values{"media_id": {mediaID}}))
	if err != nil {
		var api *APIError
		if errors.As(err, &api) && api.Kind() != KindRetryable && api.Kind() != KindToken {
			return nil, "", err // permanent: expired (40007) or unknown media
		}
		return nil, "", errors.Join(err, bridge.ErrRetryLater)
	}
	ct := header.Get("Content-Type")
	if ct == "" || strings.HasPrefix(ct, "application/octet-stream") {
		ct = SniffMedia(body)
	}
	return body, ct, nil
}
