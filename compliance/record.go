// Package compliance defines the compliance record: the archive event vocabulary, the stored record
// format and its per-stream SHA-256 hash chain, and chain verification.
//
// It is a leaf package: it imports nothing from wxteams, so the engine (bridge), the stores, the
// exporters and an offline verifier all share one definition of what a record is and how its hash is
// computed. It does no I/O.
package compliance

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Kind names what an archived event records.
type Kind string

// The archive vocabulary. Every message, auto-message, state change and delivery outcome the bridge
// produces is one of these. Exporters and verifiers depend on the names; never rename one.
const (
	// Messages.
	KindCustomerMessage Kind = "customer.message" // a WeChat customer's message, as received
	KindEmployeeMessage Kind = "employee.message" // an employee's message, as received from Teams
	KindEmployeeEdit    Kind = "employee.edit"    // an employee edited a message in Teams (not relayed)
	KindEmployeeDelete  Kind = "employee.delete"  // an employee deleted (or undeleted) a message in Teams (not relayed)
	KindAutoMessage     Kind = "auto.message"     // a scripted message to either side (template id and version in Meta)

	// What happened to an employee message.
	KindQueued    Kind = "message.queued"    // held in the chat's queue (reason in Meta)
	KindReleased  Kind = "message.released"  // taken from the queue and handed to delivery
	KindCancelled Kind = "message.cancelled" // dropped from the queue or outbox (reason in Meta)
	KindRefused   Kind = "message.refused"   // not accepted at all (reason in Meta)

	// Delivery outcomes, for both channels.
	KindDelivered      Kind = "delivery.delivered" // the channel accepted it (channel message id in Meta)
	KindDeliveryFailed Kind = "delivery.failed"    // the channel refused it (WeChat errcode or Teams status in Meta)
	KindDeliveryRetry  Kind = "delivery.retry"     // a retryable failure; another attempt is scheduled
	KindOutcomeUnknown Kind = "delivery.unknown"   // the request may have reached the channel; never resent blindly
	KindRequeued       Kind = "delivery.requeued"  // WeChat refused for window or quota; back to the head of the queue

	// Chat lifecycle and routing.
	KindRouting       Kind = "chat.routing"   // a QR scene bound a customer to an employee (or did not)
	KindMembers       Kind = "chat.members"   // employees added to or removed from a chat
	KindStatus        Kind = "chat.status"    // the chat's status changed (from, to, why)
	KindLeave         Kind = "customer.leave" // the customer sent #LEAVE
	KindUnsubscribe   Kind = "customer.unsubscribe"
	KindCustomerEvent Kind = "customer.event" // any other WeChat event worth keeping (location, template receipt, …)

	// Administration.
	KindEmployeeEnabled  Kind = "admin.employee_enabled"
	KindEmployeeDisabled Kind = "admin.employee_disabled"
	KindEmployeeUpdated  Kind = "admin.employee_updated" // reachability, Teams address, contact rename
	KindKeysRotated      Kind = "admin.keys_rotated"     // data keys retired or rewrapped (key id in Meta)

	// Compliance: the record's own custody. Each is in the admin stream.
	KindCheckpoint Kind = "compliance.checkpoint"  // a signed Merkle root over every stream's head (root in Meta.Hash)
	KindDisposed   Kind = "compliance.disposed"    // a stream's records through Meta.Seq were removed under retention
	KindHoldPlaced Kind = "compliance.hold_placed" // a legal hold on a chat, employee or contact (Meta.Scope, Subject, Reason)
	KindHoldLifted Kind = "compliance.hold_lifted"
	KindExported   Kind = "compliance.exported"   // an export was made (format, scope, count, manifest hash)
	KindExportJob  Kind = "compliance.export_job" // a scheduled export was added or removed
	KindAccess     Kind = "compliance.access"     // the compliance API was used (what was asked, how many results)

	// KindExportRemoved: an export folder was removed after WXTEAMS_EXPORT_RETENTION (its id in
	// Meta.Subject, its manifest hash in Meta.Hash).
	KindExportRemoved Kind = "compliance.export_removed"

	// Supervision: what the firm's rules did to a message is in the message's chat stream
	// (Meta.Matched names the rule versions); rule changes and review steps are in the supervision
	// stream, with who made them.
	KindBlocked        Kind = "message.blocked"             // a rule kept the message from its recipient
	KindRedacted       Kind = "message.redacted"            // a rule replaced spans; Content is the text delivered
	KindRuleChanged    Kind = "supervision.rule"            // a rule created, changed or deleted (Meta.Subject id, Meta.Version, Content.Payload the rule)
	KindGroupChanged   Kind = "supervision.group"           // a supervision group's members set (Meta.Subject name, Meta.Added/Removed)
	KindSettingChanged Kind = "supervision.setting"         // a review setting changed (Meta.Subject name, Meta.From, Meta.To)
	KindReviewOpened   Kind = "supervision.review_opened"   // a review item opened: a flagged message or a sampled conversation
	KindReviewAssigned Kind = "supervision.review_assigned" // a reviewer took an item or was given it
	KindReviewDecided  Kind = "supervision.review_decided"  // no issue, escalate or close, with the reviewer's note as Content
	// KindCompleteness: a day's signed completeness report (compliance/completeness): the day in
	// Meta.Subject, the report's hash in Meta.Hash, its signature in Meta.Signature, the report in
	// Content.Payload.
	KindCompleteness Kind = "compliance.completeness"
)

// Meta is the non-content part of an event: identifiers, reasons and outcomes. It is stored as
// canonical JSON (fields in declaration order, empty fields omitted), so the same Meta always encodes
// to the same bytes.
type Meta struct {
	MessageID   string   `json:"message_id,omitempty"`   // our id of the message this event is about
	Channel     string   `json:"channel,omitempty"`      // "wechat" or "teams"
	Direction   string   `json:"direction,omitempty"`    // "to_customer" or "to_employee"
	Employee    string   `json:"employee,omitempty"`     // employee id concerned
	Contact     string   `json:"contact,omitempty"`      // WeChat openid concerned
	ExternalID  string   `json:"external_id,omitempty"`  // WeChat MsgId, Teams activity id, channel message id
	MsgType     string   `json:"msg_type,omitempty"`     // text, image, voice, video, location, link, template
	Template    string   `json:"template,omitempty"`     // auto-message template id (e.g. customer.initial)
	Version     string   `json:"version,omitempty"`      // policy/texts version the template came from
	Language    string   `json:"language,omitempty"`     // language of an auto-message
	Reason      string   `json:"reason,omitempty"`       // why: queued, refused, cancelled, status change
	From        string   `json:"from,omitempty"`         // previous status
	To          string   `json:"to,omitempty"`           // new status
	Scene       string   `json:"scene,omitempty"`        // QR scene
	Added       []string `json:"added,omitempty"`        // employees added
	Removed     []string `json:"removed,omitempty"`      // employees removed
	ErrCode     int      `json:"errcode,omitempty"`      // WeChat errcode or Teams HTTP status
	Error       string   `json:"error,omitempty"`        // channel error text (never message content)
	Attempt     int      `json:"attempt,omitempty"`      // delivery attempt number
	Count       int      `json:"count,omitempty"`        // messages released, cancelled, …
	QueueLength int      `json:"queue_length,omitempty"` // queue length after the event
	MediaSHA256 string   `json:"media_sha256,omitempty"` // hex SHA-256 of attached media bytes
	MediaType   string   `json:"media_type,omitempty"`   // MIME type of attached media
	MediaSize   int64    `json:"media_size,omitempty"`
	MediaName   string   `json:"media_name,omitempty"`
	Stream      string   `json:"stream,omitempty"`  // archive stream concerned (disposal, export cursor)
	Seq         int64    `json:"seq,omitempty"`     // sequence number concerned (a disposal runs through it)
	Hash        string   `json:"hash,omitempty"`    // hex hash concerned: a record's, a checkpoint root, a manifest
	Scope       string   `json:"scope,omitempty"`   // what a hold or export covers: chat, employee, contact, all
	Subject     string   `json:"subject,omitempty"` // the chat id, employee id or openid in that scope
	Query       string   `json:"query,omitempty"`   // what the compliance API was asked (never message text it returned)
	Format      string   `json:"format,omitempty"`  // export format
	KeyID       string   `json:"key_id,omitempty"`  // data key or signing key concerned
	HoldID      int64    `json:"hold_id,omitempty"`
	About       []string `json:"about,omitempty"` // messages a notice reports the fate of (queued, cancelled …)
	// Callers are the network addresses of refused unauthenticated calls, each with its count when
	// the record sums up several ("203.0.113.7 ×812").
	Callers []string `json:"callers,omitempty"`
	// Rules are the refs ("id@version") of the supervision rules a message was checked against;
	// Matched those that matched it, and Action what they did (block, redact, flag).
	Rules   []string `json:"rules,omitempty"`
	Matched []string `json:"matched,omitempty"`
	Action  string   `json:"action,omitempty"`
	// Signature is a base64 Ed25519 signature the record carries (a completeness report's).
	Signature string `json:"signature,omitempty"`
}

// DecodeMeta reverses the canonical encoding of Meta.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decode meta: %w", err)
	}
	return m, nil
}

// HashValue is Meta.Hash decoded; zero when absent or malformed.
func (m Meta) HashValue() Hash {
	var h Hash
	if b, err := hex.DecodeString(m.Hash); err == nil && len(b) == len(h) {
		copy(h[:], b)
	}
	return h
}

// Content is the sensitive part of an event: what a person wrote or was shown. It is kept apart from
// Meta so that it can be encrypted at rest and disposed of under retention while its hash (and so the
// chain) stays verifiable.
type Content struct {
	Text    string          `json:"text,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"` // the exact payload sent to a channel, where it differs from Text
}

// IsZero reports whether c carries nothing.
func (c Content) IsZero() bool { return c.Text == "" && len(c.Payload) == 0 }

// Event is what a component asks the archive to record. The store places it in its stream's chain.
type Event struct {
	Stream  string // hash chain the event belongs to, e.g. "chat:42" (see ChatStream)
	ChatID  int64  // 0 when the event is not about a chat
	Tenant  string
	At      time.Time
	Kind    Kind
	Actor   string // who caused it: "customer:<openid>", "employee:<id>", "system", "admin:<who>", "cli:<user>@<host>"
	Meta    Meta
	Content Content
}

// ChatStream names the hash chain of a chat.
func ChatStream(chatID int64) string { return "chat:" + strconv.FormatInt(chatID, 10) }

// ContactStream names the hash chain of a WeChat follower who is in no chat yet.
func ContactStream(openID string) string { return "contact:" + openID }

// AdminStream is the hash chain of administrator and compliance actions.
const AdminStream = "admin"

// SupervisionStream is the hash chain of the firm's rule changes and review steps.
const SupervisionStream = "supervision"

// Hash is a SHA-256 digest.
type Hash [sha256.Size]byte

// String returns the hash in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText writes the hash as lower-case hex (in JSON too).
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads a hash written by MarshalText.
func (h *Hash) UnmarshalText(b []byte) error {
	raw, err := hex.DecodeString(string(b))
	if err != nil || len(raw) != len(h) {
		return fmt.Errorf("hash %q: want %d hex digits", b, 2*len(h))
	}
	copy(h[:], raw)
	return nil
}

// IsZero reports whether h is the all-zero hash (the "previous hash" of a stream's first record).
func (h Hash) IsZero() bool { return h == Hash{} }

// Head is the end of a stream's chain: the last sequence number and its hash.
type Head struct {
	Seq  int64
	Hash Hash
}

// Record is an archived event as stored: its place in its stream, and the hashes that chain it.
type Record struct {
	ID       int64 // global insertion order (database sequence); not part of the hash
	Stream   string
	Seq      int64 // 1, 2, 3 … within Stream
	Tenant   string
	At       time.Time // microsecond precision
	Kind     Kind
	Actor    string
	ChatID   int64
	Meta     []byte // canonical JSON of Meta
	Body     []byte // encoded Content; may be encrypted or disposed of, BodyHash stays
	BodyHash Hash   // SHA-256 of the plaintext encoded Content
	PrevHash Hash
	Hash     Hash
}

// Seal turns an event into the next record of a chain whose current head is prev.
func Seal(prev Head, ev Event) (Record, error) {
	meta, err := json.Marshal(ev.Meta)
	if err != nil {
		return Record{}, fmt.Errorf("encode meta: %w", err)
	}
	body, err := EncodeContent(ev.Content)
	if err != nil {
		return Record{}, err
	}
	r := Record{
		Stream:   StorableText(ev.Stream),
		Seq:      prev.Seq + 1,
		Tenant:   StorableText(ev.Tenant),
		At:       ev.At.UTC().Truncate(time.Microsecond),
		Kind:     Kind(StorableText(string(ev.Kind))),
		Actor:    StorableText(ev.Actor),
		ChatID:   ev.ChatID,
		Meta:     meta,
		Body:     body,
		BodyHash: sha256.Sum256(body),
		PrevHash: prev.Hash,
	}
	r.Hash = r.ComputeHash()
	return r, nil
}

// EncodeContent is the canonical encoding of a Content; an empty Content encodes to no bytes.
func EncodeContent(c Content) ([]byte, error) {
	if c.IsZero() {
		return nil, nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode content: %w", err)
	}
	return b, nil
}

// DecodeContent reverses EncodeContent.
func DecodeContent(b []byte) (Content, error) {
	var c Content
	if len(b) == 0 {
		return c, nil
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("decode content: %w", err)
	}
	return c, nil
}

// hashDomain separates record hashes from any other SHA-256 use.
const hashDomain = "wxteams.archive.v1"

// ComputeHash returns the SHA-256 of the record's canonical encoding:
//
//	"wxteams.archive.v1" then, each as a 4-byte big-endian length followed by the bytes:
//	stream, seq (decimal), tenant, at (unix microseconds, decimal), kind, actor, chat id (decimal),
//	meta (as stored), body hash (32 bytes), previous hash (32 bytes).
//
// The body enters only through its hash, so an encrypted or disposed-of body leaves the chain intact.
// The database id is not included: the chain, not insertion order, is what is proven.
func (r *Record) ComputeHash() Hash {
	h := sha256.New()
	var n [4]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint32(n[:], uint32(len(b))) // #nosec G115 -- a record field is far shorter than 4 GiB
		h.Write(n[:])
		h.Write(b)
	}
	h.Write([]byte(hashDomain))
	field([]byte(r.Stream))
	field(strconv.AppendInt(nil, r.Seq, 10))
	field([]byte(r.Tenant))
	field(strconv.AppendInt(nil, r.At.UnixMicro(), 10))
	field([]byte(r.Kind))
	field([]byte(r.Actor))
	field(strconv.AppendInt(nil, r.ChatID, 10))
	field(r.Meta)
	field(r.BodyHash[:])
	field(r.PrevHash[:])
	var out Hash
	h.Sum(out[:0])
	return out
}
