package transcript

import (
	"fmt"
	"strings"

	"github.com/wxteams/wxteams/compliance"
)

// Why a message was queued or refused: the bridge archives a code (bridge/rules.go); people read
// these words.
var reasonWords = map[string]string{
	// queued
	"pending":  "the customer has not written yet, and WeChat lets the firm write only after they do",
	"inactive": "the chat is inactive: the customer has not written for 48 hours",
	"capped":   "the limit of consecutive messages without a reply was reached",
	"quota":    "WeChat's message quota for this window is used up",
	// refused
	"not_enabled":       "WeChat is not enabled for the author",
	"no_current_chat":   "the author had not picked a contact",
	"unknown_chat":      "the author is not a member of the chat",
	"not_member":        "the author is not a member of the chat",
	"empty":             "it was empty",
	"too_long":          "it is longer than WeChat allows",
	"left":              "the customer had left the chat (#LEAVE)",
	"closed":            "the chat is closed",
	"queue_full":        "the chat's queue was full",
	"not_connected":     "the customer is in no chat",
	"no_enabled_member": "no member of the chat may use WeChat",
}

// What WeChat's and Teams' codes mean, for a failed delivery.
var wechatCodes = map[int]string{
	40003: "WeChat does not know the customer",
	43004: "the customer no longer follows the account",
	45002: "it is too long for WeChat",
	45015: "outside WeChat's 48-hour window",
	45047: "WeChat's quota for this window is used up",
	48002: "the customer blocked messages from the account",
}

var teamsCodes = map[int]string{
	403: "the employee removed the app or blocked the bot",
	404: "Teams no longer knows the conversation",
	413: "it is too large for Teams",
	429: "Teams asked wxteams to slow down",
}

// Reason says in words why a record put a message in its state ("" when it needs no reason).
func Reason(kind compliance.Kind, m compliance.Meta) string {
	switch kind {
	case compliance.KindDelivered:
		return ""
	case compliance.KindQueued, compliance.KindRefused:
		if w, ok := reasonWords[m.Reason]; ok {
			return w
		}
		return m.Reason
	case compliance.KindRequeued:
		why := "WeChat refused it for now"
		if strings.Contains(m.Reason, "45047") {
			why = wechatCodes[45047]
		} else if strings.Contains(m.Reason, "45015") {
			why = wechatCodes[45015]
		}
		return why + "; back in the queue"
	case compliance.KindReleased:
		if m.Reason == "" {
			return "released from the queue"
		}
		return "released from the queue: " + m.Reason
	case compliance.KindDeliveryFailed:
		return codeWords(m)
	case compliance.KindDeliveryRetry:
		return fmt.Sprintf("%s; another try is due (attempt %d)", codeWords(m), m.Attempt)
	case compliance.KindOutcomeUnknown:
		return "the request may have reached " + channelName(m.Channel) + "; it is not sent again"
	case compliance.KindBlocked:
		return "kept from its recipient by the firm's rule " + strings.Join(m.Matched, ", ")
	case compliance.KindRedacted:
		return fmt.Sprintf("%d passage(s) redacted under the firm's rule %s", m.Count, strings.Join(m.Matched, ", "))
	}
	return m.Reason
}

func channelName(ch string) string {
	switch ch {
	case "teams":
		return "Teams"
	case "wechat":
		return "WeChat"
	}
	return "the channel"
}

// codeWords says what a channel's answer meant.
func codeWords(m compliance.Meta) string {
	words := ""
	switch m.Channel {
	case "wechat":
		words = wechatCodes[m.ErrCode]
	case "teams":
		words = teamsCodes[m.ErrCode]
	}
	switch {
	case words != "" && m.ErrCode != 0:
		return fmt.Sprintf("%s (%s %d)", words, channelName(m.Channel), m.ErrCode)
	case m.ErrCode != 0:
		return fmt.Sprintf("%s answered %d", channelName(m.Channel), m.ErrCode)
	}
	return channelName(m.Channel) + " could not be reached"
}

// describe says what an event record means.
func describe(kind compliance.Kind, m compliance.Meta, names Names) string {
	list := func(ids []string) string {
		if len(ids) == 0 {
			return "nobody"
		}
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = employee(id, names).Name
		}
		return strings.Join(out, ", ")
	}
	switch kind {
	case compliance.KindRouting:
		if emp, ok := strings.CutPrefix(m.Scene, "emp:"); ok {
			return "Scanned the QR code of " + employee(emp, names).Name
		}
		if m.Scene != "" {
			return "Scanned QR code " + m.Scene
		}
		return "Followed the account"
	case compliance.KindMembers:
		s := "Members changed: added " + list(m.Added) + "; removed " + list(m.Removed)
		if m.Reason != "" {
			s += " (" + m.Reason + ")"
		}
		return s
	case compliance.KindStatus:
		s := "Chat " + nonEmptyOr(m.From, "new") + " → " + m.To
		if m.Reason != "" {
			s += " (" + m.Reason + ")"
		}
		return s
	case compliance.KindLeave:
		return "Left the chat (#LEAVE)"
	case compliance.KindUnsubscribe:
		return "Unfollowed the account"
	case compliance.KindCustomerEvent:
		return strings.TrimSpace("WeChat event " + m.MsgType + " " + m.Reason)
	case compliance.KindEmployeeEdit:
		return "Edited a message in Teams (not relayed)"
	case compliance.KindEmployeeDelete:
		return "Deleted a message in Teams (not relayed)"
	}
	s := string(kind)
	if m.Reason != "" {
		s += ": " + m.Reason
	}
	return s
}

func nonEmptyOr(s, or string) string {
	if s == "" {
		return or
	}
	return s
}
