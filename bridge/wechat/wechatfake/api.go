package wechatfake

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/wxteams/wxteams/bridge/wechat"
)

// Handler serves the fake API on the paths WeChat uses.
func (w *WeChat) Handler() http.Handler {
	mux := http.NewServeMux()
	routes := map[string]func(*call){
		"/cgi-bin/token":                 w.classicToken,
		"/cgi-bin/stable_token":          w.stableToken,
		"/cgi-bin/message/custom/send":   w.customSend,
		"/cgi-bin/message/custom/typing": w.typing,
		"/cgi-bin/message/template/send": w.templateSend,
		"/cgi-bin/media/upload":          w.mediaUpload,
		"/cgi-bin/media/get":             w.mediaGet,
		"/cgi-bin/qrcode/create":         w.qrCreate,
		"/cgi-bin/showqrcode":            w.showQR,
		"/cgi-bin/user/info":             w.userInfo,
		"/cgi-bin/clear_quota":           w.clearQuota,
	}
	for path, h := range routes {
		authenticated := path != "/cgi-bin/token" && path != "/cgi-bin/stable_token" && path != "/cgi-bin/showqrcode"
		mux.HandleFunc(path, func(rw http.ResponseWriter, r *http.Request) { w.serve(rw, r, h, authenticated) })
	}
	return mux
}

// call is one request in progress.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	body   []byte
	answer any // JSON answer; nil with raw set
	raw    []byte
	ctype  string
	code   int // errcode to answer with
	// apply runs the request's effect; faults may run it without answering.
	effect func()
}

func (c *call) fail(code int) { c.code = code }

// serve applies the common rules (faults, IP whitelist, access token) and runs h under the lock.
func (w *WeChat) serve(rw http.ResponseWriter, r *http.Request, h func(*call), authenticated bool) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	c := &call{w: rw, r: r, body: body}

	w.mu.Lock()
	w.requests[r.URL.Path]++
	var fault Fault
	if fs := w.faults[r.URL.Path]; len(fs) > 0 {
		fault, w.faults[r.URL.Path] = fs[0], fs[1:]
	}
	switch {
	case len(w.cfg.AllowedIPs) > 0 && !slices.Contains(w.cfg.AllowedIPs, clientIP(r)):
		c.fail(40164)
	case authenticated && r.URL.Query().Get("access_token") == "":
		c.fail(41001)
	case authenticated:
		c.fail(w.checkToken(r.URL.Query().Get("access_token")))
	}
	if c.code == 0 && fault.Code != 0 && !fault.Apply {
		c.fail(fault.Code)
	}
	if fault.Reset && !fault.Apply {
		c.fail(-1) // the request never reaches WeChat: no effect
	}
	if c.code == 0 {
		h(c)
		if c.effect != nil && c.code == 0 {
			c.effect()
		}
	}
	w.mu.Unlock()

	if fault.Delay > 0 {
		select {
		case <-time.After(fault.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if fault.Reset {
		if hj, ok := rw.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	if fault.Code != 0 && fault.Apply {
		c.code = fault.Code // the effect happened, the answer says otherwise
	}
	switch {
	case c.code != 0:
		writeJSON(rw, map[string]any{"errcode": c.code, "errmsg": ErrMsg(c.code)})
	case c.raw != nil:
		rw.Header().Set("Content-Type", c.ctype)
		rw.Header().Set("Content-Length", strconv.Itoa(len(c.raw)))
		_, _ = rw.Write(c.raw)
	default:
		writeJSON(rw, c.answer)
	}
}

func writeJSON(rw http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	rw.Header().Set("Content-Type", "application/json; encoding=utf-8")
	_, _ = rw.Write(b) // WeChat answers every error with HTTP 200
}

// decode reads the JSON body; a malformed body is 47001.
func (c *call) decode(v any) bool {
	if len(bytes.TrimSpace(c.body)) == 0 {
		c.fail(44002)
		return false
	}
	if err := json.Unmarshal(c.body, v); err != nil {
		c.fail(47001)
		return false
	}
	return true
}

func ok() map[string]any { return map[string]any{"errcode": 0, "errmsg": "ok"} }

func (w *WeChat) credentials(c *call, appID, secret string) bool {
	switch {
	case appID != w.cfg.AppID:
		c.fail(40013)
	case secret != w.cfg.Secret:
		c.fail(40125)
	default:
		return true
	}
	return false
}

// classicToken: GET /cgi-bin/token. Each call mints a new token; the previous one keeps working
// for TokenGrace, then answers 40001.
func (w *WeChat) classicToken(c *call) {
	q := c.r.URL.Query()
	if q.Get("grant_type") != "client_credential" {
		c.fail(40002)
		return
	}
	if !w.credentials(c, q.Get("appid"), q.Get("secret")) {
		return
	}
	day := w.day()
	if w.tokenCalls[day] >= w.cfg.DailyTokenLimit {
		c.fail(45009)
		return
	}
	w.tokenCalls[day]++
	t := w.mintLocked()
	c.answer = map[string]any{"access_token": t.value, "expires_in": int(w.cfg.TokenTTL.Seconds())}
}

// stableToken: POST /cgi-bin/stable_token. Normal mode returns the current token (rotating it five
// minutes before expiry, both valid meanwhile); force_refresh replaces it, at most StableForceLimit
// times a day and StableForceGap apart. A namespace separate from /cgi-bin/token.
func (w *WeChat) stableToken(c *call) {
	var req struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}
	if !c.decode(&req) {
		return
	}
	if req.GrantType != "client_credential" {
		c.fail(40002)
		return
	}
	if !w.credentials(c, req.AppID, req.Secret) {
		return
	}
	now := w.clock.Now()
	mint := func() {
		w.stablePrev = w.stable
		w.stable = &token{value: randomToken(), expires: now.Add(w.cfg.TokenTTL)}
	}
	switch {
	case req.ForceRefresh:
		var today []time.Time
		for _, t := range w.stableForced {
			if t.UTC().Format("2006-01-02") == w.day() {
				today = append(today, t)
			}
		}
		if len(today) >= w.cfg.StableForceLimit {
			c.fail(45009)
			return
		}
		if len(today) > 0 && now.Sub(today[len(today)-1]) < w.cfg.StableForceGap {
			c.fail(45011)
			return
		}
		w.stableForced = append(today, now)
		mint()
		w.stablePrev = nil // a forced refresh invalidates the previous token
	case w.stable == nil || !now.Before(w.stable.expires):
		mint()
	case w.stable.expires.Sub(now) <= 5*time.Minute:
		mint() // rotate early; the previous one stays valid until it expires
	}
	c.answer = map[string]any{"access_token": w.stable.value, "expires_in": int(w.stable.expires.Sub(now).Seconds())}
}

// customSend: POST /cgi-bin/message/custom/send, under the window ledger.
func (w *WeChat) customSend(c *call) {
	var req struct {
		ToUser  string `json:"touser"`
		MsgType string `json:"msgtype"`
		Text    *struct {
			Content string `json:"content"`
		} `json:"text"`
		Image *struct {
			MediaID string `json:"media_id"`
		} `json:"image"`
	}
	if !c.decode(&req) {
		return
	}
	d := Delivered{OpenID: req.ToUser, MsgType: req.MsgType, At: w.clock.Now()}
	switch {
	case req.MsgType == "text" && req.Text != nil:
		if len(req.Text.Content) == 0 || !utf8.ValidString(req.Text.Content) {
			c.fail(47001)
			return
		}
		if len(req.Text.Content) > 2048 {
			c.fail(45002)
			return
		}
		d.Text = req.Text.Content
	case req.MsgType == "image" && req.Image != nil:
		m, ok := w.media[req.Image.MediaID]
		if !ok || !w.clock.Now().Before(m.created.Add(w.cfg.MediaLife)) {
			c.fail(40007)
			return
		}
		d.MediaID, d.Data = req.Image.MediaID, m.data
	default:
		c.fail(47001)
		return
	}
	if code := w.spendLocked(req.ToUser); code != 0 {
		c.fail(code)
		return
	}
	c.answer = ok()
	c.effect = func() {
		u := w.users[req.ToUser]
		u.typingUntil = time.Time{} // a message ends "typing"
		u.lastInteraction = d.At
		w.delivered = append(w.delivered, d)
		if w.OnDeliver != nil {
			w.OnDeliver(d)
		}
	}
}

// spendLocked takes one message from a user's window: 40003 unknown user, 45015 not following or
// outside any window, 45047 quota used.
func (w *WeChat) spendLocked(openID string) int {
	u, ok := w.users[openID]
	switch {
	case !ok:
		return 40003
	case !u.Following:
		return 45015
	case u.WindowEnds.IsZero() || !w.clock.Now().Before(u.WindowEnds):
		return 45015
	case u.Remaining <= 0:
		return 45047
	}
	u.Remaining--
	return 0
}

// typing: POST /cgi-bin/message/custom/typing.
func (w *WeChat) typing(c *call) {
	var req struct {
		ToUser  string `json:"touser"`
		Command string `json:"command"`
	}
	if !c.decode(&req) {
		return
	}
	u, exists := w.users[req.ToUser]
	now := w.clock.Now()
	switch {
	case !exists:
		c.fail(40003)
	case req.Command != "Typing" && req.Command != "CancelTyping":
		c.fail(45072)
	case !u.Following || u.WindowEnds.IsZero() || !now.Before(u.WindowEnds):
		c.fail(45015)
	case req.Command == "Typing" && now.Sub(u.lastInteraction) > 30*time.Second:
		c.fail(45080)
	case req.Command == "Typing" && now.Before(u.typingUntil):
		c.fail(45081)
	default:
		if req.Command == "Typing" {
			u.typingUntil = now.Add(15 * time.Second)
		} else {
			u.typingUntil = time.Time{}
		}
		c.answer = ok()
	}
}

// templateSend: POST /cgi-bin/message/template/send. Followers only (43004); no window needed.
func (w *WeChat) templateSend(c *call) {
	var req struct {
		ToUser     string                       `json:"touser"`
		TemplateID string                       `json:"template_id"`
		Data       map[string]map[string]string `json:"data"`
	}
	if !c.decode(&req) {
		return
	}
	u, exists := w.users[req.ToUser]
	switch {
	case req.TemplateID == "":
		c.fail(40037)
		return
	case !exists:
		c.fail(40003)
		return
	case !u.Following:
		c.fail(43004)
		return
	}
	w.msgID++
	id := w.msgID
	data := map[string]string{}
	for k, v := range req.Data {
		data[k] = v["value"]
	}
	c.answer = map[string]any{"errcode": 0, "errmsg": "ok", "msgid": id}
	c.effect = func() {
		w.delivered = append(w.delivered, Delivered{OpenID: req.ToUser, MsgType: "template", Text: req.TemplateID, At: w.clock.Now(), Template: data})
	}
}

// uploadRules are WeChat's temporary-media limits per type.
var uploadRules = map[string]struct {
	max   func(*WeChat) int64
	types []string
}{
	"image": {func(w *WeChat) int64 { return w.cfg.ImageLimit }, []string{"image/png", "image/jpeg", "image/gif"}},
	"voice": {func(*WeChat) int64 { return 2 << 20 }, []string{"audio/amr", "audio/mpeg"}},
	"video": {func(*WeChat) int64 { return 10 << 20 }, []string{"video/mp4"}},
	"thumb": {func(*WeChat) int64 { return 64 << 10 }, []string{"image/jpeg"}},
}

// mediaUpload: POST /cgi-bin/media/upload?type=…, multipart field "media".
func (w *WeChat) mediaUpload(c *call) {
	kind := c.r.URL.Query().Get("type")
	rule, known := uploadRules[kind]
	if !known {
		c.fail(40004)
		return
	}
	req := c.r.Clone(c.r.Context())
	req.Body = io.NopCloser(bytes.NewReader(c.body))
	file, _, err := req.FormFile("media")
	if err != nil {
		c.fail(41005) // media data missing
		return
	}
	data, _ := io.ReadAll(file)
	if int64(len(data)) > rule.max(w) {
		c.fail(40006)
		return
	}
	ct := wechat.SniffMedia(data)
	if !slices.Contains(rule.types, ct) {
		c.fail(40005)
		return
	}
	id := randomID(24)
	now := w.clock.Now()
	w.media[id] = &media{kind: kind, contentType: ct, data: data, created: now}
	c.answer = map[string]any{"type": kind, "media_id": id, "created_at": now.Unix()}
}

// mediaGet: GET /cgi-bin/media/get: the bytes, or (with HTTP 200) a JSON error.
func (w *WeChat) mediaGet(c *call) {
	m, exists := w.media[c.r.URL.Query().Get("media_id")]
	if !exists || !w.clock.Now().Before(m.created.Add(w.cfg.MediaLife)) {
		c.fail(40007)
		return
	}
	c.raw, c.ctype = m.data, m.contentType
}

// qrCreate: POST /cgi-bin/qrcode/create.
func (w *WeChat) qrCreate(c *call) {
	var req struct {
		ExpireSeconds int    `json:"expire_seconds"`
		ActionName    string `json:"action_name"`
		ActionInfo    struct {
			Scene *struct {
				SceneID  *int64 `json:"scene_id"`
				SceneStr string `json:"scene_str"`
			} `json:"scene"`
		} `json:"action_info"`
	}
	if !c.decode(&req) {
		return
	}
	scene := req.ActionInfo.Scene
	permanent := req.ActionName == "QR_LIMIT_SCENE" || req.ActionName == "QR_LIMIT_STR_SCENE"
	var value string
	switch req.ActionName {
	case "QR_SCENE", "QR_LIMIT_SCENE":
		if scene == nil || scene.SceneID == nil || *scene.SceneID == 0 || (permanent && (*scene.SceneID < 1 || *scene.SceneID > 100000)) {
			c.fail(40053)
			return
		}
		value = strconv.FormatInt(*scene.SceneID, 10)
	case "QR_STR_SCENE", "QR_LIMIT_STR_SCENE":
		if scene == nil || len(scene.SceneStr) < 1 || len(scene.SceneStr) > 64 {
			c.fail(40053)
			return
		}
		value = scene.SceneStr
	default:
		c.fail(40052)
		return
	}
	now := w.clock.Now()
	if permanent {
		if ticket, ok := w.permanent[value]; ok {
			q := w.tickets[ticket]
			c.answer = map[string]any{"ticket": ticket, "url": q.url}
			return
		}
		if len(w.permanent) >= w.cfg.PermanentQRLimit {
			c.fail(45009)
			return
		}
	}
	expire := req.ExpireSeconds
	if !permanent {
		switch {
		case expire <= 0:
			expire = 60
		case expire > 2592000:
			expire = 2592000
		}
	}
	ticket := "gQ" + randomID(30)
	q := &qrTicket{scene: value, url: "http://weixin.qq.com/q/" + randomID(11), permanent: permanent}
	if !permanent {
		q.expires = now.Add(time.Duration(expire) * time.Second)
	}
	w.tickets[ticket] = q
	answer := map[string]any{"ticket": ticket, "url": q.url}
	if permanent {
		w.permanent[value] = ticket
	} else {
		answer["expire_seconds"] = expire
	}
	c.answer = answer
}

// showQR: GET /cgi-bin/showqrcode?ticket=… (on mp.weixin.qq.com for the real service): the PNG.
func (w *WeChat) showQR(c *call) {
	q, exists := w.tickets[c.r.URL.Query().Get("ticket")]
	if !exists || (!q.permanent && !w.clock.Now().Before(q.expires)) {
		c.raw, c.ctype = []byte("ticket is invalid or expired"), "text/plain"
		return
	}
	png, err := wechat.QRPNG(q.url, 256)
	if err != nil {
		c.fail(-1)
		return
	}
	c.raw, c.ctype = png, "image/png"
}

// userInfo: GET /cgi-bin/user/info. Never a nickname or avatar (gone since 2021-12-27).
func (w *WeChat) userInfo(c *call) {
	u, exists := w.users[c.r.URL.Query().Get("openid")]
	if !exists {
		c.fail(40003)
		return
	}
	if !u.Following {
		c.answer = map[string]any{"subscribe": 0, "openid": u.OpenID}
		return
	}
	info := map[string]any{
		"subscribe": 1, "openid": u.OpenID, "language": u.Language, "subscribe_time": u.subscribedAt.Unix(),
		"remark": "", "groupid": 0, "tagid_list": []int{}, "subscribe_scene": "ADD_SCENE_OTHERS", "qr_scene": 0, "qr_scene_str": "",
	}
	if u.qrScene != "" {
		info["subscribe_scene"], info["qr_scene_str"] = "ADD_SCENE_QR_CODE", u.qrScene
	}
	if u.UnionID != "" {
		info["unionid"] = u.UnionID
	}
	c.answer = info
}

// clearQuota: POST /cgi-bin/clear_quota resets the daily counters.
func (w *WeChat) clearQuota(c *call) {
	var req struct {
		AppID string `json:"appid"`
	}
	if !c.decode(&req) {
		return
	}
	if req.AppID != w.cfg.AppID {
		c.fail(40013)
		return
	}
	w.tokenCalls = map[string]int{}
	c.answer = ok()
}
