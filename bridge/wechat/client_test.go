package wechat_test

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/bridge/wechat"
	"github.com/wxteams/wxteams/bridge/wechat/wechatfake"
)

func TestErrcodesMapToAClosedSetOfKinds(t *testing.T) {
	for code, want := range map[int]wechat.ErrorKind{
		45015: wechat.KindWindowClosed, 45047: wechat.KindQuotaUsed,
		43004: wechat.KindNotFollower, 40003: wechat.KindNotFollower, 48002: wechat.KindNotFollower,
		40001: wechat.KindToken, 40014: wechat.KindToken, 42001: wechat.KindToken,
		45009: wechat.KindDailyQuota, -1: wechat.KindRetryable, 45011: wechat.KindRetryable,
		48001: wechat.KindConfig, 40164: wechat.KindConfig, 40125: wechat.KindConfig, 40013: wechat.KindConfig,
		45002: wechat.KindPermanent, 40007: wechat.KindPermanent, 99999: wechat.KindPermanent,
	} {
		if got := wechat.KindOf(code); got != want {
			t.Errorf("KindOf(%d) = %s; want %s", code, got, want)
		}
	}
	// The bridge sees the kinds through its sentinels, whatever the errmsg says.
	for _, tc := range []struct {
		code int
		want error
	}{{45015, bridge.ErrWindowClosed}, {45047, bridge.ErrQuotaUsed}, {43004, bridge.ErrNotFollower}, {-1, bridge.ErrRetryLater}, {45009, bridge.ErrRetryLater}} {
		err := &wechat.APIError{Op: "message/custom/send", Code: tc.code, Msg: "anything at all"}
		if !errors.Is(err, tc.want) {
			t.Errorf("errcode %d is not %v", tc.code, tc.want)
		}
	}
	if errors.Is(&wechat.APIError{Code: 45002}, bridge.ErrRetryLater) {
		t.Error("45002 content size out of limit is retryable")
	}
}

// apiClient is a client on a fake with a SQLite token store.
func apiClient(t *testing.T, cfg wechatfake.Config) (*wechat.Client, *wechatfake.WeChat, *system) {
	t.Helper()
	s := newSystem(t, sqlstoretest.SQLite(t), options{mode: wechatfake.Safe, fake: cfg})
	return s.client, s.fake, s
}

func TestClientQRCodeRendersLocally(t *testing.T) {
	client, fake, s := apiClient(t, wechatfake.Config{})
	qr, err := client.CreateQR(s.ctx, "emp:ann-0001")
	if err != nil {
		t.Fatal(err)
	}
	if ticket, _ := fake.TicketFor("emp:ann-0001"); ticket != qr.Ticket {
		t.Errorf("ticket %q not the fake's %q", qr.Ticket, ticket)
	}
	pngBytes, err := wechat.QRPNG(qr.URL, 300)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil || img.Bounds().Dx() < 290 {
		t.Errorf("QR PNG = %v, %v; want a ~300 px image", img.Bounds(), err)
	}
	if _, err := client.CreateQR(s.ctx, strings.Repeat("x", 65)); err == nil {
		t.Error("a 65-character scene was accepted")
	}

	// QRCode makes a permanent code once per scene and renders it locally after that.
	before := fake.Requests("/cgi-bin/qrcode/create")
	first, err := client.QRCode(s.ctx, "emp:bob-0002")
	if err != nil {
		t.Fatal(err)
	}
	again, err := client.QRCode(s.ctx, "emp:bob-0002")
	if err != nil || !bytes.Equal(first, again) {
		t.Fatalf("second QRCode = %d bytes, %v; want the same image", len(again), err)
	}
	if n := fake.Requests("/cgi-bin/qrcode/create") - before; n != 1 {
		t.Errorf("qrcode/create called %d times for two renders of one scene; want 1", n)
	}
	if _, err := png.Decode(bytes.NewReader(first)); err != nil {
		t.Errorf("QRCode is not a PNG: %v", err)
	}
}

func TestClientTypingUserInfoAndTemplates(t *testing.T) {
	client, fake, s := apiClient(t, wechatfake.Config{})
	const ming = "o-ming"
	s.scan(ming)
	s.customer(ming, "hi")
	if err := client.Typing(s.ctx, ming, true); err != nil {
		t.Errorf("typing within 30 s of the customer's message: %v", err)
	}
	var api *wechat.APIError
	if err := client.Typing(s.ctx, ming, true); !errors.As(err, &api) || api.Code != 45081 {
		t.Errorf("typing twice = %v; want 45081", err)
	}
	info, err := client.UserInfo(s.ctx, ming)
	if err != nil || info.Subscribe != 1 || info.Language != "zh_CN" || info.QRSceneStr != bridge.SceneFor(ann) {
		t.Errorf("UserInfo = %+v, %v", info, err)
	}
	id, payload, err := client.SendTemplate(s.ctx, ming, &bridge.TemplateSend{ID: "TPL", Data: map[string]string{"keyword1": "Acme"}})
	if err != nil || id == "" || !strings.Contains(string(payload), `"template_id":"TPL"`) {
		t.Errorf("SendTemplate = %q, %s, %v", id, payload, err)
	}
	if d := fake.Delivered(ming); d[len(d)-1].Template["keyword1"] != "Acme" {
		t.Errorf("template data not delivered: %+v", d[len(d)-1])
	}
	if _, err := client.UserInfo(s.ctx, "o-nobody"); !errors.As(err, &api) || api.Code != 40003 {
		t.Errorf("UserInfo of an unknown openid = %v; want 40003", err)
	}
}

func TestClientUploadLimits(t *testing.T) {
	client, _, s := apiClient(t, wechatfake.Config{})
	ctx := context.Background()
	img := testPNG(t)
	if _, err := client.UploadMedia(ctx, "image", "a.png", img); err != nil {
		t.Errorf("upload of a small PNG: %v", err)
	}
	for _, tc := range []struct {
		kind string
		data []byte
		want string
	}{
		{"image", append(append([]byte{}, img...), make([]byte, 10<<20)...), "WeChat takes at most 10.0 MB"},
		{"image", []byte("%PDF-1.7 not an image"), "must be one of image/png, image/jpeg, image/gif"},
		{"voice", img, "must be one of audio/amr, audio/mpeg"},
		{"sticker", img, "not one of image, voice, video, thumb"},
	} {
		if _, err := client.UploadMedia(ctx, tc.kind, "f", tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("upload %s: %v; want an error containing %q", tc.kind, err, tc.want)
		}
	}
	// A file an employee attached is refused before anything reaches WeChat, with a clear reason.
	_, err := client.SendWeChat(s.ctx, &bridge.Contact{OpenID: "o"}, &bridge.WeChatMessage{Message: bridge.Message{Type: "file", Media: &bridge.Media{SHA256: "x"}}})
	if err == nil || !strings.Contains(err.Error(), "only text and images") {
		t.Errorf("sending a file = %v", err)
	}
}

func TestStableTokenForcedOnlyWhenRefused(t *testing.T) {
	client, fake, s := apiClient(t, wechatfake.Config{})
	const ming = "o-ming"
	s.scan(ming)
	s.customer(ming, "hi")
	before := fake.Requests("/cgi-bin/stable_token")
	for range 3 {
		if err := client.SendText(s.ctx, ming, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if n := fake.Requests("/cgi-bin/stable_token") - before; n != 0 {
		t.Errorf("%d stable_token calls for three sends with a valid token; want 0", n)
	}
	fake.ExpireAllTokens()
	s.clock.Advance(time.Second)
	if err := client.SendText(s.ctx, ming, "after expiry"); err != nil {
		t.Fatalf("send after the token expired: %v", err)
	}
	if n := fake.Requests("/cgi-bin/stable_token") - before; n < 1 || n > 2 {
		t.Errorf("stable_token calls after expiry = %d; want one refresh (plus a forced one if it handed back the same)", n)
	}
}
