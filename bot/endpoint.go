package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/compliance"
)

// Bridge is what the endpoint asks of the bridge (bridge.Engine).
type Bridge interface {
	RegisterTeamsUser(ctx context.Context, u bridge.TeamsUser) (*bridge.Employee, error)
	TeamsUninstalled(ctx context.Context, id bridge.EmployeeID) error
	EmployeeWrites(ctx context.Context, in bridge.EmployeeMessage) (bridge.Result, error)
	EmployeeEdited(ctx context.Context, in bridge.EmployeeEdit) error
	SetCurrentChat(ctx context.Context, emp bridge.EmployeeID, chat bridge.ChatID) error
	Chats(ctx context.Context, emp bridge.EmployeeID) ([]bridge.ChatSummary, error)
	RenameContact(ctx context.Context, emp bridge.EmployeeID, chat bridge.ChatID, name string) error
	ChangeMembers(ctx context.Context, in bridge.MembersChange) error
	Employees(ctx context.Context) ([]*bridge.Employee, error)
	NotifyEmployee(ctx context.Context, n bridge.Notice) error
	StoreMedia(ctx context.Context, m *bridge.Media, data []byte) error
}

var _ Bridge = (*bridge.Engine)(nil)

// QRSource renders an employee's WeChat QR code (the WeChat adapter, wired by cmd/wxteams).
type QRSource interface {
	QRCode(ctx context.Context, scene string) ([]byte, error)
}

// EndpointConfig configures the messaging endpoint.
type EndpointConfig struct {
	AppID string
	// TenantID is the bot's Entra tenant: an activity whose channelData.tenant.id or
	// conversation.tenantId names another tenant, or that names none, is refused with a 403 and
	// archived as refused. Empty accepts every tenant.
	TenantID string
	// Entra, if set, also accepts tokens Entra ID issued for the bot, from the callers it lists.
	Entra *EntraActivities
	// Archive records refused activities (bounded: see refusals) [none: they are only logged].
	Archive Archive
	// Clock times the refusal records [the system clock].
	Clock   bridge.Clock
	MaxBody int64 // [256 KiB]
	// Receipts, if set, is told of every authenticated activity from a person, and of each
	// authenticated activity then refused.
	Receipts bridge.Receipts
}

// Archive appends events to the compliance archive (bridge/sqlstore implements it).
type Archive interface {
	Archive(ctx context.Context, events ...compliance.Event) error
}

// Endpoint is POST /api/messages: every activity is authenticated, then archived and committed
// through the bridge, and only then answered — quickly, since Teams retries a bot that takes more
// than about 15 s. Work that reaches WeChat happens later, from the outbox.
type Endpoint struct {
	cfg       EndpointConfig
	validator *Validator
	connector *Connector // for the serviceUrl allowlist
	bridge    Bridge
	qr        QRSource
	log       *zap.Logger
	refusals  *refusals
}

// NewEndpoint returns the messaging endpoint. qr may be nil (no WeChat configured).
func NewEndpoint(cfg EndpointConfig, v *Validator, c *Connector, b Bridge, qr QRSource, log *zap.Logger) *Endpoint {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 256 << 10
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Endpoint{cfg: cfg, validator: v, connector: c, bridge: b, qr: qr, log: log, refusals: newRefusals()}
}

// refusal is a request the endpoint refuses: the caller reads public, the log gets err.
type refusal struct {
	public string
	err    error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// ServeHTTP handles one activity.
func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, body, err := e.serve(r, w)
	if err != nil {
		fields := []zap.Field{zap.Int("status", status), zap.Error(err)}
		var caller *CallerRefusedError
		if errors.As(err, &caller) {
			fields = append(fields, zap.String("entra_caller", caller.Caller))
		}
		e.log.Warn("teams activity refused", fields...)
		public := err.Error()
		var ref *refusal
		if errors.As(err, &ref) {
			public = ref.public
		}
		switch status {
		case http.StatusUnauthorized:
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		case http.StatusServiceUnavailable:
			w.Header().Set("Retry-After", "5")
		}
		http.Error(w, public, status)
		return
	}
	if body != nil {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write(body) // #nosec G705 -- application/json
		return
	}
	w.WriteHeader(status)
}

func (e *Endpoint) serve(r *http.Request, w http.ResponseWriter) (int, []byte, error) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, nil, errors.New("POST only")
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, nil, fmt.Errorf("activity larger than %d bytes", e.cfg.MaxBody)
		}
		return http.StatusBadRequest, nil, &refusal{public: "the activity could not be read", err: err}
	}
	var a Activity
	if err := json.Unmarshal(raw, &a); err != nil {
		return http.StatusBadRequest, nil, fmt.Errorf("malformed activity: %v", err)
	}
	if err := e.authenticate(r, &a); err != nil {
		refused := Refusal(err)
		return refused.Status, nil, &refusal{public: refused.Error(), err: err}
	}
	status, body, err := e.serveAuthenticated(r, &a)
	// Only an activity from a person is a receipt, and only a receipt can be refused: the counts
	// of the two stay consistent. A serviceUrl not allowed is refused without being archived, unlike
	// another tenant's activity (archived as refused): it is not a refusal by policy.
	if rc := e.cfg.Receipts; rc != nil && a.From.AADObjectID != "" {
		at := e.cfg.Clock.Now()
		rc.Received(bridge.ChannelTeams, at)
		if err != nil {
			reason := refusalReason(status)
			if status == http.StatusForbidden && !e.connector.HostAllowed(a.ServiceURL) {
				reason = "service_url"
			}
			rc.Refused(bridge.ChannelTeams, reason, at)
		}
	}
	return status, body, err
}

// refusalReason names why an authenticated activity was refused, for the completeness report.
func refusalReason(status int) string {
	switch status {
	case http.StatusForbidden:
		return "not_allowed" // another tenant: archived as refused (completeness.PolicyReasons)
	case http.StatusBadRequest:
		return "invalid"
	case http.StatusServiceUnavailable:
		return "not_recorded"
	}
	return "status_" + strconv.Itoa(status)
}

// serveAuthenticated handles an activity whose token checked out.
func (e *Endpoint) serveAuthenticated(r *http.Request, a *Activity) (int, []byte, error) {
	if !e.connector.HostAllowed(a.ServiceURL) {
		return http.StatusForbidden, nil, fmt.Errorf("serviceUrl %q is not an allowed Teams host (WXTEAMS_BOT_SERVICEURL_ALLOW)", truncate(a.ServiceURL, 200))
	}
	if tenant, ok := e.ourTenant(a); !ok {
		e.refusals.archive(r.Context(), e, a, tenant)
		return http.StatusForbidden, nil, &refusal{public: "this bot serves one Entra ID tenant; activities from other tenants are refused",
			err: fmt.Errorf("activity %q names tenant %q, not the bot's (WXTEAMS_BOT_TENANT_ID)", truncate(a.ID, 100), truncate(tenant, 64))}
	}
	if a.Conversation.ConversationType != "" && a.Conversation.ConversationType != "personal" {
		return http.StatusOK, nil, nil // the bot works in personal chats only
	}
	resp, err := e.handle(r.Context(), a)
	if err != nil {
		if errors.Is(err, bridge.ErrInvalid) {
			return http.StatusBadRequest, nil, err
		}
		return http.StatusServiceUnavailable, nil, &refusal{public: "activity not recorded; retry later", err: fmt.Errorf("activity not recorded, Teams should retry: %w", err)}
	}
	if resp != nil {
		b, _ := json.Marshal(resp)
		return http.StatusOK, b, nil
	}
	return http.StatusOK, nil, nil
}

// authenticate checks the activity's bearer token: a Bot Connector token, or — when configured —
// one Entra ID issued in the bot's tenant to a listed caller.
func (e *Endpoint) authenticate(r *http.Request, a *Activity) error {
	auth := r.Header.Get("Authorization")
	if e.cfg.Entra != nil && e.cfg.Entra.Issues(tokenIssuer(auth)) {
		_, err := e.cfg.Entra.ValidateActivity(r.Context(), auth, a)
		return err
	}
	_, err := e.validator.ValidateActivity(r.Context(), auth, a)
	return err
}

// ourTenant reports whether the activity is of the bot's tenant: every tenant field it has names
// it, and it has one. It returns the foreign tenant otherwise ("" when it names none).
func (e *Endpoint) ourTenant(a *Activity) (string, bool) {
	if e.cfg.TenantID == "" {
		return "", true
	}
	named := false
	for _, t := range []string{a.channelData().Tenant.ID, a.Conversation.TenantID} {
		if t == "" {
			continue
		}
		if !strings.EqualFold(t, e.cfg.TenantID) {
			return t, false
		}
		named = true
	}
	return "", named
}

// handle routes an authenticated activity. It returns the invoke response for invokes.
func (e *Endpoint) handle(ctx context.Context, a *Activity) (any, error) {
	user := a.From
	if a.Type == "conversationUpdate" {
		for _, m := range a.MembersAdded {
			if m.AADObjectID != "" {
				user = m
			}
		}
	}
	if user.AADObjectID == "" {
		return nil, nil // not from a person (e.g. the bot's own membership)
	}
	id := bridge.EmployeeID(user.AADObjectID)
	if a.Type == "installationUpdate" && strings.HasPrefix(a.Action, "remove") {
		return nil, e.bridge.TeamsUninstalled(ctx, id)
	}
	emp, err := e.bridge.RegisterTeamsUser(ctx, bridge.TeamsUser{ID: id, Tenant: a.TenantID(), Name: user.Name,
		Address: bridge.TeamsAddress{ServiceURL: a.ServiceURL, ConversationID: a.Conversation.ID, UserID: user.ID}})
	if err != nil {
		return nil, err
	}
	key := "teams:" + a.Conversation.ID + ":" + a.ID
	switch a.Type {
	case "installationUpdate":
		if strings.HasPrefix(a.Action, "add") && emp.Enabled {
			return nil, e.notify(ctx, emp, 0, "employee.welcome", bridge.TextMessage(welcomeText), "", a.ID, key)
		}
	case "message":
		return nil, e.onMessage(ctx, a, emp, key)
	case "messageUpdate", "messageDelete":
		event := a.channelData().EventType
		edit := bridge.EmployeeEdit{Employee: id, ExternalID: a.ID, Text: a.PlainText(), DedupeKey: key + ":" + event,
			Deleted: event == "softDeleteMessage" || a.Type == "messageDelete" && event == "", Undeleted: event == "undeleteMessage"}
		return nil, e.bridge.EmployeeEdited(ctx, edit)
	case "invoke":
		return e.onInvoke(ctx, a, emp, key)
	}
	return nil, nil // conversationUpdate (registered above), reactions, typing and whatever Teams adds
}

// onMessage handles what an employee writes: a button's data, a command, or a message for their
// current WeChat contact (text, and each image attached, as messages of their own).
func (e *Endpoint) onMessage(ctx context.Context, a *Activity, emp *bridge.Employee, key string) error {
	if len(a.Value) > 0 {
		var data ReplyData
		if err := json.Unmarshal(a.Value, &data); err == nil && data.Action == "reply" {
			_, err := e.reply(ctx, emp, data.Chat, a.ID, key)
			return err
		}
	}
	text := a.PlainText()
	if handled, err := e.command(ctx, a, emp, text, key); handled {
		return err
	}
	chat := emp.CurrentChat
	if chat == 0 {
		chat = e.onlyChat(ctx, emp)
	}
	var media []Attachment
	var files []string
	for _, att := range a.Attachments {
		switch {
		case strings.HasPrefix(att.ContentType, "image/") && att.ContentURL != "":
			media = append(media, att)
		case att.ContentType == ContentTypeFileDownload:
			var info struct {
				DownloadURL string `json:"downloadUrl"`
				FileType    string `json:"fileType"`
			}
			_ = json.Unmarshal(att.Content, &info)
			if t := strings.ToLower(info.FileType); (t == "png" || t == "jpg" || t == "jpeg" || t == "gif") && info.DownloadURL != "" {
				media = append(media, Attachment{ContentType: "image/" + t, ContentURL: info.DownloadURL, Name: att.Name})
			} else {
				files = append(files, att.Name)
			}
		}
	}
	if text != "" || (len(media) == 0 && len(files) == 0) {
		if _, err := e.bridge.EmployeeWrites(ctx, bridge.EmployeeMessage{Employee: emp.ID, Chat: chat, Message: bridge.TextMessage(text), ExternalID: a.ID, DedupeKey: key}); err != nil && !errors.Is(err, bridge.ErrDuplicate) {
			return err
		}
	}
	for i, att := range media {
		m := bridge.Message{Type: "image", Media: &bridge.Media{Source: "teams:" + att.ContentURL, Name: att.Name}}
		_, err := e.bridge.EmployeeWrites(ctx, bridge.EmployeeMessage{Employee: emp.ID, Chat: chat, Message: m, Caption: text, ExternalID: a.ID, DedupeKey: key + ":" + strconv.Itoa(i)})
		if err != nil && !errors.Is(err, bridge.ErrDuplicate) {
			return err
		}
	}
	if len(files) > 0 {
		return e.notify(ctx, emp, chat, "employee.files_not_relayed", bridge.TextMessage(
			"Not sent: "+strings.Join(files, ", ")+". A WeChat Official Account can send your contact text and images only, not files."), "", a.ID, key+":files")
	}
	return nil
}

// onlyChat is the employee's one live chat, if they have exactly one.
func (e *Endpoint) onlyChat(ctx context.Context, emp *bridge.Employee) bridge.ChatID {
	chats, err := e.bridge.Chats(ctx, emp.ID)
	if err != nil {
		return 0
	}
	var live []bridge.ChatID
	for _, c := range chats {
		if c.Status.Live() {
			live = append(live, c.Chat)
		}
	}
	if len(live) == 1 {
		return live[0]
	}
	return 0
}

// invokeResponse is the body of an answer to an invoke (Universal Actions).
type invokeResponse struct {
	StatusCode int    `json:"statusCode"`
	Type       string `json:"type"`
	Value      any    `json:"value"`
}

// onInvoke answers Action.Execute: the Reply button makes that chat the current one.
func (e *Endpoint) onInvoke(ctx context.Context, a *Activity, emp *bridge.Employee, key string) (any, error) {
	if a.Name != "adaptiveCard/action" {
		return invokeResponse{StatusCode: 200, Type: "application/vnd.microsoft.activity.message", Value: "OK"}, nil
	}
	var v struct {
		Action struct {
			Verb string    `json:"verb"`
			Data ReplyData `json:"data"`
		} `json:"action"`
	}
	if err := json.Unmarshal(a.Value, &v); err != nil || v.Action.Verb != "reply" {
		return invokeResponse{StatusCode: 400, Type: "application/vnd.microsoft.error", Value: map[string]string{"code": "BadRequest", "message": "unknown action"}}, nil
	}
	text, err := e.reply(ctx, emp, v.Action.Data.Chat, a.ID, key)
	if err != nil {
		if errors.Is(err, bridge.ErrInvalid) || errors.Is(err, bridge.ErrUnknownChat) {
			return invokeResponse{StatusCode: 400, Type: "application/vnd.microsoft.error", Value: map[string]string{"code": "BadRequest", "message": "that chat is not yours"}}, nil
		}
		return nil, err
	}
	return invokeResponse{StatusCode: 200, Type: "application/vnd.microsoft.activity.message", Value: text}, nil
}

// reply makes chat the employee's current one and says so.
func (e *Endpoint) reply(ctx context.Context, emp *bridge.Employee, chat bridge.ChatID, activityID, key string) (string, error) {
	if err := e.bridge.SetCurrentChat(ctx, emp.ID, chat); err != nil {
		return "", err
	}
	name := "this contact"
	if chats, err := e.bridge.Chats(ctx, emp.ID); err == nil {
		for _, c := range chats {
			if c.Chat == chat {
				name = c.ContactName
			}
		}
	}
	return "Replying to " + name + ": your next message goes to them.", nil
}

// notify sends the employee a notice, archived with the request it answers.
func (e *Endpoint) notify(ctx context.Context, emp *bridge.Employee, chat bridge.ChatID, template string, m bridge.Message, request, activityID, key string) error {
	err := e.bridge.NotifyEmployee(ctx, bridge.Notice{Employee: emp.ID, Chat: chat, Template: template, Message: m, Request: request, ExternalID: activityID, DedupeKey: key})
	if errors.Is(err, bridge.ErrDuplicate) {
		return nil
	}
	return err
}
