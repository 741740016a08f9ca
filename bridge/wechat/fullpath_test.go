package wechat_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/bridgetest"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/bridge/wechat"
	"github.com/wxteams/wxteams/bridge/wechat/wechatfake"
	"github.com/wxteams/wxteams/compliance"
)

// The full path over real HTTP: the fake's pusher → our callback → the engine → the outbox →
// our client → the fake's API, with the real crypto, signatures, token authority and store.

const (
	appID  = "wx2c2769f8efd9abc2"
	secret = "app-secret"
	gh     = "gh_10f6c3c3ac5a"
	token  = "callbacktoken"
	aesKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	ann    = bridge.EmployeeID("ann-0001")
)

type system struct {
	t      *testing.T
	ctx    context.Context
	clock  *clock.Fake
	store  *sqlstore.Store
	fake   *wechatfake.WeChat
	client *wechat.Client
	engine *bridge.Engine
	teams  *bridgetest.Teams
	policy bridge.Policy
	apiURL string // the fake API
}

type options struct {
	fake    wechatfake.Config
	classic bool
	mode    wechatfake.Mode
	json    bool
	policy  func(*bridge.Policy)
}

func newSystem(t *testing.T, store *sqlstore.Store, opt options) *system {
	t.Helper()
	s := &system{t: t, ctx: context.Background(), clock: clock.NewFake(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)), store: store, teams: &bridgetest.Teams{}}
	cfg := opt.fake
	cfg.AppID, cfg.Secret, cfg.OriginalID = appID, secret, gh
	s.fake = wechatfake.New(cfg, s.clock)
	api := httptest.NewServer(s.fake.Handler())
	t.Cleanup(api.Close)
	s.apiURL = api.URL

	var err error
	s.client, err = wechat.NewClient(wechat.ClientConfig{AppID: appID, Secret: secret, APIBase: api.URL, ClassicToken: opt.classic, Owner: "replica-1"},
		store, store, s.clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.policy = bridge.DefaultPolicy()
	if opt.policy != nil {
		opt.policy(&s.policy)
	}
	s.engine, err = bridge.NewEngine(bridge.Config{Store: store, WeChat: s.client, Teams: s.teams, Media: map[string]bridge.MediaFetcher{"wechat": s.client}, Clock: s.clock, Policy: s.policy})
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{aesKey}
	if opt.mode == wechatfake.Plaintext {
		keys = nil
	}
	cb, err := wechat.NewCallback(wechat.CallbackConfig{AppID: appID, OriginalID: gh, Tokens: []string{token}, AESKeys: keys}, s.engine, s.clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/wechat/callback", cb)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.fake.SetPusher(&wechatfake.Pusher{URL: srv.URL + "/wechat/callback", Token: token, AESKey: aesKey, AppID: appID, OriginalID: gh,
		Mode: opt.mode, JSON: opt.json, Clock: s.clock, Timeout: 5 * time.Second})
	if _, err := s.engine.EnableEmployee(s.ctx, bridge.EmployeeProfile{ID: ann, Name: "Ann Lee"}, "admin:test"); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *system) drain() {
	s.t.Helper()
	if _, err := s.engine.Drain(s.ctx); err != nil {
		s.t.Fatal(err)
	}
}

// scan has the customer scan Ann's QR code, made through the API as the admin would.
func (s *system) scan(openID string) {
	s.t.Helper()
	qr, err := s.client.CreateQR(s.ctx, bridge.SceneFor(ann))
	if err != nil {
		s.t.Fatal(err)
	}
	ticket, ok := s.fake.TicketFor(bridge.SceneFor(ann))
	if !ok || qr.Ticket != ticket {
		s.t.Fatalf("the fake does not know the ticket the client got")
	}
	res, err := s.fake.Scan(s.ctx, openID, ticket)
	if err != nil || !res.Acked {
		s.t.Fatalf("scan push = %+v, %v", res, err)
	}
	s.drain()
}

func (s *system) customer(openID, text string) {
	s.t.Helper()
	res, _, err := s.fake.Send(s.ctx, openID, text)
	if err != nil || !res.Acked {
		s.t.Fatalf("customer message push = %+v, %v", res, err)
	}
	s.drain()
}

func (s *system) employee(chat bridge.ChatID, text string) bridge.Result {
	s.t.Helper()
	res, err := s.engine.EmployeeWrites(s.ctx, bridge.EmployeeMessage{Employee: ann, Chat: chat, Message: bridge.TextMessage(text)})
	if err != nil {
		s.t.Fatal(err)
	}
	s.drain()
	return res
}

func (s *system) chatOf(openID string) bridge.ChatID {
	s.t.Helper()
	var id bridge.ChatID
	err := s.store.InTx(s.ctx, func(tx bridge.Tx) error {
		c, err := tx.LockChatByContact(s.ctx, bridge.OpenID(openID))
		if err == nil {
			id = c.ID
		}
		return err
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return id
}

func (s *system) archived(chat bridge.ChatID) []string {
	s.t.Helper()
	recs, err := s.store.ArchiveStream(s.ctx, compliance.ChatStream(int64(chat)))
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Kind))
	}
	return out
}

func eachStore(t *testing.T, fn func(t *testing.T, store *sqlstore.Store)) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) { fn(t, open(t)) })
}

func TestFullPathSafeModeXML(t *testing.T) {
	eachStore(t, func(t *testing.T, store *sqlstore.Store) {
		testConversation(t, newSystem(t, store, options{mode: wechatfake.Safe}))
	})
}

func TestFullPathCompatibleModeJSON(t *testing.T) {
	eachStore(t, func(t *testing.T, store *sqlstore.Store) {
		testConversation(t, newSystem(t, store, options{mode: wechatfake.Compatible, json: true}))
	})
}

func TestFullPathPlaintextClassicToken(t *testing.T) {
	eachStore(t, func(t *testing.T, store *sqlstore.Store) {
		testConversation(t, newSystem(t, store, options{mode: wechatfake.Plaintext, classic: true}))
	})
}

// testConversation: scan, greet, write, cap, 24 h of silence and the on-hold prompt, reply, flush.
func testConversation(t *testing.T, s *system) {
	const ming = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
	s.scan(ming)
	chat := s.chatOf(ming)
	initial := s.policy.Customer["en"]
	if got := s.fake.Texts(ming); len(got) != 1 || !strings.HasPrefix(got[0], initial.Initial) {
		t.Fatalf("customer received %q; want the initial message", got)
	}
	s.customer(ming, "Hello Ann")
	if got := s.teams.Texts(ann); !slices.Contains(got, "Hello Ann") {
		t.Fatalf("Ann received %q; want the customer's message", got)
	}
	for _, m := range []string{"one", "two", "three", "four"} {
		s.employee(chat, m)
	}
	if got := s.fake.Texts(ming)[1:]; !slices.Equal(got, []string{"one", "two", "three"}) {
		t.Errorf("customer received %q; want three messages", got)
	}
	s.clock.Advance(24 * time.Hour)
	s.drain()
	if got := s.fake.Texts(ming)[4:]; !slices.Equal(got, []string{initial.OnHold}) {
		t.Errorf("after 24 h the customer received %q; want the on-hold prompt", got)
	}
	s.customer(ming, "back")
	if got := s.fake.Texts(ming)[5:]; !slices.Equal(got, []string{"four"}) {
		t.Errorf("after the reply the customer received %q; want the queued message", got)
	}
	if n, err := s.store.VerifyArchive(s.ctx); err != nil {
		t.Errorf("archive after %d records: %v", n, err)
	}
}

func TestWeChat45047And45015FromTheFakeAreQueued(t *testing.T) {
	eachStore(t, func(t *testing.T, store *sqlstore.Store) {
		// An account held to 2 replies per window, and a window an hour shorter than the policy thinks.
		s := newSystem(t, store, options{mode: wechatfake.Safe, fake: wechatfake.Config{MessageQuota: 2, MessageWindow: 47 * time.Hour}})
		const ming = "o-ming"
		s.scan(ming)
		chat := s.chatOf(ming)
		s.customer(ming, "hi")
		s.employee(chat, "one")
		s.employee(chat, "two")
		res := s.employee(chat, "three") // WeChat: 45047
		if res.Outcome != bridge.OutcomeSent {
			t.Fatalf("third = %+v", res)
		}
		last := s.teams.Texts(ann)
		if l := last[len(last)-1]; !strings.Contains(l, "reply quota") {
			t.Errorf("Ann was told %q; want the 45047 notice", l)
		}
		s.customer(ming, "ok")
		if got := s.fake.Texts(ming)[1:]; !slices.Equal(got, []string{"one", "two", "three"}) {
			t.Errorf("customer received %q; want the requeued message after their reply", got)
		}
		s.clock.Advance(47*time.Hour + 30*time.Minute) // the engine's 24 h notice fires; its 48 h not yet
		s.drain()
		res = s.employee(chat, "late") // WeChat: 45015
		if res.Outcome != bridge.OutcomeSent {
			t.Fatalf("late = %+v", res)
		}
		s.customer(ming, "I am back")
		if got := s.fake.Texts(ming); got[len(got)-1] != "late" {
			t.Errorf("customer's last message = %q; want the message WeChat refused with 45015, after they wrote", got[len(got)-1])
		}
		got := s.archived(chat)
		for _, want := range []string{"delivery.requeued", "chat.status"} {
			if !slices.Contains(got, want) {
				t.Errorf("archive lacks %s", want)
			}
		}
		if n := strings.Count(strings.Join(got, " "), "delivery.requeued"); n != 2 {
			t.Errorf("requeued %d times; want 2 (45047, 45015)", n)
		}
	})
}

func TestTokenInvalidatedMidRunBySecondRefresher(t *testing.T) {
	eachStore(t, func(t *testing.T, store *sqlstore.Store) {
		s := newSystem(t, store, options{mode: wechatfake.Safe, classic: true})
		const ming = "o-ming"
		s.scan(ming)
		chat := s.chatOf(ming)
		s.customer(ming, "hi")
		before := s.fake.Requests("/cgi-bin/token")

		// Another tool with the same AppID fetches a token: ours is superseded and, after WeChat's
		// 5 min grace, refused with 40001.
		s.fake.IssueToken()
		s.clock.Advance(6 * time.Minute)
		s.employee(chat, "after the other refresh")
		if got := s.fake.Texts(ming); got[len(got)-1] != "after the other refresh" {
			t.Fatalf("customer's last message = %q", got[len(got)-1])
		}
		if n := s.fake.Requests("/cgi-bin/token") - before; n != 1 {
			t.Errorf("token requests after the 40001 = %d; want exactly one refresh", n)
		}

		// A second replica sharing the store finds the refreshed token there instead of fetching
		// one (which would invalidate ours).
		replica2, err := wechat.NewClient(wechat.ClientConfig{AppID: appID, Secret: secret, APIBase: s.apiURL, ClassicToken: true, Owner: "replica-2"}, store, store, s.clock, nil)
		if err != nil {
			t.Fatal(err)
		}
		before = s.fake.Requests("/cgi-bin/token")
		if err := replica2.SendText(s.ctx, ming, "from replica 2"); err != nil {
			t.Fatal(err)
		}
		if n := s.fake.Requests("/cgi-bin/token") - before; n != 0 {
			t.Errorf("replica 2 fetched %d tokens; want 0 (one refresher)", n)
		}
		if err := s.client.SendText(s.ctx, ming, "from replica 1"); err != nil {
			t.Errorf("replica 1 after replica 2 used the shared token: %v", err)
		}
	})
}

func TestOutcomeUnknownIsNeverResentOverHTTP(t *testing.T) {
	eachStore(t, func(t *testing.T, store *sqlstore.Store) {
		s := newSystem(t, store, options{mode: wechatfake.Safe})
		const ming = "o-ming"
		s.scan(ming)
		chat := s.chatOf(ming)
		s.customer(ming, "hi")

		// The message is delivered, then the answer is lost.
		s.fake.Fail("/cgi-bin/message/custom/send", wechatfake.Fault{Reset: true, Apply: true})
		s.employee(chat, "lost answer")
		s.clock.Advance(time.Hour)
		s.drain()
		if n := strings.Count(strings.Join(s.fake.Texts(ming), "|"), "lost answer"); n != 1 {
			t.Errorf("'lost answer' delivered %d times; want exactly once (no blind resend)", n)
		}
		// "System busy" is an answer: nothing was delivered, so it is retried.
		s.fake.Fail("/cgi-bin/message/custom/send", wechatfake.Fault{Code: -1})
		s.employee(chat, "busy")
		s.clock.Advance(3 * time.Second)
		s.drain()
		if n := strings.Count(strings.Join(s.fake.Texts(ming), "|"), "busy"); n != 1 {
			t.Errorf("'busy' delivered %d times; want once, after the retry", n)
		}
		got := s.archived(chat)
		if !slices.Contains(got, "delivery.unknown") || !slices.Contains(got, "delivery.retry") {
			t.Errorf("archive lacks the unknown outcome or the retry: %v", got)
		}
	})
}

func TestCustomerMediaIsFetchedStoredAndHandedOn(t *testing.T) {
	eachStore(t, func(t *testing.T, store *sqlstore.Store) {
		s := newSystem(t, store, options{mode: wechatfake.Safe})
		const ming = "o-ming"
		s.scan(ming)
		img := testPNG(t)
		res, mediaID, err := s.fake.SendImage(s.ctx, ming, img)
		if err != nil || !res.Acked {
			t.Fatalf("image push = %+v, %v", res, err)
		}
		s.drain()
		msgs := s.teams.Messages(ann)
		card := msgs[len(msgs)-1]
		if card.Message.Media == nil || card.Message.Media.SHA256 == "" || card.Message.Media.ContentType != "image/png" {
			t.Fatalf("Ann's card media = %+v; want the fetched image", card.Message.Media)
		}
		stored, data, err := store.MediaData(s.ctx, card.Message.Media.SHA256)
		if err != nil || !bytes.Equal(data, img) || stored.Size != int64(len(img)) {
			t.Errorf("stored media = %+v, %d bytes, %v; want the customer's image", stored, len(data), err)
		}
		if _, err := store.MediaBySource(s.ctx, wechat.MediaSource(mediaID)); err != nil {
			t.Errorf("media source not remembered: %v", err)
		}
		// Ann sends an image back: uploaded and sent as an image.
		if err := store.InTx(s.ctx, func(tx bridge.Tx) error { return tx.PutMedia(s.ctx, stored, data, s.clock.Now()) }); err != nil {
			t.Fatal(err)
		}
		if _, err := s.engine.EmployeeWrites(s.ctx, bridge.EmployeeMessage{Employee: ann, Chat: s.chatOf(ming), Message: bridge.Message{Type: "image", Media: &bridge.Media{SHA256: stored.SHA256}}}); err != nil {
			t.Fatal(err)
		}
		s.drain()
		delivered := s.fake.Delivered(ming)
		if last := delivered[len(delivered)-1]; last.MsgType != "image" || !bytes.Equal(last.Data, img) {
			t.Errorf("customer's last message = %s; want Ann's image", last.MsgType)
		}
	})
}

func TestCallbackRetriesAndDuplicatesAreArchivedOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, store *sqlstore.Store) {
		s := newSystem(t, store, options{mode: wechatfake.Safe})
		s.fake.Pusher().Duplicates = 2
		const ming = "o-ming"
		s.scan(ming)
		s.customer(ming, "once only")
		chat := s.chatOf(ming)
		got := s.archived(chat)
		if n := strings.Count(strings.Join(got, " "), "customer.message"); n != 1 {
			t.Errorf("customer messages archived = %d; want 1 despite 2 duplicates", n)
		}
		if n := strings.Count(strings.Join(got, " "), "chat.routing"); n != 1 {
			t.Errorf("routing events archived = %d; want 1 despite 2 duplicate scans", n)
		}
		if n := strings.Count(strings.Join(s.teams.Texts(ann), "|"), "once only"); n != 1 {
			t.Errorf("Ann got the message %d times", n)
		}
	})
}

func TestUnsubscribeOverHTTPClosesTheChat(t *testing.T) {
	eachStore(t, func(t *testing.T, store *sqlstore.Store) {
		s := newSystem(t, store, options{mode: wechatfake.Safe})
		const ming = "o-ming"
		s.scan(ming)
		if _, err := s.fake.Unfollow(s.ctx, ming); err != nil {
			t.Fatal(err)
		}
		s.drain()
		res := s.employee(s.chatOf(ming), "hello?")
		if res.Outcome != bridge.OutcomeRefused || res.Reason != "closed" {
			t.Errorf("message after unfollow = %+v; want refused (closed)", res)
		}
	})
}

func testPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	img.Set(2, 2, color.RGBA{G: 200, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// slowIngest delays the first customer message, as a slow database would.
type slowIngest struct {
	wechat.Ingest
	once  sync.Once
	delay time.Duration
}

func (s *slowIngest) CustomerWrites(ctx context.Context, in bridge.Inbound) (bridge.Result, error) {
	s.once.Do(func() { time.Sleep(s.delay) })
	return s.Ingest.CustomerWrites(ctx, in)
}

func TestPusherRetriesASlowCallbackWithTheSameMsgIdAndItIsArchivedOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, store *sqlstore.Store) {
		s := newSystem(t, store, options{mode: wechatfake.Safe})
		const ming = "o-ming"
		s.scan(ming)
		cb, err := wechat.NewCallback(wechat.CallbackConfig{AppID: appID, OriginalID: gh, Tokens: []string{token}, AESKeys: []string{aesKey}},
			&slowIngest{Ingest: s.engine, delay: 400 * time.Millisecond}, s.clock, nil)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(cb)
		defer srv.Close()
		p := s.fake.Pusher()
		p.URL, p.Timeout, p.Attempts = srv.URL, 150*time.Millisecond, 4
		res, _, err := s.fake.Send(s.ctx, ming, "are you there?")
		if err != nil {
			t.Fatal(err)
		}
		if !res.Acked || res.Attempts < 2 {
			t.Fatalf("push = %+v; want acknowledged on a retry", res)
		}
		time.Sleep(500 * time.Millisecond) // let the first, slow attempt finish
		s.drain()
		chat := s.chatOf(ming)
		if n := strings.Count(strings.Join(s.archived(chat), " "), "customer.message"); n != 1 {
			t.Errorf("customer message archived %d times after %d attempts; want once", n, res.Attempts)
		}
		if n := strings.Count(strings.Join(s.teams.Texts(ann), "|"), "are you there?"); n != 1 {
			t.Errorf("Ann got it %d times", n)
		}
	})
}

func TestCollidingMsgIdsRepeatedUnsubscribesAndLocationReports(t *testing.T) {
	eachStore(t, func(t *testing.T, store *sqlstore.Store) {
		s := newSystem(t, store, options{mode: wechatfake.Safe})
		s.scan("o-a")
		s.scan("o-b")
		// Two customers whose messages carry the same MsgId are two messages.
		for _, from := range []string{"o-a", "o-b"} {
			m := s.fake.NewPush(from, "text")
			m.MsgID, m.Content = "6054768590064713728", "same id from "+from
			if res, err := s.fake.PushRaw(s.ctx, m); err != nil || !res.Acked {
				t.Fatalf("push = %+v, %v", res, err)
			}
		}
		// LOCATION every 5 s: each report is its own event.
		for range 3 {
			m := s.fake.NewPush("o-a", "event")
			m.Event, m.Latitude, m.Longitude, m.Precision = "LOCATION", 23.13, 113.35, 30
			s.fake.PushRaw(s.ctx, m)
			s.clock.Advance(5 * time.Second)
		}
		// An unsubscribe pushed twice closes the chat once.
		u := s.fake.NewPush("o-b", "event")
		u.Event = "unsubscribe"
		s.fake.PushRaw(s.ctx, u)
		s.fake.PushRaw(s.ctx, u)
		s.drain()
		texts := strings.Join(s.teams.Texts(ann), "|")
		for _, want := range []string{"same id from o-a", "same id from o-b"} {
			if !strings.Contains(texts, want) {
				t.Errorf("Ann did not get %q", want)
			}
		}
		if n := strings.Count(strings.Join(s.archived(s.chatOf("o-a")), " "), "customer.event"); n != 3 {
			t.Errorf("location reports archived = %d; want 3", n)
		}
		if n := strings.Count(strings.Join(s.archived(s.chatOf("o-b")), " "), "customer.unsubscribe"); n != 1 {
			t.Errorf("unsubscribes archived = %d; want 1", n)
		}
	})
}
