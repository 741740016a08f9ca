package teamsfake

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bridge"
)

// Teams fakes the Bot Connector service and the Teams users behind it. The bot sends to it
// (serviceUrl = its URL); it sends the bot activities, signed by Issuer, as Teams would.
type Teams struct {
	Issuer   *Issuer // signs activities to the bot (Bot Framework issuer, keys endorsed for msteams)
	Entra    *Entra  // issues and checks the bot's outbound tokens
	BotAppID string
	// URL is the fake connector's serviceUrl; BotEndpoint is the bot's /api/messages.
	URL, BotEndpoint string
	// ThreadLimits and MaxBytes are what Teams enforces: 429 with Retry-After, and 413.
	ThreadLimits []bot.Limit
	MaxBytes     int
	HTTP         *http.Client
	// OnReceive, if set, is told of each activity the bot sends, as it arrives (load tests time
	// deliveries with it). It runs with the fake's lock held: it must not call the fake. Set it
	// before the bot sends anything, or with SetOnReceive.
	OnReceive func(Received)
	// TokenFor, if set, makes the bearer token of each activity sent to the bot (an Entra-issued
	// token, say); by default it is a Bot Connector token from Issuer.
	TokenFor func(a *bot.Activity) string
	clock    bridge.Clock

	mu            sync.Mutex
	users         map[string]*User // by Entra object id
	conversations map[string]*User // by conversation id
	received      []Received
	sends         map[string][]time.Time
	forced        []int // statuses forced on the next sends (a 429 storm, 5xx)
	attachments   map[string][]byte
	nextID        int64
	// botToken is the Bot Connector token Post reuses, as the real service does for its lifetime.
	botToken cachedToken
}

// cachedToken is a signed token and what it was signed for.
type cachedToken struct {
	token, kid, serviceURL string
	issued                 time.Time
}

// botTokenReuse is how long Post reuses a Bot Connector token (they are valid for an hour; Teams
// does not sign every activity anew).
const botTokenReuse = 10 * time.Minute

// User is a Teams user.
type User struct {
	AADObjectID    string
	UserID         string // 29:…
	Name           string
	Tenant         string
	UPN            string // the user principal name (sign-in address), if set with SetUPN
	ConversationID string // the personal chat with the bot, once installed
	Installed      bool
	Blocked        bool
}

// Received is an activity the bot sent to a user.
type Received struct {
	User     string // Entra object id
	ID       string
	Activity bot.Activity
	Updated  bool
	At       time.Time // when it arrived (the fake's clock)
}

// New returns a fake Teams for a bot; set URL and BotEndpoint once the servers run.
func New(botAppID string, issuer *Issuer, entra *Entra, clock bridge.Clock) *Teams {
	return &Teams{
		Issuer: issuer, Entra: entra, BotAppID: botAppID, clock: clock, ThreadLimits: bot.DefaultThreadLimits, MaxBytes: 100 << 10,
		users: map[string]*User{}, conversations: map[string]*User{}, sends: map[string][]time.Time{}, attachments: map[string][]byte{},
		nextID: time.Now().UnixMilli(),
	}
}

// AddUser adds a Teams user of a tenant.
func (t *Teams) AddUser(aadObjectID, name, tenant string) *User {
	t.mu.Lock()
	defer t.mu.Unlock()
	u := &User{AADObjectID: aadObjectID, UserID: t.stableID("29:", "user", aadObjectID, 24), Name: name, Tenant: tenant}
	if old, ok := t.users[aadObjectID]; ok {
		u.UPN = old.UPN // a user added again (Restore) keeps their sign-in address
	}
	t.users[aadObjectID] = u
	return u
}

// SetUPN gives a user their user principal name, by which Graph finds them too.
func (t *Teams) SetUPN(aadObjectID, upn string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if u, ok := t.users[aadObjectID]; ok {
		u.UPN = upn
	}
}

// Find returns a copy of the user with that object id or (case-insensitive) user principal name.
func (t *Teams) Find(idOrUPN string) (User, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if u, ok := t.users[idOrUPN]; ok {
		return *u, true
	}
	for _, u := range t.users {
		if u.UPN != "" && strings.EqualFold(u.UPN, idOrUPN) {
			return *u, true
		}
	}
	return User{}, false
}

// stableID is an id Teams keeps for a bot and a user: the 29: user id, the personal conversation.
func (t *Teams) stableID(prefix, kind, aadObjectID string, n int) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + t.BotAppID + "\x00" + aadObjectID))
	return prefix + hex.EncodeToString(sum[:])[:n]
}

// Restore adds a user who installed the app before this fake started (the sandbox after a restart),
// without telling the bot: its ids are the ones Teams gave them then.
func (t *Teams) Restore(aadObjectID, name, tenant string) {
	u := t.AddUser(aadObjectID, name, tenant)
	t.mu.Lock()
	defer t.mu.Unlock()
	u.ConversationID, u.Installed = t.stableID("a:", "conversation", aadObjectID, 40), true
	t.conversations[u.ConversationID] = u
}

// Reconnect tells the bot, with a conversationUpdate from the user, that the user's personal chat
// is now served from this fake's URL: a bot learns a changed serviceUrl from the next activity
// Teams sends it. The sandbox does this after a restart, when the fake listens on a new port.
func (t *Teams) Reconnect(ctx context.Context, aadObjectID string) error {
	u, err := t.user(aadObjectID)
	if err != nil {
		return err
	}
	_, _, err = t.Post(ctx, t.activity(u, "conversationUpdate"))
	return err
}

// SetOnReceive sets OnReceive while the fake may be receiving.
func (t *Teams) SetOnReceive(f func(Received)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.OnReceive = f
}

// connectorToken is a Bot Connector token for an activity from serviceURL: the last one, while it
// is young and signed with the issuer's current key, else a new one.
func (t *Teams) connectorToken(serviceURL string) string {
	now, kid := t.clock.Now(), t.Issuer.CurrentKid()
	t.mu.Lock()
	c := t.botToken
	t.mu.Unlock()
	if c.token != "" && c.kid == kid && c.serviceURL == serviceURL && !now.Before(c.issued) && now.Sub(c.issued) < botTokenReuse {
		return c.token
	}
	c = cachedToken{token: t.Issuer.BotToken(t.BotAppID, serviceURL), kid: kid, serviceURL: serviceURL, issued: now}
	t.mu.Lock()
	t.botToken = c
	t.mu.Unlock()
	return c.token
}

// User returns a copy of a user.
func (t *Teams) User(aadObjectID string) (User, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	u, ok := t.users[aadObjectID]
	if !ok {
		return User{}, false
	}
	return *u, true
}

// Storm makes the next n sends fail with status (429 comes with Retry-After: 1).
func (t *Teams) Storm(status, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for range n {
		t.forced = append(t.forced, status)
	}
}

// Received returns what the bot sent a user, in order.
func (t *Teams) Received(aadObjectID string) []Received {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Received
	for _, r := range t.received {
		if r.User == aadObjectID {
			out = append(out, r)
		}
	}
	return out
}

// Texts returns the visible texts of what the bot sent a user: each card's text blocks joined by
// newlines, or the plain text; "[image]" for inline images.
func (t *Teams) Texts(aadObjectID string) []string {
	var out []string
	for _, r := range t.Received(aadObjectID) {
		out = append(out, VisibleText(&r.Activity))
	}
	return out
}

// VisibleText is what a user reads of an activity.
func VisibleText(a *bot.Activity) string {
	if len(a.Attachments) == 0 {
		return a.Text
	}
	var parts []string
	for _, att := range a.Attachments {
		if att.ContentType != bot.ContentTypeAdaptiveCard {
			parts = append(parts, "[image]")
			continue
		}
		var c struct {
			Body []json.RawMessage `json:"body"`
		}
		_ = json.Unmarshal(att.Content, &c)
		for _, b := range c.Body {
			parts = append(parts, blockTexts(b)...)
		}
	}
	return strings.Join(parts, "\n")
}

// blockTexts collects the TextBlocks of a card element, in order.
func blockTexts(raw json.RawMessage) []string {
	var el struct {
		Type    string            `json:"type"`
		Text    string            `json:"text"`
		Columns []json.RawMessage `json:"columns"`
		Items   []json.RawMessage `json:"items"`
	}
	_ = json.Unmarshal(raw, &el)
	var out []string
	if el.Type == "TextBlock" && !strings.HasPrefix(el.Text, "{{DATE") {
		out = append(out, el.Text)
	}
	for _, c := range append(el.Columns, el.Items...) {
		out = append(out, blockTexts(c)...)
	}
	return out
}

// Handler serves the Bot Connector API and the users' attachments.
func (t *Teams) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v3/conversations", t.createConversation)
	mux.HandleFunc("POST /v3/conversations/{conv}/activities", t.sendActivity)
	mux.HandleFunc("PUT /v3/conversations/{conv}/activities/{id}", t.updateActivity)
	mux.HandleFunc("GET /attachments/{id}", t.attachment)
	return mux
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// authorized checks the bot's outbound token: issued by the fake Entra for the Bot Framework.
func (t *Teams) authorized(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || t.Entra == nil || !t.Entra.Valid(tok, bot.BotFrameworkScope) {
		fail(w, http.StatusUnauthorized, "BotNotRegistered", "Authorization has been denied for this request.")
		return false
	}
	return true
}

func (t *Teams) createConversation(w http.ResponseWriter, r *http.Request) {
	if !t.authorized(w, r) {
		return
	}
	var req struct {
		Members []struct {
			ID string `json:"id"`
		} `json:"members"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Members) != 1 {
		fail(w, http.StatusBadRequest, "BadArgument", "exactly one member is required")
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, u := range t.users {
		if u.UserID == req.Members[0].ID {
			if !u.Installed {
				fail(w, http.StatusForbidden, "ForbiddenOperationException", "Bot is not installed in user's personal scope")
				return
			}
			writeJSON(w, http.StatusCreated, map[string]string{"id": u.ConversationID})
			return
		}
	}
	fail(w, http.StatusNotFound, "MemberNotFound", "no such user")
}

func (t *Teams) sendActivity(w http.ResponseWriter, r *http.Request) {
	if !t.authorized(w, r) {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	var a bot.Activity
	if err := json.Unmarshal(body, &a); err != nil {
		fail(w, http.StatusBadRequest, "BadArgument", "malformed activity")
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	u, ok := t.conversations[r.PathValue("conv")]
	switch {
	case !ok:
		fail(w, http.StatusNotFound, "ConversationNotFound", "Conversation not found.")
		return
	case u.Blocked:
		fail(w, http.StatusForbidden, "ConversationBlockedByUser", "User blocked the conversation with the bot.")
		return
	case !u.Installed:
		fail(w, http.StatusForbidden, "BotNotInConversationRoster", "The bot is not part of the conversation roster.")
		return
	}
	if len(t.forced) > 0 {
		status := t.forced[0]
		t.forced = t.forced[1:]
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		fail(w, status, http.StatusText(status), "injected fault")
		return
	}
	if wait := t.overLimitLocked(u.ConversationID); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		fail(w, http.StatusTooManyRequests, "Throttled", "Too many requests.")
		return
	}
	if size := textSize(&a, body); size > t.MaxBytes {
		fail(w, http.StatusRequestEntityTooLarge, "MessageSizeTooBig", fmt.Sprintf("Message size %d exceeds %d", size, t.MaxBytes))
		return
	}
	t.nextID++
	id := strconv.FormatInt(t.nextID, 10)
	got := Received{User: u.AADObjectID, ID: id, Activity: a, At: t.clock.Now()}
	t.received = append(t.received, got)
	if t.OnReceive != nil {
		t.OnReceive(got)
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

// textSize is the activity's size as Teams counts it: without base64 images.
func textSize(a *bot.Activity, body []byte) int {
	n := len(body)
	for _, att := range a.Attachments {
		if strings.HasPrefix(att.ContentURL, "data:") {
			n -= len(att.ContentURL)
		}
	}
	return n
}

// overLimitLocked records a send and returns how long to wait if it breaks a per-thread limit.
func (t *Teams) overLimitLocked(conv string) time.Duration {
	now := time.Now()
	times := t.sends[conv]
	var wait time.Duration
	for _, lim := range t.ThreadLimits {
		in := 0
		for i := len(times) - 1; i >= 0 && now.Sub(times[i]) < lim.Per; i-- {
			in++
		}
		if in >= lim.N {
			wait = max(wait, lim.Per-now.Sub(times[len(times)-lim.N]))
		}
	}
	if wait == 0 {
		t.sends[conv] = append(times, now)
	}
	return wait
}

func (t *Teams) updateActivity(w http.ResponseWriter, r *http.Request) {
	if !t.authorized(w, r) {
		return
	}
	var a bot.Activity
	if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
		fail(w, http.StatusBadRequest, "BadArgument", "malformed activity")
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.received {
		if t.received[i].ID == r.PathValue("id") {
			t.received[i].Activity, t.received[i].Updated = a, true
			writeJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
			return
		}
	}
	fail(w, http.StatusNotFound, "ActivityNotFoundInConversation", "Activity not found.")
}

// attachment serves an image a user pasted; Teams requires the bot's token for it.
func (t *Teams) attachment(w http.ResponseWriter, r *http.Request) {
	if !t.authorized(w, r) {
		return
	}
	t.mu.Lock()
	data, ok := t.attachments[r.PathValue("id")]
	t.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", http.DetectContentType(data))
	_, _ = w.Write(data)
}

// Install adds the app for a user, as Graph's installedApps would, and tells the bot with the
// installationUpdate and conversationUpdate Teams sends. It returns the conversation id.
func (t *Teams) Install(ctx context.Context, aadObjectID string) (string, error) {
	t.mu.Lock()
	u, ok := t.users[aadObjectID]
	if !ok {
		t.mu.Unlock()
		return "", fmt.Errorf("teamsfake: no user %s", aadObjectID)
	}
	if u.ConversationID == "" {
		u.ConversationID = t.stableID("a:", "conversation", aadObjectID, 40)
		t.conversations[u.ConversationID] = u
	}
	u.Installed = true
	user := *u
	t.mu.Unlock()
	install := t.activity(user, "installationUpdate")
	install.Action = "add"
	if _, _, err := t.Post(ctx, install); err != nil {
		return "", err
	}
	update := t.activity(user, "conversationUpdate")
	update.MembersAdded = []bot.ChannelAccount{{ID: "28:" + t.BotAppID}, {ID: user.UserID, AADObjectID: user.AADObjectID}}
	_, _, err := t.Post(ctx, update)
	return user.ConversationID, err
}

// Uninstall removes the app: the bot is told, and its sends are refused from then on.
func (t *Teams) Uninstall(ctx context.Context, aadObjectID string) error {
	t.mu.Lock()
	u := t.users[aadObjectID]
	u.Installed = false
	user := *u
	t.mu.Unlock()
	a := t.activity(user, "installationUpdate")
	a.Action = "remove"
	_, _, err := t.Post(ctx, a)
	return err
}

// Block makes a user block the bot.
func (t *Teams) Block(aadObjectID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.users[aadObjectID].Blocked = true
}

// activity is an activity from a user to the bot in their personal chat.
func (t *Teams) activity(u User, kind string) *bot.Activity {
	t.mu.Lock()
	t.nextID++
	id := strconv.FormatInt(t.nextID, 10)
	t.mu.Unlock()
	if kind != "message" {
		id = "f:" + id
	}
	cd, _ := json.Marshal(map[string]any{"tenant": map[string]string{"id": u.Tenant}})
	return &bot.Activity{
		Type: kind, ID: id, Timestamp: t.clock.Now().UTC().Format(time.RFC3339Nano), ServiceURL: t.URL, ChannelID: "msteams",
		From:         bot.ChannelAccount{ID: u.UserID, Name: u.Name, AADObjectID: u.AADObjectID},
		Conversation: bot.ConversationAccount{ID: u.ConversationID, ConversationType: "personal", TenantID: u.Tenant},
		Recipient:    bot.ChannelAccount{ID: "28:" + t.BotAppID, Name: "wxteams"},
		ChannelData:  cd, Locale: "en-US",
	}
}

// Post sends an activity to the bot with a Bot Connector token, and returns the answer.
func (t *Teams) Post(ctx context.Context, a *bot.Activity) (int, []byte, error) {
	body, _ := json.Marshal(a)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.BotEndpoint, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	var token string
	if t.TokenFor != nil {
		token = t.TokenFor(a)
	} else {
		token = t.connectorToken(a.ServiceURL)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	hc := t.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return resp.StatusCode, answer, fmt.Errorf("teamsfake: the bot answered %d: %s", resp.StatusCode, answer)
	}
	return resp.StatusCode, answer, nil
}

func (t *Teams) user(aadObjectID string) (User, error) {
	u, ok := t.User(aadObjectID)
	if !ok || !u.Installed {
		return u, errors.New("teamsfake: the user does not have the app")
	}
	return u, nil
}

// Say has a user send the bot a message; it returns the activity id.
func (t *Teams) Say(ctx context.Context, aadObjectID, text string) (string, error) {
	u, err := t.user(aadObjectID)
	if err != nil {
		return "", err
	}
	a := t.activity(u, "message")
	a.Text, a.TextFormat = text, "plain"
	a.Attachments = []bot.Attachment{{ContentType: "text/html", Content: json.RawMessage(strconvQuote("<p>" + text + "</p>"))}}
	_, _, err = t.Post(ctx, a)
	return a.ID, err
}

// SayWithImage has a user paste an image (with optional text).
func (t *Teams) SayWithImage(ctx context.Context, aadObjectID, text string, image []byte) (string, error) {
	u, err := t.user(aadObjectID)
	if err != nil {
		return "", err
	}
	id := randomHex(8)
	t.mu.Lock()
	t.attachments[id] = image
	t.mu.Unlock()
	a := t.activity(u, "message")
	a.Text = text
	a.Attachments = []bot.Attachment{{ContentType: "image/*", ContentURL: t.URL + "/attachments/" + id}}
	_, _, err = t.Post(ctx, a)
	return a.ID, err
}

// SayWith has a user send a message with the given attachments (as a Teams client would put
// them: a pasted image's contentUrl, a file's download info); it returns the activity id.
func (t *Teams) SayWith(ctx context.Context, aadObjectID, text string, attachments ...bot.Attachment) (string, error) {
	u, err := t.user(aadObjectID)
	if err != nil {
		return "", err
	}
	a := t.activity(u, "message")
	a.Text, a.Attachments = text, attachments
	_, _, err = t.Post(ctx, a)
	return a.ID, err
}

// FileAttachment is a file a user attaches in a personal chat, as Teams describes it to the bot
// (teams-bot-facts §3.9): the file's SharePoint address, and a download URL that carries its own
// authorization.
func FileAttachment(name, contentURL, downloadURL, fileType string) bot.Attachment {
	content, _ := json.Marshal(map[string]string{"downloadUrl": downloadURL, "uniqueId": strings.ToUpper(randomHex(8) + "-" + randomHex(4) + "-" + randomHex(4) + "-" + randomHex(4) + "-" + randomHex(12)),
		"fileType": fileType, "etag": randomHex(6)})
	return bot.Attachment{ContentType: bot.ContentTypeFileDownload, ContentURL: contentURL, Name: name, Content: content}
}

// Edit and Delete have a user change or remove a message they sent.
func (t *Teams) Edit(ctx context.Context, aadObjectID, activityID, text string) error {
	return t.change(ctx, aadObjectID, activityID, "messageUpdate", "editMessage", text)
}

// Delete soft-deletes a message.
func (t *Teams) Delete(ctx context.Context, aadObjectID, activityID string) error {
	return t.change(ctx, aadObjectID, activityID, "messageDelete", "softDeleteMessage", "")
}

func (t *Teams) change(ctx context.Context, aadObjectID, activityID, kind, event, text string) error {
	u, err := t.user(aadObjectID)
	if err != nil {
		return err
	}
	a := t.activity(u, kind)
	a.ID, a.Text = activityID, text
	a.ChannelData, _ = json.Marshal(map[string]any{"tenant": map[string]string{"id": u.Tenant}, "eventType": event})
	_, _, err = t.Post(ctx, a)
	return err
}

// Click has a user press an Action.Execute button on a card the bot sent; it returns the bot's
// invoke response body.
func (t *Teams) Click(ctx context.Context, aadObjectID, cardActivityID, verb string, data any) ([]byte, error) {
	u, err := t.user(aadObjectID)
	if err != nil {
		return nil, err
	}
	a := t.activity(u, "invoke")
	a.Name, a.ReplyToID = "adaptiveCard/action", cardActivityID
	a.Value, _ = json.Marshal(map[string]any{"action": map[string]any{"type": "Action.Execute", "verb": verb, "data": data}, "trigger": "manual"})
	_, body, err := t.Post(ctx, a)
	return body, err
}

// Submit has a user press a classic Action.Submit button: a message with the data as its value.
func (t *Teams) Submit(ctx context.Context, aadObjectID string, data any) error {
	u, err := t.user(aadObjectID)
	if err != nil {
		return err
	}
	a := t.activity(u, "message")
	a.Value, _ = json.Marshal(data)
	_, _, err = t.Post(ctx, a)
	return err
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
