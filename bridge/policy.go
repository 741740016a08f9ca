package bridge

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Policy is a firm's conversation policy: limits, durations and the auto-message texts (DESIGN §2).
// DefaultPolicy holds the defaults; a firm overrides any part of it (ParsePolicy).
type Policy struct {
	Cap          int      `json:"cap"`            // consecutive employee messages without a customer reply
	Quota        int      `json:"quota"`          // WeChat's messages per window after a customer message
	Window       Duration `json:"window"`         // WeChat's window after a customer message
	NoticeAfter  Duration `json:"notice_after"`   // silence after which employees get the 24 h notice
	QueueLimit   int      `json:"queue_limit"`    // queued messages per chat
	MaxTextBytes int      `json:"max_text_bytes"` // longest text sent to WeChat in one message (UTF-8 bytes)

	// Delivery.
	RetryAttempts int      `json:"retry_attempts"`  // attempts for retryable WeChat failures (-1, 45011, 45009)
	TeamsRetryFor Duration `json:"teams_retry_for"` // how long a Teams delivery is retried (429, 412, 5xx) before it fails
	RetryBackoff  Duration `json:"retry_backoff"`   // first retry delay; doubles each attempt (a channel's Retry-After wins)
	SendTimeout   Duration `json:"send_timeout"`    // a send still unanswered after this is "outcome unknown"

	// Retention is how long archived records are kept before the purge job may dispose of them
	// (unless a legal hold covers them); 0 keeps them for ever. [6 years, FINRA 4511's default]
	Retention Duration `json:"retention"`

	// OnHoldPrompt is when the customer gets the on-hold prompt: "notice" (at the 24 h notice,
	// when the limit was reached in this pause, as the MultiLine page says) or "queue" (when the
	// first message is queued at the limit). ["notice"]
	OnHoldPrompt string `json:"on_hold_prompt"`

	FirmName        string `json:"firm_name"`        // used in the recording notice
	DefaultLanguage string `json:"default_language"` // customer language when WeChat gives none we ship

	// Reinstate is the WeChat template message sent once when a chat goes inactive, asking the
	// customer to reply. Nil means none (templates need a verified service account).
	Reinstate *Template `json:"reinstate_template,omitempty"`

	Customer map[string]CustomerTexts `json:"customer_texts"` // by language: "en", "zh-CN"
	Employee EmployeeTexts            `json:"employee_texts"`
}

// Template is a WeChat template message (the only way to reach a customer outside the window).
type Template struct {
	ID   string            `json:"id"`             // WeChat template_id
	URL  string            `json:"url,omitempty"`  // page opened from the message
	Data map[string]string `json:"data,omitempty"` // template fields; {contact} and {firm} are filled in
}

// CustomerTexts are the auto-messages a WeChat customer can receive, in one language.
type CustomerTexts struct {
	Initial         string `json:"initial"`
	RecordingNotice string `json:"recording_notice"` // appended to Initial; firms must tell clients they are recorded
	OnHold          string `json:"on_hold"`
	MembersChanged  string `json:"members_changed"`
	LeaveConfirm    string `json:"leave_confirm"`
	NotConnected    string `json:"not_connected"` // the customer writes but is in no live chat
	Unavailable     string `json:"unavailable"`   // the scanned employee may not use WeChat
}

// EmployeeTexts are the notices an employee can receive. Placeholders in braces are filled in:
// {contact}, {n}, {limit}, {quota}, {remaining}, {size}, {max}, {code}, {added}, {removed}, {by},
// {reason}.
type EmployeeTexts struct {
	Initial           string `json:"initial"`
	Limit             string `json:"limit"`
	LimitQuota        string `json:"limit_quota"`
	Notice24h         string `json:"notice_24h"`
	Inactive          string `json:"inactive"`
	ReinstateSent     string `json:"reinstate_sent"`
	QueuedPending     string `json:"queued_pending"`
	QueuedInactive    string `json:"queued_inactive"`
	QueuedCapped      string `json:"queued_capped"`
	QueuedQuota       string `json:"queued_quota"`
	QueueFull         string `json:"queue_full"`
	Flushed           string `json:"flushed"`
	FlushedRemaining  string `json:"flushed_remaining"`
	Released          string `json:"released"`
	Cancelled         string `json:"cancelled"`
	NoEnabledMember   string `json:"no_enabled_member"`
	NotEnabled        string `json:"not_enabled"`
	NotMember         string `json:"not_member"`
	RefusedLeft       string `json:"refused_left"`
	RefusedClosed     string `json:"refused_closed"`
	CustomerLeft      string `json:"customer_left"`
	Unsubscribed      string `json:"unsubscribed"`
	NotFollower       string `json:"not_follower"`
	MembersChanged    string `json:"members_changed"`
	Added             string `json:"added"`
	Removed           string `json:"removed"`
	Empty             string `json:"empty"`
	TooLong           string `json:"too_long"`
	DeliveryFailed    string `json:"delivery_failed"`
	NotSent           string `json:"not_sent"`
	DeliveredLate     string `json:"delivered_late"`
	OutcomeUnknown    string `json:"outcome_unknown"`
	RequeuedWindow    string `json:"requeued_window"`
	RequeuedQuota     string `json:"requeued_quota"`
	RebindOtherMember string `json:"rebind_other_member"`
	EditNotRelayed    string `json:"edit_not_relayed"`
	DeleteNotRelayed  string `json:"delete_not_relayed"`
	NoCurrentChat     string `json:"no_current_chat"`
	// Supervision: what the firm's rules did to a message.
	Blocked  string `json:"blocked"`
	Redacted string `json:"redacted"`
	Withheld string `json:"withheld"`
}

// Languages the customer texts ship in.
const (
	LangEnglish = "en"
	LangChinese = "zh-CN"
)

// DefaultPolicy returns the defaults of DESIGN §2, with English and Simplified Chinese customer texts.
func DefaultPolicy() Policy {
	return Policy{
		Cap:             3,
		Quota:           5,
		Window:          Duration(48 * time.Hour),
		NoticeAfter:     Duration(24 * time.Hour),
		QueueLimit:      10,
		MaxTextBytes:    2048,
		RetryAttempts:   5,
		TeamsRetryFor:   Duration(24 * time.Hour),
		RetryBackoff:    Duration(2 * time.Second),
		SendTimeout:     Duration(30 * time.Second),
		OnHoldPrompt:    OnHoldAtNotice,
		Retention:       Duration(2192 * 24 * time.Hour),
		FirmName:        "your contact's firm",
		DefaultLanguage: LangEnglish,
		Customer: map[string]CustomerTexts{
			LangEnglish: {
				Initial:         "Thank you! You can now start messaging your contact. Please note, WeChat allows your contact four consecutive replies, including system messages, before requiring a response from you to continue messaging. If the conversation is inactive after 48 hours, your contact will not be able to send any messages until you send a message. To leave the chat at any time, reply with #LEAVE.",
				RecordingNotice: "Messages in this chat are recorded and kept by {firm} as required by financial regulation.",
				OnHold:          "Your contact is unable to send you any more messages till you respond. Per WeChat Policy, this conversation is on-hold. Please reply to resume",
				MembersChanged:  "If you do not reply in the next 24 hours, your contact will not be able to send any more messages. To keep the chat active, please reply with any message. Please note: Other user(s) have been added or removed from this chat.",
				LeaveConfirm:    "You have left the chat. Your contact can no longer message you. To chat again, scan your contact's QR code.",
				NotConnected:    "You are not connected to a contact. To chat, scan your contact's QR code.",
				Unavailable:     "This contact is not available on WeChat at the moment. Please reach them another way.",
			},
			LangChinese: {
				Initial:         "谢谢！您现在可以开始给您的联系人发消息了。请注意，微信允许您的联系人在您回复之前连续回复四条消息（包括系统消息），之后需要您回复才能继续。如果会话在 48 小时后处于非活跃状态，在您发送消息之前，您的联系人将无法发送任何消息。如需随时退出聊天，请回复 #LEAVE。",
				RecordingNotice: "根据金融监管要求，本聊天中的消息将由{firm}记录并保存。",
				OnHold:          "在您回复之前，您的联系人无法再向您发送消息。根据微信政策，此会话已暂停。请回复以继续。",
				MembersChanged:  "如果您在接下来的 24 小时内没有回复，您的联系人将无法再发送任何消息。如需保持聊天活跃，请回复任意消息。请注意：已有其他用户被添加到此聊天或从此聊天中移除。",
				LeaveConfirm:    "您已退出聊天。您的联系人将无法再向您发送消息。如需再次聊天，请扫描您联系人的二维码。",
				NotConnected:    "您尚未连接到任何联系人。如需聊天，请扫描您联系人的二维码。",
				Unavailable:     "该联系人目前无法通过微信联系，请通过其他方式联系。",
			},
		},
		Employee: EmployeeTexts{
			Initial:           "Please note, WeChat allows you to send four consecutive messages, including system messages, before requiring a response from your contact to continue messaging. If the conversation is inactive after 48 hours, you will not be able to send any messages until your contact responds.",
			Limit:             "You have reached the maximum limit of three consecutive messages without a response from your contact. You cannot send any more messages until your contact replies.",
			LimitQuota:        "WeChat allows {quota} messages to {contact}, including system messages, until they reply, and they have all been used. You cannot send any more messages until your contact replies.",
			Notice24h:         "Your contact has not responded for 24 hours. If no response is received in the next 24 hours, your chat will become inactive until your contact replies",
			Inactive:          "Your chat with {contact} is now inactive: they have not replied for 48 hours. Messages you send will be queued (up to {limit}) and delivered when they reply.",
			ReinstateSent:     "{contact} was sent a WeChat notification asking them to reply.",
			QueuedPending:     "Queued ({n} of {limit}): {contact} has not written yet, and WeChat lets you message a customer only after they write. It will be sent when they do.",
			QueuedInactive:    "Queued ({n} of {limit}): the chat with {contact} is inactive after 48 hours without a reply. It will be sent when they reply.",
			QueuedCapped:      "Queued ({n} of {limit}): you have sent the maximum of consecutive messages without a reply from {contact}. It will be sent when they reply.",
			QueuedQuota:       "Queued ({n} of {limit}): WeChat's {quota} messages to {contact}, including system messages, are used up until they reply. It will be sent when they reply.",
			QueueFull:         "Not sent: {limit} messages are already queued for {contact}. Wait for them to reply.",
			Flushed:           "{contact} replied: {n} queued message(s) sent.",
			FlushedRemaining:  "{contact} replied: {n} queued message(s) sent, {remaining} still queued.",
			Released:          "{n} queued message(s) sent to {contact}: {reason}.",
			Cancelled:         "Not delivered: {n} of your message(s) to {contact} cancelled: {reason}.",
			NoEnabledMember:   "{contact} wrote, but nobody in the chat may use WeChat now. Their message is archived; they were told the contact is unavailable.",
			NotEnabled:        "WeChat is not enabled for your account. Ask your administrator to enable it.",
			NotMember:         "Not sent: you are not in a chat with this contact.",
			RefusedLeft:       "Not sent: {contact} left the chat with #LEAVE. They can reconnect by scanning your QR code.",
			RefusedClosed:     "Not sent: the chat with {contact} is closed; they unfollowed the account or do not accept messages.",
			CustomerLeft:      "{contact} left the chat (#LEAVE). {n} queued message(s) cancelled.",
			Unsubscribed:      "{contact} unfollowed the WeChat account; the chat is closed. {n} queued message(s) cancelled.",
			NotFollower:       "WeChat cannot deliver to {contact} any more (error {code}: not a follower, or they refuse messages); the chat is closed. {n} queued message(s) cancelled.",
			MembersChanged:    "The chat with {contact} changed ({by}): added {added}; removed {removed}.",
			Added:             "You were added to the chat with {contact} ({by}). You will see their messages and your colleagues' messages to them.",
			Removed:           "You were removed from the chat with {contact} ({by}).",
			Empty:             "Not sent: the message is empty.",
			TooLong:           "Not sent: the message is {size} bytes and WeChat takes at most {max} bytes in one message. Shorten it or send it in parts.",
			DeliveryFailed:    "Your message to {contact} could not be delivered (WeChat error {code}).",
			NotSent:           "Your message to {contact} was not sent: {reason}.",
			DeliveredLate:     "Your message to {contact} was delivered after WeChat was busy ({n} attempts).",
			OutcomeUnknown:    "WeChat did not confirm your message to {contact}; it may or may not have arrived. It will not be resent automatically.",
			RequeuedWindow:    "WeChat reports the chat with {contact} is outside its 48-hour window. Your message is queued and will be sent when they reply.",
			RequeuedQuota:     "WeChat's reply quota for {contact} is used up. Your message is queued and will be sent when they reply.",
			RebindOtherMember: "{contact} scanned another employee's QR code and now chats with them.",
			EditNotRelayed:    "You edited a message in Teams. Edits are not relayed: your contact on WeChat still has the original. Send a new message to correct it.",
			DeleteNotRelayed:  "You deleted a message in Teams. Deletions are not relayed: your contact on WeChat still has the message.",
			NoCurrentChat:     "Not sent: you have no current WeChat contact. Type \"contacts\" to list them, then \"to <name>\" to pick one, or press Reply on a message.",
			Blocked:           "Not sent: your message to {contact} breaks the firm's rule {rules}. It is kept in the compliance record; rephrase it or ask your compliance team.",
			Redacted:          "Your message to {contact} had {n} passage(s) replaced under the firm's rule {rules}; they receive \"{text}\".",
			Withheld:          "{contact} wrote a message the firm's rule {rules} keeps from you. It is kept in the compliance record for your compliance team.",
		},
	}
}

// ParsePolicy reads a firm's policy as JSON over the defaults: fields left out keep their default,
// and a customer language left out keeps its default texts. The result is validated.
func ParsePolicy(data []byte) (Policy, error) {
	p := DefaultPolicy()
	defaults := p.Customer
	p.Customer = nil
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Policy{}, fmt.Errorf("policy: %w", err)
	}
	merged := make(map[string]CustomerTexts, len(defaults))
	for lang, t := range defaults {
		merged[lang] = t
	}
	for lang, t := range p.Customer {
		merged[lang] = mergeTexts(merged[lang], t)
	}
	p.Customer = merged
	return p, p.Validate()
}

// mergeTexts fills the empty fields of over from base.
func mergeTexts(base, over CustomerTexts) CustomerTexts {
	fill := func(dst *string, src string) {
		if *dst == "" {
			*dst = src
		}
	}
	fill(&over.Initial, base.Initial)
	fill(&over.RecordingNotice, base.RecordingNotice)
	fill(&over.OnHold, base.OnHold)
	fill(&over.MembersChanged, base.MembersChanged)
	fill(&over.LeaveConfirm, base.LeaveConfirm)
	fill(&over.NotConnected, base.NotConnected)
	fill(&over.Unavailable, base.Unavailable)
	return over
}

// On-hold prompt timings (Policy.OnHoldPrompt).
const (
	OnHoldAtNotice = "notice"
	OnHoldAtQueue  = "queue"
)

// WeChatTextLimit is the most bytes WeChat takes in one customer-service text (45002 beyond).
const WeChatTextLimit = 2048

// Validate reports every problem with the policy at once.
func (p Policy) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("policy: "+format, args...)) }
	if p.Cap < 1 {
		bad("cap must be at least 1, is %d", p.Cap)
	}
	if p.Quota < p.Cap {
		bad("quota (%d) must be at least the cap (%d): every employee message uses WeChat quota", p.Quota, p.Cap)
	}
	if p.Window <= 0 {
		bad("window must be positive")
	}
	if p.NoticeAfter <= 0 || p.NoticeAfter >= p.Window {
		bad("notice_after (%s) must be positive and shorter than the window (%s)", p.NoticeAfter, p.Window)
	}
	if p.QueueLimit < 0 {
		bad("queue_limit must not be negative")
	}
	if p.MaxTextBytes < 16 || p.MaxTextBytes > WeChatTextLimit {
		bad("max_text_bytes must be between 16 and WeChat's limit of %d, is %d", WeChatTextLimit, p.MaxTextBytes)
	}
	if p.OnHoldPrompt != OnHoldAtNotice && p.OnHoldPrompt != OnHoldAtQueue {
		bad("on_hold_prompt must be %q or %q, is %q", OnHoldAtNotice, OnHoldAtQueue, p.OnHoldPrompt)
	}
	if p.RetryAttempts < 1 {
		bad("retry_attempts must be at least 1")
	}
	if p.TeamsRetryFor <= 0 {
		bad("teams_retry_for must be positive")
	}
	if p.RetryBackoff <= 0 || p.SendTimeout <= 0 {
		bad("retry_backoff and send_timeout must be positive")
	}
	if p.Retention < 0 || (p.Retention > 0 && p.Retention < Duration(24*time.Hour)) {
		bad("retention must be 0 (keep for ever) or at least 24h, is %s", p.Retention)
	}
	if _, ok := p.Customer[p.DefaultLanguage]; !ok {
		bad("default_language %q has no customer texts", p.DefaultLanguage)
	}
	for _, lang := range slices.Sorted(maps.Keys(p.Customer)) {
		t := p.Customer[lang]
		if t.Initial == "" || t.OnHold == "" || t.MembersChanged == "" || t.LeaveConfirm == "" || t.NotConnected == "" || t.Unavailable == "" {
			bad("customer texts for %q are incomplete", lang)
			continue
		}
		// Each goes to WeChat as one text: longer ones would fail there for good (45002).
		for _, text := range []struct{ name, text string }{
			{"initial (with the recording notice)", joinText(t.Initial, fill(t.RecordingNotice, "{firm}", p.FirmName))},
			{"on_hold", t.OnHold}, {"members_changed", t.MembersChanged}, {"leave_confirm", t.LeaveConfirm},
			{"not_connected", t.NotConnected}, {"unavailable", t.Unavailable},
		} {
			if n := len(text.text); n > p.MaxTextBytes {
				bad("customer text %s for %q is %d bytes; WeChat takes at most %d (max_text_bytes) in one message", text.name, lang, n, p.MaxTextBytes)
			}
		}
	}
	if p.Reinstate != nil && p.Reinstate.ID == "" {
		bad("reinstate_template needs an id")
	}
	return errors.Join(errs...)
}

// Version identifies this policy's texts and limits in the archive: the first 12 hex digits of the
// SHA-256 of its JSON encoding. Any change of a text gives a new version.
func (p Policy) Version() string {
	b, _ := json.Marshal(p) // maps encode with sorted keys, so this is deterministic
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// CustomerLanguage picks the customer texts for a WeChat language code (zh_CN, zh_TW, en …).
func (p Policy) CustomerLanguage(wechatLang string) string {
	l := strings.ToLower(strings.ReplaceAll(wechatLang, "_", "-"))
	switch {
	case strings.HasPrefix(l, "zh"):
		if _, ok := p.Customer[LangChinese]; ok {
			return LangChinese
		}
	case strings.HasPrefix(l, "en"):
		if _, ok := p.Customer[LangEnglish]; ok {
			return LangEnglish
		}
	}
	if _, ok := p.Customer[wechatLang]; ok {
		return wechatLang
	}
	return p.DefaultLanguage
}

// Duration is a time.Duration written as "48h" in JSON.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string such as "48h" or "90m", or whole days such as "2192d".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"48h\": %w", err)
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return fmt.Errorf("duration %q: want whole days such as \"2192d\"", s)
		}
		*d = Duration(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// IsBlank reports whether a text shows nothing: only white space and characters that render as
// nothing (zero-width spaces and joiners, the BOM, variation selectors, fillers — Unicode's
// default-ignorable code points).
func IsBlank(text string) bool {
	for _, r := range text {
		if !unicode.IsSpace(r) && !unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point) {
			return false
		}
	}
	return true
}

// fill replaces {name} placeholders in a text.
func fill(text string, pairs ...string) string {
	if !strings.Contains(text, "{") {
		return text
	}
	return strings.NewReplacer(pairs...).Replace(text)
}
