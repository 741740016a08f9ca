package wechatfake

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/wxteams/wxteams/bridge/wechat"
)

// This file is what WeChat users do: follow, scan, write, unfollow. Each action updates the
// fake's ledger as WeChat does — a message opens a window of MessageQuota messages for
// MessageWindow; a follow or scan opens FollowQuota for FollowWindow; a new action replaces the
// window, it does not add to it — and then pushes the event to the callback.

// SetPusher tells the fake how to reach the callback.
func (w *WeChat) SetPusher(p *Pusher) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pusher = p
}

// Pusher returns the pusher the fake uses.
func (w *WeChat) Pusher() *Pusher {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pusher
}

// userLocked returns (creating) a user.
func (w *WeChat) userLocked(openID string) *User {
	u, ok := w.users[openID]
	if !ok {
		u = &User{OpenID: openID, Language: "zh_CN"}
		w.users[openID] = u
	}
	return u
}

// openWindowLocked replaces a user's window.
func (w *WeChat) openWindowLocked(u *User, kind string) {
	now := w.clock.Now()
	u.WindowKind = kind
	if kind == "message" {
		u.Remaining, u.WindowEnds = w.cfg.MessageQuota, now.Add(w.cfg.MessageWindow)
	} else {
		u.Remaining, u.WindowEnds = w.cfg.FollowQuota, now.Add(w.cfg.FollowWindow)
	}
	u.lastInteraction = now
}

// SetLanguage sets the language WeChat reports for a user (zh_CN by default).
func (w *WeChat) SetLanguage(openID, lang string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.userLocked(openID).Language = lang
}

func (w *WeChat) base(openID, msgType string) *wechat.Push {
	return &wechat.Push{ToUserName: w.cfg.OriginalID, FromUserName: openID, CreateTime: w.clock.Now().Unix(), MsgType: msgType}
}

func (w *WeChat) nextMsgIDLocked() string {
	w.msgID++
	return strconv.FormatInt(w.msgID, 10)
}

// push sends a push through the pusher.
func (w *WeChat) push(ctx context.Context, m *wechat.Push) (Result, error) {
	p := w.Pusher()
	if p == nil {
		return Result{}, ErrNoPusher
	}
	return p.Push(ctx, m)
}

// Restore adds a follower from before this fake started (the sandbox after a restart) without a
// push; they have no open window until they write.
func (w *WeChat) Restore(openID, lang string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	u := w.userLocked(openID)
	u.Following = true
	if lang != "" {
		u.Language = lang
	}
}

// Users lists the fake's users by openid.
func (w *WeChat) Users() []User {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]User, 0, len(w.users))
	for _, u := range w.users {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OpenID < out[j].OpenID })
	return out
}

// Follow has a user follow the account without a QR code (search, a shared card).
func (w *WeChat) Follow(ctx context.Context, openID string) (Result, error) {
	w.mu.Lock()
	u := w.userLocked(openID)
	u.Following, u.subscribedAt = true, w.clock.Now()
	w.openWindowLocked(u, "follow")
	m := w.base(openID, "event")
	m.Event = "subscribe"
	w.mu.Unlock()
	return w.push(ctx, m)
}

// Scan has a user scan a QR code by its ticket: a subscribe with EventKey qrscene_<scene> when
// they do not follow yet, a SCAN with the scene when they do. An expired ticket does nothing.
func (w *WeChat) Scan(ctx context.Context, openID, ticket string) (Result, error) {
	w.mu.Lock()
	q, ok := w.tickets[ticket]
	if !ok || (!q.permanent && !w.clock.Now().Before(q.expires)) {
		w.mu.Unlock()
		return Result{}, fmt.Errorf("wechatfake: ticket %q is unknown or expired: scanning it does nothing", ticket)
	}
	u := w.userLocked(openID)
	m := w.base(openID, "event")
	m.Ticket = ticket
	if u.Following {
		m.Event, m.EventKey = "SCAN", q.scene
	} else {
		m.Event, m.EventKey = "subscribe", "qrscene_"+q.scene
		u.Following, u.subscribedAt, u.qrScene = true, w.clock.Now(), q.scene
	}
	w.openWindowLocked(u, "follow")
	w.mu.Unlock()
	return w.push(ctx, m)
}

// TicketFor returns the ticket of the permanent QR code made for a scene.
func (w *WeChat) TicketFor(scene string) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.permanent[scene]
	return t, ok
}

// ScanScene has a user scan the permanent QR code of a scene, creating the code as qrcode/create
// would if the server has not made it yet.
func (w *WeChat) ScanScene(ctx context.Context, openID, scene string) (Result, error) {
	w.mu.Lock()
	ticket, ok := w.permanent[scene]
	if !ok {
		ticket = "gQ" + randomID(30)
		w.tickets[ticket] = &qrTicket{scene: scene, url: "http://weixin.qq.com/q/" + randomID(11), permanent: true}
		w.permanent[scene] = ticket
	}
	w.mu.Unlock()
	return w.Scan(ctx, openID, ticket)
}

// Send has a user write a text message. It returns the push's result and its MsgId.
func (w *WeChat) Send(ctx context.Context, openID, text string) (Result, string, error) {
	w.mu.Lock()
	u := w.userLocked(openID)
	if !u.Following {
		w.mu.Unlock()
		return Result{}, "", fmt.Errorf("wechatfake: %s does not follow the account and cannot write to it", openID)
	}
	w.openWindowLocked(u, "message")
	m := w.base(openID, "text")
	m.Content, m.MsgID = text, w.nextMsgIDLocked()
	w.mu.Unlock()
	res, err := w.push(ctx, m)
	return res, m.MsgID, err
}

// SendImage has a user send an image; the fake keeps it for media/get for MediaLife.
func (w *WeChat) SendImage(ctx context.Context, openID string, data []byte) (Result, string, error) {
	w.mu.Lock()
	u := w.userLocked(openID)
	if !u.Following {
		w.mu.Unlock()
		return Result{}, "", fmt.Errorf("wechatfake: %s does not follow the account", openID)
	}
	w.openWindowLocked(u, "message")
	id := randomID(24)
	w.media[id] = &media{kind: "image", contentType: wechat.SniffMedia(data), data: data, created: w.clock.Now()}
	m := w.base(openID, "image")
	m.MediaID, m.PicURL, m.MsgID = id, "http://mmbiz.qpic.cn/mmbiz/"+id, w.nextMsgIDLocked()
	w.mu.Unlock()
	res, err := w.push(ctx, m)
	return res, id, err
}

// SendLocation has a user share a location.
func (w *WeChat) SendLocation(ctx context.Context, openID string, x, y float64, label string) (Result, error) {
	w.mu.Lock()
	u := w.userLocked(openID)
	w.openWindowLocked(u, "message")
	m := w.base(openID, "location")
	m.LocationX, m.LocationY, m.Scale, m.Label, m.MsgID = x, y, 15, label, w.nextMsgIDLocked()
	w.mu.Unlock()
	return w.push(ctx, m)
}

// Unfollow has a user unfollow the account.
func (w *WeChat) Unfollow(ctx context.Context, openID string) (Result, error) {
	w.mu.Lock()
	u := w.userLocked(openID)
	u.Following = false
	m := w.base(openID, "event")
	m.Event = "unsubscribe"
	w.mu.Unlock()
	return w.push(ctx, m)
}

// PushRaw sends any push, for tests of duplicates and oddities (colliding MsgIds, repeated
// unsubscribes, a LOCATION every 5 s) without changing the ledger.
func (w *WeChat) PushRaw(ctx context.Context, m *wechat.Push) (Result, error) {
	return w.push(ctx, m)
}

// NewPush returns a push from a user to this account, stamped now.
func (w *WeChat) NewPush(openID, msgType string) *wechat.Push {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.base(openID, msgType)
	if msgType != "event" {
		m.MsgID = w.nextMsgIDLocked()
	}
	return m
}
