package wechatfake

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge/clock"
)

// These tests check the fake against WeChat's documented behaviour with plain HTTP requests, so
// the fake is checked independently of the client that runs against it.

const (
	appID  = "wx2c2769f8efd9abc2"
	secret = "s3cr3t"
	gh     = "gh_10f6c3c3ac5a"
)

type rig struct {
	t     *testing.T
	w     *WeChat
	clock *clock.Fake
	url   string
}

func newRig(t *testing.T, cfg Config) *rig {
	cfg.AppID, cfg.Secret, cfg.OriginalID = appID, secret, gh
	clk := clock.NewFake(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	w := New(cfg, clk)
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	return &rig{t: t, w: w, clock: clk, url: srv.URL}
}

// get and post call the fake and decode its JSON answer.
func (r *rig) get(path string, q url.Values) map[string]any {
	r.t.Helper()
	resp, err := http.Get(r.url + path + "?" + q.Encode())
	if err != nil {
		r.t.Fatal(err)
	}
	return decode(r.t, resp)
}

func (r *rig) post(path string, q url.Values, body any) map[string]any {
	r.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(r.url+path+"?"+q.Encode(), "application/json", bytes.NewReader(b))
	if err != nil {
		r.t.Fatal(err)
	}
	return decode(r.t, resp)
}

func decode(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d; WeChat answers everything with 200", resp.StatusCode)
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func code(m map[string]any) int {
	c, _ := m["errcode"].(float64)
	return int(c)
}

func (r *rig) token() string {
	r.t.Helper()
	m := r.get("/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {secret}})
	tok, _ := m["access_token"].(string)
	if tok == "" || m["expires_in"] != float64(7200) {
		r.t.Fatalf("token answer = %v", m)
	}
	return tok
}

func (r *rig) send(tok, openID, text string) int {
	r.t.Helper()
	return code(r.post("/cgi-bin/message/custom/send", url.Values{"access_token": {tok}},
		map[string]any{"touser": openID, "msgtype": "text", "text": map[string]string{"content": text}}))
}

var ridSuffix = regexp.MustCompile(` rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$`)

func TestTokensSupersedeAndExpire(t *testing.T) {
	r := newRig(t, Config{})
	first := r.token()
	if c := r.send(first, "nobody", "x"); c != 40003 {
		t.Errorf("a valid token for an unknown openid = %d; want 40003", c)
	}
	second := r.token()
	if first == second {
		t.Fatal("a second /cgi-bin/token call returned the same token")
	}
	r.clock.Advance(4 * time.Minute)
	if c := r.send(first, "nobody", "x"); c != 40003 {
		t.Errorf("the superseded token within its 5 min grace = %d; want it still valid (40003 for the openid)", c)
	}
	r.clock.Advance(time.Minute)
	m := r.post("/cgi-bin/message/custom/send", url.Values{"access_token": {first}}, map[string]any{"touser": "x", "msgtype": "text", "text": map[string]string{"content": "x"}})
	if code(m) != 40001 || !strings.HasPrefix(m["errmsg"].(string), "invalid credential, access_token is invalid or not latest") || !ridSuffix.MatchString(m["errmsg"].(string)) {
		t.Errorf("the superseded token after the grace = %v; want 40001 with WeChat's errmsg and a rid", m)
	}
	r.clock.Advance(7200 * time.Second)
	if c := r.send(second, "nobody", "x"); c != 42001 {
		t.Errorf("an expired token = %d; want 42001", c)
	}
	if c := r.send("made-up", "nobody", "x"); c != 40001 {
		t.Errorf("an unknown token = %d; want 40001", c)
	}
	if c := code(r.get("/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {"wrong"}})); c != 40125 {
		t.Errorf("a wrong secret = %d; want 40125", c)
	}
	if c := code(r.get("/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {"wx0000000000000000"}, "secret": {secret}})); c != 40013 {
		t.Errorf("a wrong appid = %d; want 40013", c)
	}
}

func TestExpiredTokenCodeAndDailyLimit(t *testing.T) {
	r := newRig(t, Config{ExpiredCode: 40014, DailyTokenLimit: 2})
	tok := r.token()
	r.token()
	if c := code(r.get("/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {secret}})); c != 45009 {
		t.Errorf("third token call of the day = %d; want 45009", c)
	}
	r.clock.Advance(3 * time.Hour)
	if c := r.send(tok, "x", "x"); c != 40014 && c != 40001 {
		t.Errorf("expired token = %d; want 40014 (as configured) or 40001 (superseded)", c)
	}
	if c := code(r.post("/cgi-bin/clear_quota", url.Values{"access_token": {"x"}}, map[string]string{"appid": appID})); c != 40001 {
		t.Errorf("clear_quota with a bad token = %d; want 40001", c)
	}
	r.clock.Advance(24 * time.Hour) // a new day
	r.token()
}

func TestStableTokenIsIdempotentAndForceRefreshIsLimited(t *testing.T) {
	r := newRig(t, Config{StableForceLimit: 2})
	stable := func(force bool) map[string]any {
		return r.post("/cgi-bin/stable_token", nil, map[string]any{"grant_type": "client_credential", "appid": appID, "secret": secret, "force_refresh": force})
	}
	a := stable(false)
	r.clock.Advance(time.Hour)
	b := stable(false)
	if a["access_token"] != b["access_token"] || b["expires_in"] != float64(3600) {
		t.Errorf("normal mode twice = %v then %v; want the same token with expires_in decreasing to 3600", a, b)
	}
	classic := r.token()
	if c := r.send(a["access_token"].(string), "x", "x"); c != 40003 {
		t.Errorf("a stable token after a classic /cgi-bin/token call = %d; want still valid (separate namespaces)", c)
	}
	_ = classic
	f := stable(true)
	if f["access_token"] == a["access_token"] {
		t.Error("force_refresh returned the same token")
	}
	if c := r.send(a["access_token"].(string), "x", "x"); c != 40001 {
		t.Errorf("the token replaced by force_refresh = %d; want 40001", c)
	}
	if c := code(stable(true)); c != 45011 {
		t.Errorf("a second force_refresh within 30 s = %d; want refused", c)
	}
	r.clock.Advance(31 * time.Second)
	stable(true)
	r.clock.Advance(31 * time.Second)
	if c := code(stable(true)); c != 45009 {
		t.Errorf("a third force_refresh in a day with a limit of 2 = %d; want 45009", c)
	}
	// Five minutes before expiry normal mode rotates, and both stay valid.
	cur := stable(false)["access_token"].(string)
	r.clock.Advance(7200*time.Second - 4*time.Minute - 62*time.Second)
	next := stable(false)["access_token"].(string)
	if next == cur {
		t.Error("normal mode did not rotate within 5 min of expiry")
	}
	if c := r.send(cur, "x", "x"); c != 40003 {
		t.Errorf("the rotated-out stable token before its expiry = %d; want still valid", c)
	}
}

func TestWindowLedger(t *testing.T) {
	r := newRig(t, Config{})
	ctx := context.Background()
	r.w.SetPusher(&Pusher{URL: acceptAll(t), Token: "t", AppID: appID, OriginalID: gh, Clock: r.clock})
	tok := r.token()

	if c := r.send(tok, "o-stranger", "hi"); c != 40003 {
		t.Errorf("send to an unknown openid = %d; want 40003", c)
	}
	if _, err := r.w.ScanScene(ctx, "o1", "emp:ann"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if c := r.send(tok, "o1", "after scan"); c != 0 {
			t.Fatalf("message %d within a minute of a scan = %d; want ok", i+1, c)
		}
	}
	if c := r.send(tok, "o1", "4th"); c != 45047 {
		t.Errorf("4th message after a scan = %d; want 45047", c)
	}
	r.clock.Advance(61 * time.Second)
	if c := r.send(tok, "o1", "late"); c != 45015 {
		t.Errorf("a minute after the scan = %d; want 45015", c)
	}
	if _, _, err := r.w.Send(ctx, "o1", "hello"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if c := r.send(tok, "o1", "reply"); c != 0 {
			t.Fatalf("reply %d after a customer message = %d; want ok", i+1, c)
		}
	}
	if c := r.send(tok, "o1", "6th"); c != 45047 {
		t.Errorf("6th reply = %d; want 45047 out of response count limit", c)
	}
	// A new message resets the quota; it does not add to it.
	if _, _, err := r.w.Send(ctx, "o1", "again"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.w.Send(ctx, "o1", "and again"); err != nil {
		t.Fatal(err)
	}
	sent := 0
	for r.send(tok, "o1", "x") == 0 {
		sent++
	}
	if sent != 5 {
		t.Errorf("replies after two customer messages = %d; want 5 (reset, not 10)", sent)
	}
	// A scan replaces the 48 h window with the minute window.
	r.w.Send(ctx, "o1", "one more")
	r.w.ScanScene(ctx, "o1", "emp:ann")
	r.clock.Advance(2 * time.Minute)
	if c := r.send(tok, "o1", "x"); c != 45015 {
		t.Errorf("2 min after a scan that followed a message = %d; want 45015 (the scan replaced the window)", c)
	}
	r.w.Send(ctx, "o1", "window")
	r.clock.Advance(48 * time.Hour)
	tok = r.token() // the old one expired after 2 h
	if c := r.send(tok, "o1", "x"); c != 45015 {
		t.Errorf("48 h after the last message = %d; want 45015", c)
	}
	r.w.Send(ctx, "o1", "back")
	r.w.Unfollow(ctx, "o1")
	if c := r.send(tok, "o1", "x"); c != 45015 {
		t.Errorf("to an unfollowed user = %d; want 45015", c)
	}
	tpl := r.post("/cgi-bin/message/template/send", url.Values{"access_token": {tok}}, map[string]any{"touser": "o1", "template_id": "T1", "data": map[string]any{}})
	if code(tpl) != 43004 {
		t.Errorf("template to an unfollowed user = %v; want 43004", tpl)
	}
	if texts := r.w.Texts("o1"); len(texts) != 3+5+5 {
		t.Errorf("delivered %d messages; want 13", len(texts))
	}
}

func TestTypingRules(t *testing.T) {
	r := newRig(t, Config{})
	ctx := context.Background()
	r.w.SetPusher(&Pusher{URL: acceptAll(t), Token: "t", AppID: appID, OriginalID: gh, Clock: r.clock})
	tok := r.token()
	r.w.ScanScene(ctx, "o1", "s")
	r.w.Send(ctx, "o1", "hi")
	typing := func(cmd string) int {
		return code(r.post("/cgi-bin/message/custom/typing", url.Values{"access_token": {tok}}, map[string]string{"touser": "o1", "command": cmd}))
	}
	if c := typing("Typing"); c != 0 {
		t.Errorf("typing right after a message = %d", c)
	}
	if c := typing("Typing"); c != 45081 {
		t.Errorf("typing twice within 15 s = %d; want 45081", c)
	}
	if c := typing("Dancing"); c != 45072 {
		t.Errorf("a bad command = %d; want 45072", c)
	}
	r.send(tok, "o1", "a message ends typing")
	if c := typing("Typing"); c != 0 {
		t.Errorf("typing after a send = %d", c)
	}
	r.clock.Advance(31 * time.Second)
	if c := typing("Typing"); c != 45080 {
		t.Errorf("typing 31 s after the last interaction = %d; want 45080", c)
	}
}

func TestMediaLimitsAndLifetime(t *testing.T) {
	r := newRig(t, Config{ImageLimit: 2 << 20})
	tok := r.token()
	upload := func(kind string, data []byte) map[string]any {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		part, _ := mw.CreateFormFile("media", "f")
		part.Write(data)
		mw.Close()
		resp, err := http.Post(r.url+"/cgi-bin/media/upload?"+url.Values{"access_token": {tok}, "type": {kind}}.Encode(), mw.FormDataContentType(), &buf)
		if err != nil {
			t.Fatal(err)
		}
		return decode(t, resp)
	}
	pngBytes := tinyPNG(t)
	m := upload("image", pngBytes)
	id, _ := m["media_id"].(string)
	if id == "" || m["type"] != "image" {
		t.Fatalf("upload = %v", m)
	}
	if c := code(upload("picture", pngBytes)); c != 40004 {
		t.Errorf("unknown type = %d; want 40004", c)
	}
	if c := code(upload("image", []byte("plain text, not an image"))); c != 40005 {
		t.Errorf("text as an image = %d; want 40005", c)
	}
	big := append(append([]byte{}, pngBytes...), make([]byte, 2<<20)...)
	if c := code(upload("image", big)); c != 40006 {
		t.Errorf("an image over the 2 MiB limit = %d; want 40006", c)
	}
	if c := code(upload("thumb", pngBytes)); c != 40005 {
		t.Errorf("a PNG thumb = %d; want 40005 (thumbs are JPEG)", c)
	}
	resp, err := http.Get(r.url + "/cgi-bin/media/get?" + url.Values{"access_token": {tok}, "media_id": {id}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "image/png" || !bytes.Equal(got, pngBytes) {
		t.Errorf("media/get = %s, %d bytes; want the PNG back", resp.Header.Get("Content-Type"), len(got))
	}
	r.clock.Advance(72 * time.Hour)
	if c := code(r.get("/cgi-bin/media/get", url.Values{"access_token": {r.token()}, "media_id": {id}})); c != 40007 {
		t.Errorf("media/get after 3 days = %d; want 40007 (as JSON with HTTP 200)", c)
	}
}

func TestQRCodes(t *testing.T) {
	r := newRig(t, Config{})
	tok := r.token()
	create := func(body map[string]any) map[string]any {
		return r.post("/cgi-bin/qrcode/create", url.Values{"access_token": {tok}}, body)
	}
	perm := create(map[string]any{"action_name": "QR_LIMIT_STR_SCENE", "action_info": map[string]any{"scene": map[string]string{"scene_str": "emp:ann"}}})
	if perm["ticket"] == "" || !strings.HasPrefix(perm["url"].(string), "http://weixin.qq.com/q/") || perm["expire_seconds"] != nil {
		t.Errorf("permanent code = %v", perm)
	}
	again := create(map[string]any{"action_name": "QR_LIMIT_STR_SCENE", "action_info": map[string]any{"scene": map[string]string{"scene_str": "emp:ann"}}})
	if again["ticket"] != perm["ticket"] {
		t.Error("the same permanent scene gave a second ticket")
	}
	temp := create(map[string]any{"action_name": "QR_STR_SCENE", "action_info": map[string]any{"scene": map[string]string{"scene_str": "campaign"}}})
	if temp["expire_seconds"] != float64(60) {
		t.Errorf("temporary code without expire_seconds = %v; want 60 s", temp)
	}
	for _, bad := range []struct {
		body map[string]any
		want int
	}{
		{map[string]any{"action_name": "QR_WHATEVER", "action_info": map[string]any{"scene": map[string]string{"scene_str": "x"}}}, 40052},
		{map[string]any{"action_name": "QR_LIMIT_STR_SCENE", "action_info": map[string]any{"scene": map[string]string{"scene_str": strings.Repeat("x", 65)}}}, 40053},
		{map[string]any{"action_name": "QR_LIMIT_STR_SCENE", "action_info": map[string]any{}}, 40053},
		{map[string]any{"action_name": "QR_LIMIT_SCENE", "action_info": map[string]any{"scene": map[string]int{"scene_id": 100001}}}, 40053},
	} {
		if c := code(create(bad.body)); c != bad.want {
			t.Errorf("qrcode/create %v = %d; want %d", bad.body, c, bad.want)
		}
	}
	resp, err := http.Get(r.url + "/cgi-bin/showqrcode?ticket=" + url.QueryEscape(perm["ticket"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(resp.Body)
	resp.Body.Close()
	if err != nil || img.Bounds().Dx() < 21 {
		t.Errorf("showqrcode did not return a QR PNG: %v", err)
	}
	ctx := context.Background()
	r.w.SetPusher(&Pusher{URL: acceptAll(t), Token: "t", AppID: appID, OriginalID: gh, Clock: r.clock})
	r.clock.Advance(61 * time.Second)
	if _, err := r.w.Scan(ctx, "o1", temp["ticket"].(string)); err == nil {
		t.Error("scanning an expired temporary code did something")
	}
}

func TestIPWhitelistAndUserInfo(t *testing.T) {
	r := newRig(t, Config{AllowedIPs: []string{"10.9.9.9"}})
	m := r.get("/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {secret}})
	if code(m) != 40164 {
		t.Errorf("token from a non-whitelisted IP = %v; want 40164", m)
	}
	r2 := newRig(t, Config{})
	ctx := context.Background()
	r2.w.SetPusher(&Pusher{URL: acceptAll(t), Token: "t", AppID: appID, OriginalID: gh, Clock: r2.clock})
	r2.w.ScanScene(ctx, "o1", "emp:ann")
	info := r2.get("/cgi-bin/user/info", url.Values{"access_token": {r2.token()}, "openid": {"o1"}})
	if info["subscribe"] != float64(1) || info["qr_scene_str"] != "emp:ann" || info["language"] != "zh_CN" {
		t.Errorf("user/info = %v", info)
	}
	for _, gone := range []string{"nickname", "headimgurl"} {
		if _, ok := info[gone]; ok {
			t.Errorf("user/info has %s, which WeChat no longer returns", gone)
		}
	}
	r2.w.Unfollow(ctx, "o1")
	if info := r2.get("/cgi-bin/user/info", url.Values{"access_token": {r2.token()}, "openid": {"o1"}}); info["subscribe"] != float64(0) || len(info) != 2 {
		t.Errorf("user/info of an unfollowed user = %v; want only subscribe=0 and openid", info)
	}
}

func TestFaults(t *testing.T) {
	r := newRig(t, Config{})
	ctx := context.Background()
	r.w.SetPusher(&Pusher{URL: acceptAll(t), Token: "t", AppID: appID, OriginalID: gh, Clock: r.clock})
	r.w.ScanScene(ctx, "o1", "s")
	r.w.Send(ctx, "o1", "hi")
	tok := r.token()
	r.w.Fail("/cgi-bin/message/custom/send", Fault{Code: -1}, Fault{Reset: true}, Fault{Reset: true, Apply: true})
	if c := r.send(tok, "o1", "a"); c != -1 {
		t.Errorf("first send = %d; want -1 system error", c)
	}
	b, _ := json.Marshal(map[string]any{"touser": "o1", "msgtype": "text", "text": map[string]string{"content": "b"}})
	for i := range 2 {
		resp, err := http.Post(r.url+"/cgi-bin/message/custom/send?access_token="+tok, "application/json", bytes.NewReader(b))
		if err == nil {
			resp.Body.Close()
			t.Errorf("send %d with a reset fault answered", i+2)
		}
	}
	if got := r.w.Texts("o1"); len(got) != 1 || got[0] != "b" {
		t.Errorf("delivered %v; want only the send whose answer was lost after delivery", got)
	}
}

// acceptAll starts a callback that acknowledges everything.
func acceptAll(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "success") }))
	t.Cleanup(srv.Close)
	return srv.URL
}

func tinyPNG(t *testing.T) []byte {
	t.Helper()
	data, err := base64PNG()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func base64PNG() ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	img.Set(1, 1, color.RGBA{R: 255, A: 255})
	var buf bytes.Buffer
	err := png.Encode(&buf, img)
	return buf.Bytes(), err
}
