package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// WeChatSender delivers one message to a WeChat customer (bridge/wechat implements it).
//
// The error tells the engine what happened; wrap or implement Is for these sentinels:
// ErrWindowClosed, ErrQuotaUsed, ErrNotFollower, ErrRetryLater, ErrOutcomeUnknown. Any other
// error is a permanent failure of this message. A sender never retries a send whose request may
// have reached WeChat: it reports ErrOutcomeUnknown instead.
type WeChatSender interface {
	SendWeChat(ctx context.Context, to *Contact, m *WeChatMessage) (Delivery, error)
}

// TeamsSender delivers one message or notice to an employee's personal chat with the bot (bot
// implements it). ErrRecipientGone means the employee can no longer be reached (app uninstalled,
// bot blocked); ErrRetryLater and other errors as for WeChatSender.
type TeamsSender interface {
	SendTeams(ctx context.Context, to *Employee, m *TeamsMessage) (Delivery, error)
}

// MediaFetcher fetches media a channel holds (bridge/wechat implements it for media_id sources).
// ErrRetryLater means try again; any other error means the media cannot be had.
type MediaFetcher interface {
	FetchMedia(ctx context.Context, source string) (data []byte, contentType string, err error)
}

// Delivery is a channel's receipt for a message.
type Delivery struct {
	ID      string // the channel's id for the message (WeChat msgid, Teams activity id); may be empty
	Payload []byte // the exact payload sent, archived where it differs from the text
	Media   *Media // media the engine fetched and stored for this delivery (set by the engine)
}

// WeChatMessage is what goes to a customer.
type WeChatMessage struct {
	Message
	Template *TemplateSend `json:"template,omitempty"` // set for template messages (reinstate)
}

// TemplateSend is a filled-in template message.
type TemplateSend struct {
	ID   string            `json:"id"`
	URL  string            `json:"url,omitempty"`
	Data map[string]string `json:"data,omitempty"`
}

// TeamsMessageKind says how the Teams adapter should show a TeamsMessage.
type TeamsMessageKind string

// Kinds of Teams messages.
const (
	TeamsCustomerMessage  TeamsMessageKind = "customer_message"  // a WeChat customer's message (a card with Reply)
	TeamsNotice           TeamsMessageKind = "notice"            // an auto-message from the bridge
	TeamsColleagueMessage TeamsMessageKind = "colleague_message" // a colleague's message to the customer of a team chat
)

// TeamsMessage is what goes to an employee.
type TeamsMessage struct {
	Kind        TeamsMessageKind `json:"kind"`
	ChatID      ChatID           `json:"chat_id"`
	Contact     OpenID           `json:"contact"`
	ContactName string           `json:"contact_name"`
	Notice      string           `json:"notice,omitempty"` // template id of a notice, e.g. employee.limit
	// About lists the employee messages (by message id) a notice reports the fate of: queued,
	// refused, cancelled, failed, outcome unknown, released.
	About []string `json:"about,omitempty"`
	// Author and AuthorName name the colleague who wrote a colleague message; Outcome is what
	// became of it when it was written (sent or queued).
	Author     EmployeeID  `json:"author,omitempty"`
	AuthorName string      `json:"author_name,omitempty"`
	Outcome    Outcome     `json:"outcome,omitempty"`
	Message    Message     `json:"message"`
	SentAt     time.Time   `json:"sent_at"`
	Window     WindowState `json:"window"`
}

// Delivery errors, as senders report them.
var (
	// ErrWindowClosed: WeChat 45015, outside the 48 h window (or the customer unfollowed).
	ErrWindowClosed = errors.New("wechat window closed")
	// ErrQuotaUsed: WeChat 45047, the window's message quota is used up.
	ErrQuotaUsed = errors.New("wechat quota used up")
	// ErrNotFollower: WeChat 43004/40003/48002, the customer cannot receive messages from the account.
	ErrNotFollower = errors.New("customer cannot receive messages")
	// ErrRecipientGone: Teams 403 uninstalled/blocked, the employee cannot be reached.
	ErrRecipientGone = errors.New("employee unreachable in teams")
	// ErrRetryLater: a temporary failure (WeChat -1/45011, Teams 429/412/5xx); nothing was delivered.
	ErrRetryLater = errors.New("temporary delivery failure")
	// ErrOutcomeUnknown: the request may have reached the channel (a timeout after sending).
	ErrOutcomeUnknown = errors.New("delivery outcome unknown")
	// ErrDeferred: the sender did not send at all, to stay under the channel's rate limits; try
	// again after the delay (RetryAfter). Nothing happened, so nothing is archived and no attempt
	// is counted, and the delivery worker is free meanwhile.
	ErrDeferred = errors.New("delivery deferred to stay under the channel's rate limits")
)

// RetryAfter lets an ErrRetryLater carry the channel's requested delay (Teams Retry-After).
type RetryAfter interface{ RetryAfter() time.Duration }

// ChannelError lets any delivery error carry the channel's code for the archive (WeChat errcode,
// Teams HTTP status) and a short description (never message content).
type ChannelError interface {
	error
	Code() int
}

// channelCode extracts the code of a delivery error, or 0.
func channelCode(err error) int {
	var ce ChannelError
	if errors.As(err, &ce) {
		return ce.Code()
	}
	return 0
}

// DeliveryError is a ready-made ChannelError for senders and tests: a code and message wrapping one
// of the sentinels above.
type DeliveryError struct {
	Kind    error // one of the Err… sentinels, or nil for a permanent failure
	Status  int   // WeChat errcode or HTTP status
	Message string
	Delay   time.Duration // for ErrRetryLater: the channel's requested delay, if any
}

func (e *DeliveryError) Error() string {
	return fmt.Sprintf("delivery failed: code %d: %s", e.Status, e.Message)
}

// Code returns the channel's code.
func (e *DeliveryError) Code() int { return e.Status }

// Unwrap exposes the sentinel.
func (e *DeliveryError) Unwrap() error { return e.Kind }

// RetryAfter returns the requested delay.
func (e *DeliveryError) RetryAfter() time.Duration { return e.Delay }
