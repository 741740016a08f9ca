// Package bridge is the domain core of wxteams: chats between WeChat customers and Teams employees,
// the firm's conversation policy, and the Engine that applies it.
//
// Everything that happens to a chat — a customer writes, an employee writes, a timer fires, a
// delivery comes back — is one Engine step: one transaction that locks the chat, applies the policy,
// and writes the archive events, the new state and the outbox rows together (capture first). The
// outbox is then delivered through the WeChatSender and TeamsSender the adapters provide.
//
// bridge does no I/O of its own: storage, WeChat, Teams and time come in through the interfaces in
// store.go, sender.go and clock.go. It must not import any adapter (bridge/wechat, bot, sqlstore …);
// it imports only compliance, for the archive vocabulary.
package bridge

import (
	"strconv"
	"time"
)

// ChatID identifies a chat: one WeChat customer and the employees they talk to.
type ChatID int64

func (id ChatID) String() string { return strconv.FormatInt(int64(id), 10) }

// EmployeeID identifies an employee: their Entra ID object id.
type EmployeeID string

// OpenID identifies a WeChat customer (per Official Account).
type OpenID string

// Status is where a chat stands in the conversation policy.
type Status string

// The chat statuses of DESIGN §2.
const (
	StatusPending  Status = "pending"  // connected by QR; the customer has not written yet
	StatusActive   Status = "active"   // the customer wrote within the window; employees may send
	StatusCapped   Status = "capped"   // employees sent the cap of consecutive messages (or WeChat's quota ran out)
	StatusInactive Status = "inactive" // 48 h without a customer message
	StatusLeft     Status = "left"     // the customer sent #LEAVE
	StatusClosed   Status = "closed"   // the customer unfollowed or cannot receive messages
)

// Live reports whether employees can still reach the customer through this chat, now or later.
func (s Status) Live() bool { return s != StatusLeft && s != StatusClosed }

// Employee is a Teams user who may chat with WeChat customers.
type Employee struct {
	ID          EmployeeID
	Tenant      string // Entra tenant id
	Name        string // display name
	Email       string
	Enabled     bool   // WeChat enabled by an administrator
	Scene       string // the QR scene that connects customers to this employee
	Teams       TeamsAddress
	Reachable   bool   // false after the bot was uninstalled or blocked
	CurrentChat ChatID // the chat the employee's next plain message goes to
	UpdatedAt   time.Time
}

// DisplayName is how colleagues and notices name the employee.
func (e *Employee) DisplayName() string {
	if e.Name != "" {
		return e.Name
	}
	return string(e.ID)
}

// TeamsAddress is where the bot reaches an employee: their personal conversation with the bot.
type TeamsAddress struct {
	ServiceURL     string
	ConversationID string
	UserID         string // 29:… id, unique per bot
}

// Contact is a WeChat customer. WeChat gives no names; employees may set one.
type Contact struct {
	OpenID    OpenID
	UnionID   string
	Name      string // set by an employee with "rename"; empty until then
	Number    int64  // the store numbers contacts in the order it met them (1, 2, 3 …); 0 until stored
	Language  string // WeChat's language code, e.g. zh_CN or en
	Following bool
	UpdatedAt time.Time
}

// DisplayName is the contact's one name, in Teams, the console, the compliance API and exports: the
// name an employee gave, else "WeChat customer <number>" (the end of the openid before the contact
// is stored).
func (c *Contact) DisplayName() string {
	if c.Name != "" {
		return c.Name
	}
	if c.Number > 0 {
		return CustomerName(c.Number)
	}
	id := string(c.OpenID)
	if len(id) > 6 {
		id = id[len(id)-6:]
	}
	return "WeChat user " + id
}

// CustomerName is the name of an unnamed contact with that number.
func CustomerName(number int64) string { return "WeChat customer " + strconv.FormatInt(number, 10) }

// Chat is the state the policy keeps per customer (DESIGN §2).
type Chat struct {
	ID               ChatID
	Tenant           string
	Contact          OpenID
	Members          []EmployeeID
	Status           Status
	LastInboundAt    time.Time // the customer's last message; zero if they never wrote
	ConnectedAt      time.Time // the last QR connect
	SentSinceInbound int       // messages delivered to the customer since their last message (employee and system)
	EmployeeStreak   int       // employee messages delivered since the customer's last message
	OnHoldPrompted   bool      // the on-hold prompt went out in this pause
	Notified24h      bool      // the 24 h notice went out for this silence
	ReinstateSent    bool      // the reinstate template went out for this inactivity
	MembersChanged   bool      // employees were added or removed in this pause; the customer is not told yet
	QueueLen         int       // messages waiting in the queue (loaded, not stored)
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// HasMember reports whether id is one of the chat's employees.
func (c *Chat) HasMember(id EmployeeID) bool {
	for _, m := range c.Members {
		if m == id {
			return true
		}
	}
	return false
}

// Message is content travelling in either direction.
type Message struct {
	Type  string `json:"type"`           // text, image, voice, video, file, location, link
	Text  string `json:"text,omitempty"` // the text, or a description of a location or link
	Media *Media `json:"media,omitempty"`
}

// TextMessage is a plain text message.
func TextMessage(s string) Message { return Message{Type: "text", Text: s} }

// Media describes attached bytes, kept in the media store by SHA-256. Media that arrived from a
// channel but is not fetched yet has only Source (e.g. "wechat:MEDIA_ID"); the engine fetches it
// before handing the message on.
type Media struct {
	SHA256      string `json:"sha256,omitempty"` // hex
	ContentType string `json:"content_type,omitempty"`
	Size        int64  `json:"size,omitempty"`
	Name        string `json:"name,omitempty"`
	Source      string `json:"source,omitempty"`
}

// Fetched reports whether the bytes are in the media store.
func (m *Media) Fetched() bool { return m.SHA256 != "" }

// QueuedMessage is an employee message waiting for the customer to write.
type QueuedMessage struct {
	ID        int64
	ChatID    ChatID
	Employee  EmployeeID
	MessageID string
	Message   Message
	QueuedAt  time.Time
}

// WindowState is what an employee is shown about a chat: replies left before the cap and when
// WeChat's window closes.
type WindowState struct {
	Status      Status    `json:"status"`
	RepliesLeft int       `json:"replies_left"`
	Cap         int       `json:"cap"`
	ClosesAt    time.Time `json:"closes_at,omitzero"`
	Queued      int       `json:"queued"`
}
