package wechat

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
)

// recorder is an Ingest that records what the callback handed on, and can refuse.
type recorder struct {
	mu    sync.Mutex
	calls []string
	seen  map[string]bool
	fail  error
}

func (r *recorder) note(key, s string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	if key != "" && r.seen[key] {
		return bridge.ErrDuplicate
	}
	r.seen[key] = true
	r.calls = append(r.calls, s)
	return nil
}

func (r *recorder) Connect(_ context.Context, in bridge.Connect) (bridge.Result, error) {
	return bridge.Result{}, r.note(in.DedupeKey, fmt.Sprintf("connect %s %s (%s)", in.Contact, in.Scene, in.Event))
}

func (r *recorder) CustomerWrites(_ context.Context, in bridge.Inbound) (bridge.Result, error) {
	s := fmt.Sprintf("message %s %s %q", in.Contact, in.Message.Type, in.Message.Text)
	if in.Message.Media != nil {
		s += " media " + in.Message.Media.Source
	}
	return bridge.Result{}, r.note(in.DedupeKey, s)
}

func (r *recorder) Unsubscribe(_ context.Context, c bridge.OpenID, key string) error {
	return r.note(key, "unsubscribe "+string(c))
}

func (r *recorder) RecordCustomerEvent(_ context.Context, in bridge.CustomerEvent) error {
	return r.note(in.DedupeKey, fmt.Sprintf("event %s %s %q", in.Contact, in.Event, in.Detail))
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// endpoint is a callback on an httptest server at a fixed virtual time.
type endpoint struct {
	t   *testing.T
	url string
	rec *recorder
}

func newEndpoint(t *testing.T, cfg CallbackConfig, now time.Time) *endpoint {
	t.Helper()
	rec := &recorder{}
	cb, err := NewCallback(cfg, rec, clock.NewFake(now), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(cb)
	t.Cleanup(srv.Close)
	return &endpoint{t: t, url: srv.URL, rec: rec}
}

func (e *endpoint) do(method, query, body string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+"?"+query, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestCallbackURLVerificationVector(t *testing.T) {
	// The doc's GET example: Token AAAAA.
	e := newEndpoint(t, CallbackConfig{AppID: "wx134c8103faa5a59e", OriginalID: "gh_97417a04a28d", Tokens: []string{"AAAAA"}}, time.Unix(1714036504, 0))
	status, body := e.do("GET", "signature=f464b24fc39322e44b38aa78f5edd27bd1441696&timestamp=1714036504&nonce=1514711492&echostr=4375120948345356249", "")
	if status != 200 || body != "4375120948345356249" {
		t.Errorf("GET verification = %d %q; want the echostr", status, body)
	}
	if status, _ := e.do("GET", "signature=0000b24fc39322e44b38aa78f5edd27bd1441696&timestamp=1714036504&nonce=1514711492&echostr=1", ""); status != 403 {
		t.Errorf("GET with a forged signature = %d; want 403", status)
	}
}

func TestCallbackPlaintextJSONVector(t *testing.T) {
	// The doc's plaintext POST in JSON.
	e := newEndpoint(t, CallbackConfig{AppID: "wx134c8103faa5a59e", OriginalID: "gh_97417a04a28d", Tokens: []string{"AAAAA"}}, time.Unix(1714037059, 0))
	body := `{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714037059,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}`
	status, reply := e.do("POST", "signature=899cf89e464efb63f54ddac96b0a0a235f53aa78&timestamp=1714037059&nonce=486452656", body)
	if status != 200 || reply != "success" {
		t.Fatalf("POST = %d %q; want success", status, reply)
	}
	if got := e.rec.got(); len(got) != 1 || got[0] != `event o9AgO5Kd5ggOC-bXrbNODIiE3bGY debug_demo ""` {
		t.Errorf("handed on %q", got)
	}
}

func TestCallbackSafeModeVector(t *testing.T) {
	// Vector E: the doc's encrypted push, with the plain signature of the same URL.
	cfg := CallbackConfig{AppID: "wx134c8103faa5a59e", OriginalID: "gh_97417a04a28d", Tokens: []string{"AAAAA"}, AESKeys: []string{strings.Repeat("A", 43)}}
	e := newEndpoint(t, cfg, time.Unix(1715943329, 0))
	body := `<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><Encrypt><![CDATA[` + decryptVectors[2].encrypt + `]]></Encrypt></xml>`
	q := "signature=cc0c594499c1634947d5b502f158ee518947db27&timestamp=1715943329&nonce=1590219412&openid=o9AgO5Kd5ggOC-bXrbNODIiE3bGY&encrypt_type=aes&msg_signature=6c12a4205838198b8fa631b3220723bb07f1015c"
	status, reply := e.do("POST", q, body)
	if status != 200 || reply != "" {
		t.Fatalf("safe-mode POST = %d %q; want 200 with an empty body", status, reply)
	}
	if got := e.rec.got(); len(got) != 1 || !strings.HasPrefix(got[0], "event o9AgO5Kd5ggOC-bXrbNODIiE3bGY debug_demo") {
		t.Errorf("handed on %q", got)
	}
	// The same push again (WeChat's retry) is answered the same and handed on once.
	if status, _ := e.do("POST", q, body); status != 200 {
		t.Errorf("retry = %d", status)
	}
	if n := len(e.rec.got()); n != 1 {
		t.Errorf("handed on %d times; want once", n)
	}
}

// signedQuery signs a push as WeChat would, for the negative tests.
func signedQuery(token string, ts int64, encrypted string) url.Values {
	timestamp := fmt.Sprint(ts)
	q := url.Values{"signature": {Signature(token, timestamp, "42")}, "timestamp": {timestamp}, "nonce": {"42"}}
	if encrypted != "" {
		q.Set("encrypt_type", "aes")
		q.Set("msg_signature", Signature(token, timestamp, "42", encrypted))
	}
	return q
}

const (
	appID = "wx2c2769f8efd9abc2"
	gh    = "gh_10f6c3c3ac5a"
	key1  = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	key2  = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
)

var now = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

func textPush(to, from, msgID, text string) string {
	return "<xml><ToUserName><![CDATA[" + to + "]]></ToUserName><FromUserName><![CDATA[" + from + "]]></FromUserName><CreateTime>" +
		fmt.Sprint(now.Unix()) + "</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[" + text + "]]></Content><MsgId>" + msgID + "</MsgId></xml>"
}

func encrypted(t *testing.T, key, forAppID, plain string) (string, string) {
	t.Helper()
	c, err := NewCipher(key, forAppID)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := c.Encrypt([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	return ct, "<xml><ToUserName><![CDATA[" + gh + "]]></ToUserName><Encrypt><![CDATA[" + ct + "]]></Encrypt></xml>"
}

func TestCallbackRefusesBadPushes(t *testing.T) {
	cfg := CallbackConfig{AppID: appID, OriginalID: gh, Tokens: []string{"newtoken", "oldtoken"}, AESKeys: []string{key1, key2}, MaxBody: 4096}
	e := newEndpoint(t, cfg, now)
	good := textPush(gh, "o1", "1001", "hello")
	ct, body := encrypted(t, key1, appID, good)

	if status, reply := e.do("POST", signedQuery("newtoken", now.Unix(), ct).Encode(), body); status != 200 || reply != "" {
		t.Fatalf("a good encrypted push = %d %q", status, reply)
	}
	// Rotation: the previous token and the previous key are still accepted.
	ct2, body2 := encrypted(t, key2, appID, textPush(gh, "o1", "1002", "old key"))
	if status, _ := e.do("POST", signedQuery("oldtoken", now.Unix(), ct2).Encode(), body2); status != 200 {
		t.Errorf("a push with the previous token and key = %d; want accepted during rotation", status)
	}

	wrongApp, wrongAppBody := encrypted(t, key1, "wxb11529c136998cb6", textPush(gh, "o1", "1003", "x"))
	otherAccount, otherAccountBody := encrypted(t, key1, appID, textPush("gh_000000000000", "o1", "1004", "x"))
	doctypeCT, doctypeBody := encrypted(t, key1, appID, `<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><ToUserName>`+gh+`</ToUserName><FromUserName>o1</FromUserName><MsgType>text</MsgType><Content>&x;</Content><MsgId>1</MsgId></xml>`)
	noMsgIDCT, noMsgIDBody := encrypted(t, key1, appID, strings.Replace(good, "<MsgId>1001</MsgId>", "", 1))
	badSig := signedQuery("newtoken", now.Unix(), ct)
	badSig.Set("signature", strings.Repeat("0", 40))
	badMsgSig := signedQuery("newtoken", now.Unix(), ct)
	badMsgSig.Set("msg_signature", Signature("newtoken", fmt.Sprint(now.Unix()), "42", "tampered"))
	tampered := strings.Replace(body, ct[:8], "AAAAAAAA", 1)

	for _, tc := range []struct {
		name   string
		query  url.Values
		body   string
		status int
		want   string
	}{
		{"forged signature", badSig, body, 403, "signature does not match"},
		{"signature by an unknown token", signedQuery("nottoken", now.Unix(), ct), body, 403, "signature does not match"},
		{"msg_signature over another ciphertext", badMsgSig, body, 403, "msg_signature does not match"},
		{"ciphertext changed after signing", signedQuery("newtoken", now.Unix(), ct), tampered, 403, "msg_signature does not match"},
		{"timestamp 6 minutes old (a replay)", signedQuery("newtoken", now.Add(-6*time.Minute).Unix(), ct), body, 403, "replay window"},
		{"timestamp 6 minutes ahead", signedQuery("newtoken", now.Add(6*time.Minute).Unix(), ct), body, 403, "replay window"},
		{"no signature", url.Values{"timestamp": {fmt.Sprint(now.Unix())}}, body, 403, "required"},
		// Whatever is wrong inside a signed ciphertext, the answer is the same (TestSafeModeRefusalsTellNothingDecrypted).
		{"another AppID inside the ciphertext", signedQuery("newtoken", now.Unix(), wrongApp), wrongAppBody, 400, undecryptable},
		{"another account's push", signedQuery("newtoken", now.Unix(), otherAccount), otherAccountBody, 400, undecryptable},
		{"DOCTYPE and entity payload", signedQuery("newtoken", now.Unix(), doctypeCT), doctypeBody, 400, undecryptable},
		{"message without MsgId", signedQuery("newtoken", now.Unix(), noMsgIDCT), noMsgIDBody, 400, undecryptable},
		{"plaintext when safe mode is configured", signedQuery("newtoken", now.Unix(), ""), good, 403, "plaintext push refused"},
		{"malformed XML", signedQuery("newtoken", now.Unix(), ""), "<xml><ToUserName>", 400, "malformed"},
		{"oversize body", signedQuery("newtoken", now.Unix(), ct), body + strings.Repeat(" ", 5000), 413, "larger than 4096"},
		{"not base64", signedQuery("newtoken", now.Unix(), "%%%"), "<xml><ToUserName>" + gh + "</ToUserName><Encrypt>%%%</Encrypt></xml>", 400, undecryptable},
	} {
		status, reply := e.do("POST", tc.query.Encode(), tc.body)
		if status != tc.status || !strings.Contains(reply, tc.want) {
			t.Errorf("%s: %d %q; want %d containing %q", tc.name, status, strings.TrimSpace(reply), tc.status, tc.want)
		}
	}
	if got := e.rec.got(); len(got) != 2 {
		t.Errorf("handed on %d pushes; want only the 2 good ones: %q", len(got), got)
	}
	if status, _ := e.do("PUT", "", ""); status != 405 {
		t.Errorf("PUT = %d; want 405", status)
	}
}

func TestCallbackPlaintextModeAndEvents(t *testing.T) {
	e := newEndpoint(t, CallbackConfig{AppID: appID, OriginalID: gh, Tokens: []string{"tok"}}, now)
	q := signedQuery("tok", now.Unix(), "").Encode()
	push := func(xml string) {
		t.Helper()
		if status, reply := e.do("POST", q, xml); status != 200 || reply != "success" {
			t.Errorf("push = %d %q", status, reply)
		}
	}
	ev := func(from, event, key string) string {
		return "<xml><ToUserName><![CDATA[" + gh + "]]></ToUserName><FromUserName><![CDATA[" + from + "]]></FromUserName><CreateTime>" + fmt.Sprint(now.Unix()) +
			"</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[" + event + "]]></Event><EventKey><![CDATA[" + key + "]]></EventKey></xml>"
	}
	push(ev("o1", "subscribe", "qrscene_emp:ann"))
	push(ev("o2", "SCAN", "emp:bob"))
	push(ev("o3", "subscribe", "last_trade_no_4008072001201701105817415015"))
	push(ev("o4", "subscribe", ""))
	push(ev("o1", "unsubscribe", ""))
	push(ev("o1", "unsubscribe", "")) // WeChat sometimes repeats it
	push(`<xml><ToUserName><![CDATA[` + gh + `]]></ToUserName><FromUserName><![CDATA[o5]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://x]]></PicUrl><MediaId><![CDATA[MEDIA1]]></MediaId><MsgId>7</MsgId></xml>`)
	push(`<xml><ToUserName><![CDATA[` + gh + `]]></ToUserName><FromUserName><![CDATA[o5]]></FromUserName><CreateTime>2</CreateTime><MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[位置信息]]></Label><MsgId>8</MsgId></xml>`)
	push(`<xml><ToUserName><![CDATA[` + gh + `]]></ToUserName><FromUserName><![CDATA[o5]]></FromUserName><CreateTime>3</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID><Status><![CDATA[success]]></Status></xml>`)
	// Two users whose MsgIds collide are two messages (the key is FromUserName + MsgId).
	push(textPush(gh, "o6", "99", "same id"))
	push(textPush(gh, "o7", "99", "same id"))
	want := []string{
		"connect o1 emp:ann (subscribe)",
		"connect o2 emp:bob (SCAN)",
		`event o3 subscribe "last_trade_no_4008072001201701105817415015"`,
		`event o4 subscribe ""`,
		"unsubscribe o1",
		`message o5 image "" media wechat:MEDIA1`,
		`message o5 location "📍 位置信息 (23.134521, 113.358803)"`,
		`event o5 TEMPLATESENDJOBFINISH "template message 200163836: success"`,
		`message o6 text "same id"`,
		`message o7 text "same id"`,
	}
	got := e.rec.got()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("handed on:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Encrypted pushes to a plaintext-mode account are refused clearly.
	if status, reply := e.do("POST", signedQuery("tok", now.Unix(), "abc").Encode(), "<xml><ToUserName>"+gh+"</ToUserName><Encrypt>abc</Encrypt></xml>"); status != 400 || !strings.Contains(reply, "WXTEAMS_WECHAT_AES_KEY") {
		t.Errorf("encrypted push without a key = %d %q", status, reply)
	}
}

func TestCallbackAnswers503WhenThePushCannotBeRecorded(t *testing.T) {
	e := newEndpoint(t, CallbackConfig{AppID: appID, OriginalID: gh, Tokens: []string{"tok"}}, now)
	e.rec.fail = fmt.Errorf("begin: %w", fmt.Errorf("database unavailable"))
	status, reply := e.do("POST", signedQuery("tok", now.Unix(), "").Encode(), textPush(gh, "o1", "5", "hi"))
	if status != 503 || !strings.Contains(reply, "WeChat should retry") {
		t.Errorf("push with the store down = %d %q; want 503 so that WeChat retries", status, reply)
	}
}

// A caller who can sign pushes (a leaked or guessed Token) but has no EncodingAESKey learns nothing
// of what a ciphertext decrypts to: bad padding, a bad length field, another AppID, XML that does
// not parse, a push without MsgId or for another account all get one answer, byte for byte, with
// no pad value or length in it (a padding oracle needs the difference). The log says which.
func TestSafeModeRefusalsTellNothingDecrypted(t *testing.T) {
	cfg := CallbackConfig{AppID: appID, OriginalID: gh, Tokens: []string{"newtoken"}, AESKeys: []string{key1}, MaxBody: 4096}
	core, logs := observer.New(zap.WarnLevel)
	rec := &recorder{}
	cb, err := NewCallback(cfg, rec, clock.NewFake(now), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(cb)
	defer srv.Close()
	e := &endpoint{t: t, url: srv.URL, rec: rec}

	own, _ := NewCipher(key1, appID)
	frame := func(length uint32, body string) string {
		plain := append([]byte("0123456789abcdef"), byte(length>>24), byte(length>>16), byte(length>>8), byte(length))
		plain = append(plain, body...)
		pad := 32 - len(plain)%32
		for range pad {
			plain = append(plain, byte(pad))
		}
		return rawEncrypt(t, own, plain)
	}
	seal := func(forAppID, plain string) string { ct, _ := encrypted(t, key1, forAppID, plain); return ct }
	cases := []struct{ name, ct, logged string }{
		{"pad 0", frameWithLastByte(t, own, 0), "padding"},
		{"pad 33", frameWithLastByte(t, own, 33), "padding"},
		{"pad 200", frameWithLastByte(t, own, 200), "padding"},
		{"length past the buffer", frame(1611744036, "hello"+appID), "length"},
		{"length one past the end", frame(24, "hello"+appID), "length"},
		{"another AppID", seal("wxb11529c136998cb6", textPush(gh, "o1", "1", "x")), "another AppID"},
		{"not XML", seal(appID, "secret text 4242 that is not XML"), "not a well-formed push"},
		{"no MsgId", seal(appID, strings.Replace(textPush(gh, "o1", "1", "x"), "<MsgId>1</MsgId>", "", 1)), "not a well-formed push"},
		{"another account", seal(appID, textPush("gh_000000000000", "o1", "2", "x")), "another account"},
	}
	var first string
	for _, tc := range cases {
		body := "<xml><ToUserName><![CDATA[" + gh + "]]></ToUserName><Encrypt><![CDATA[" + tc.ct + "]]></Encrypt></xml>"
		status, reply := e.do("POST", signedQuery("newtoken", now.Unix(), tc.ct).Encode(), body)
		answer := fmt.Sprintf("%d %s", status, reply)
		if first == "" {
			first = answer
		}
		if status != 400 || answer != first {
			t.Errorf("%s: answered %q; want the same 400 as every other: %q", tc.name, answer, first)
		}
		if strings.ContainsAny(reply, "0123456789") || strings.Contains(reply, "gh_") || strings.Contains(reply, "4242") {
			t.Errorf("%s: the answer %q tells something of the decrypted bytes", tc.name, reply)
		}
	}
	entries := logs.FilterMessage("wechat push refused").All()
	if len(entries) != len(cases) {
		t.Fatalf("%d refusals logged; want %d", len(entries), len(cases))
	}
	for i, entry := range entries {
		detail, _ := entry.ContextMap()["detail"].(string)
		if !strings.Contains(detail, cases[i].logged) {
			t.Errorf("%s: the log says %q; want it to name %q", cases[i].name, detail, cases[i].logged)
		}
		if strings.Contains(detail, "4242") || strings.Contains(detail, "secret text") {
			t.Errorf("%s: the log holds decrypted text: %q", cases[i].name, detail)
		}
	}
	if got := rec.got(); len(got) != 0 {
		t.Errorf("handed on %q", got)
	}
}
