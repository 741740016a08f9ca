package bot

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	_ "image/gif"  // decode sizes of images shown inline
	_ "image/jpeg" // (see inlineImage)
	_ "image/png"
	"math"
	"strings"
	"time"

	"github.com/wxteams/wxteams/bridge"
)

// This file renders what employees see: every WeChat message as an Adaptive Card 1.5 (who, text,
// time, the window's state, a Reply button), notices as cards, and images inline.

// card is an Adaptive Card.
type card map[string]any

func newCard(body []any, actions []any) card {
	c := card{"type": "AdaptiveCard", "version": "1.5", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "body": body}
	if len(actions) > 0 {
		c["actions"] = actions
	}
	return c
}

func textBlock(text string, opts ...func(map[string]any)) map[string]any {
	b := map[string]any{"type": "TextBlock", "text": text, "wrap": true}
	for _, o := range opts {
		o(b)
	}
	return b
}

func bold(b map[string]any)   { b["weight"] = "Bolder" }
func subtle(b map[string]any) { b["isSubtle"], b["size"] = true, "Small" }
func spacing(b map[string]any) {
	b["spacing"] = "Small"
}

// cardAttachment wraps a card as an attachment.
func cardAttachment(c card) Attachment {
	b, _ := json.Marshal(c)
	return Attachment{ContentType: ContentTypeAdaptiveCard, Content: b}
}

// ReplyData is what the Reply button carries back (Action.Execute data, or Action.Submit value).
type ReplyData struct {
	Action string        `json:"action"` // "reply"
	Chat   bridge.ChatID `json:"chat"`
}

// windowLine says where a chat stands, e.g. "2 of 3 replies left · window closes in 46 h".
func windowLine(w bridge.WindowState, at time.Time) string {
	var s string
	switch w.Status {
	case bridge.StatusActive, bridge.StatusCapped:
		s = fmt.Sprintf("%d of %d replies left", w.RepliesLeft, w.Cap)
		if !w.ClosesAt.IsZero() {
			hours := int(math.Ceil(w.ClosesAt.Sub(at).Hours()))
			s += fmt.Sprintf(" · window closes in %d h", max(hours, 0))
		}
	case bridge.StatusPending:
		s = "Waiting for them to write first"
	case bridge.StatusInactive:
		s = "Inactive: they have not written for 48 h"
	case bridge.StatusLeft:
		s = "They left the chat (#LEAVE)"
	case bridge.StatusClosed:
		s = "Chat closed"
	default:
		return ""
	}
	if w.Queued > 0 {
		s += fmt.Sprintf(" · %d queued", w.Queued)
	}
	return s
}

// when renders a time for the card; Teams shows it in the reader's time zone.
func when(t time.Time) string {
	ts := t.UTC().Format("2006-01-02T15:04:05Z")
	return "{{DATE(" + ts + ", SHORT)}} {{TIME(" + ts + ")}}"
}

// customerCard is a customer's message.
func customerCard(m *bridge.TeamsMessage, mediaNote string) card {
	return messageCard("💬 "+m.ContactName, m, mediaNote, windowLine(m.Window, m.SentAt))
}

// colleagueCard is a colleague's message to the customer of a team chat: who wrote it to whom,
// and whether it went out or waits in the queue.
func colleagueCard(m *bridge.TeamsMessage, mediaNote string) card {
	fate := "Sent by your colleague"
	if m.Outcome == bridge.OutcomeQueued {
		fate = "Queued by your colleague: it goes out when the customer writes"
	}
	if line := windowLine(m.Window, m.SentAt); line != "" {
		fate += " · " + line
	}
	return messageCard(m.AuthorName+" → "+m.ContactName, m, mediaNote, fate)
}

// messageCard is a message in a chat: a title and the time, the text, a note on its media, a
// footer line, and a Reply button.
func messageCard(title string, m *bridge.TeamsMessage, mediaNote, footer string) card {
	header := map[string]any{"type": "ColumnSet", "columns": []any{
		map[string]any{"type": "Column", "width": "stretch", "items": []any{textBlock(title, bold)}},
		map[string]any{"type": "Column", "width": "auto", "items": []any{textBlock(when(m.SentAt), subtle)}},
	}}
	body := []any{header}
	if text := strings.TrimSpace(m.Message.Text); text != "" {
		body = append(body, textBlock(text, spacing))
	}
	if mediaNote != "" {
		body = append(body, textBlock(mediaNote, subtle))
	}
	if footer != "" {
		body = append(body, textBlock(footer, subtle))
	}
	reply := map[string]any{"type": "Action.Execute", "title": "Reply", "verb": "reply", "data": ReplyData{Action: "reply", Chat: m.ChatID}}
	return newCard(body, []any{reply})
}

// A notice about the employee's own messages (TeamsMessage.About) opens with their fate, marked as
// Teams and WeChat mark sending, sent and failed messages. A message that went out at once gets no
// notice (one WeChat accepted only after retries does): Teams has marked it "Sent" when the bot
// took it, and one more activity per message would
// double what the employee reads and what counts against Teams' per-conversation limits (see
// DefaultThreadLimits). The colleague card says the same of a colleague's message.
var fates = []struct {
	prefix, mark, color string
}{
	{"employee.queued_", "⏳ Queued", "Warning"},
	{"employee.requeued_", "⏳ Back in the queue", "Warning"},
	{"employee.released", "✓ Sent", "Good"},
	{"employee.flushed", "✓ Sent", "Good"},
	{"employee.delivered_late", "✓ Delivered", "Good"},
	{"employee.delivery_failed", "✗ Not delivered", "Attention"},
	{"employee.outcome_unknown", "⚠ Outcome unknown", "Warning"},
	{"employee.not_enabled", "⛔ Not sent", "Attention"},
	{"employee.no_current_chat", "⛔ Not sent", "Attention"},
	{"employee.not_member", "⛔ Not sent", "Attention"},
	{"employee.empty", "⛔ Not sent", "Attention"},
	{"employee.too_long", "⛔ Not sent", "Attention"},
	{"employee.refused_", "⛔ Not sent", "Attention"},
	{"employee.queue_full", "⛔ Not sent", "Attention"},
	{"employee.blocked", "⛔ Not sent · firm rule", "Attention"},
	{"employee.redacted", "✂ Redacted · firm rule", "Warning"}, // sent or queued, redacted
	{"employee.withheld", "⛔ Withheld · firm rule", "Attention"},
	{"employee.", "⊘ Cancelled", "Default"}, // the customer left, unfollowed, scanned another code …
}

// fateLine is the mark a notice about the employee's messages opens with ("" for other notices).
func fateLine(m *bridge.TeamsMessage) map[string]any {
	if len(m.About) == 0 {
		return nil
	}
	for _, f := range fates {
		if strings.HasPrefix(m.Notice, f.prefix) {
			text := f.mark
			if n := len(m.About); n > 1 {
				text += fmt.Sprintf(" · %d messages", n)
			}
			return textBlock(text, bold, func(b map[string]any) { b["color"], b["id"] = f.color, "fate" })
		}
	}
	return nil
}

// noticeCard is an auto-message to the employee.
func noticeCard(m *bridge.TeamsMessage) card {
	var body []any
	if fate := fateLine(m); fate != nil {
		body = append(body, fate)
	}
	if m.ContactName != "" {
		body = append(body, textBlock("WeChat · "+m.ContactName, bold))
	}
	if text := strings.TrimSpace(m.Message.Text); text != "" {
		body = append(body, textBlock(text))
	}
	if m.ChatID != 0 {
		if line := windowLine(m.Window, m.SentAt); line != "" {
			body = append(body, textBlock(line, subtle))
		}
	}
	return newCard(body, nil)
}

// Teams shows pictures in messages up to 1024×1024 and 1 MB, PNG, JPEG or GIF.
const (
	inlineMaxBytes = 1 << 20
	inlineMaxSide  = 1024
)

// inlineImage is an image attachment carrying the bytes as a data URI, or a note saying why the
// image cannot be shown.
func inlineImage(media *bridge.Media, data []byte) (*Attachment, string) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	switch {
	case err != nil:
		return nil, fmt.Sprintf("[%s attachment, %s, kept in the archive]", kindOf(media.ContentType), size(len(data)))
	case len(data) > inlineMaxBytes:
		return nil, fmt.Sprintf("[image, %s: too large to show in Teams; kept in the archive]", size(len(data)))
	case cfg.Width > inlineMaxSide || cfg.Height > inlineMaxSide:
		return nil, fmt.Sprintf("[image, %d×%d: too large to show in Teams; kept in the archive]", cfg.Width, cfg.Height)
	}
	ct := "image/" + format
	name := media.Name
	if name == "" {
		name = "image." + format
	}
	return &Attachment{ContentType: ct, ContentURL: "data:" + ct + ";base64," + base64.StdEncoding.EncodeToString(data), Name: name}, ""
}

func kindOf(contentType string) string {
	switch {
	case strings.HasPrefix(contentType, "audio/"):
		return "voice"
	case strings.HasPrefix(contentType, "video/"):
		return "video"
	case strings.HasPrefix(contentType, "image/"):
		return "image"
	}
	return "file"
}

func size(n int) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d KB", (n+1023)>>10)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
}
