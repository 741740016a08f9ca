package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wxteams/wxteams/bridge"
)

// MediaStore reads stored media (bridge/sqlstore implements it).
type MediaStore interface {
	MediaData(ctx context.Context, sha256 string) (*bridge.Media, []byte, error)
}

// AddressBook remembers where employees are reached (bridge.Engine implements it).
type AddressBook interface {
	RegisterTeamsUser(ctx context.Context, u bridge.TeamsUser) (*bridge.Employee, error)
}

// ProactiveServiceURL is the documented endpoint for proactive messages when no serviceUrl has been
// learned from an activity yet (teams-bot-facts §3.3).
const ProactiveServiceURL = "https://smba.trafficmanager.net/teams/"

// Sender delivers the bridge's messages and notices to employees; it implements bridge.TeamsSender,
// and bridge.MediaFetcher for attachments employees send ("teams:" sources).
type Sender struct {
	connector *Connector
	media     MediaStore
	addresses AddressBook
	tenantID  string // for proactive conversations with employees whose tenant is unknown
	proactive string // serviceUrl for proactive conversations
}

var (
	_ bridge.TeamsSender  = (*Sender)(nil)
	_ bridge.MediaFetcher = (*Sender)(nil)
)

// NewSender returns a sender. addresses may be set later with SetAddressBook (the engine that
// implements it needs the sender first).
func NewSender(c *Connector, media MediaStore, tenantID, proactiveServiceURL string) *Sender {
	if proactiveServiceURL == "" {
		proactiveServiceURL = ProactiveServiceURL
	}
	return &Sender{connector: c, media: media, tenantID: tenantID, proactive: proactiveServiceURL}
}

// SetAddressBook sets where new conversation ids are recorded.
func (s *Sender) SetAddressBook(a AddressBook) { s.addresses = a }

// errNotInstalled: nothing can reach the employee until the app is installed for them.
var errNotInstalled = &bridge.DeliveryError{Kind: bridge.ErrRetryLater, Message: "the Teams app is not installed for this employee yet", Delay: time.Minute}

// SendTeams shows m to an employee: a card, and an image when the message carries one. Teams splits
// text and attachments anyway, and only gives an id for separate activities.
func (s *Sender) SendTeams(ctx context.Context, emp *bridge.Employee, m *bridge.TeamsMessage) (bridge.Delivery, error) {
	addr, err := s.address(ctx, emp)
	if err != nil {
		return bridge.Delivery{}, err
	}
	activities, err := s.render(ctx, m)
	if err != nil {
		return bridge.Delivery{}, err
	}
	var first string
	for _, a := range activities {
		id, err := s.send(ctx, emp, addr, a)
		if errors.Is(err, ErrConversationGone) && emp.Teams.UserID != "" {
			// Teams forgot the conversation: open a new one and try once more.
			emp.Teams.ConversationID = ""
			if addr, err = s.address(ctx, emp); err == nil {
				id, err = s.send(ctx, emp, addr, a)
			}
		}
		if err != nil {
			return bridge.Delivery{ID: first}, err
		}
		if first == "" {
			first = id
		}
	}
	return bridge.Delivery{ID: first}, nil
}

// send posts one activity; a 413 splits a long text into halves, each sent on its own.
func (s *Sender) send(ctx context.Context, emp *bridge.Employee, addr bridge.TeamsAddress, a *Activity) (string, error) {
	id, err := s.connector.Send(ctx, addr.ServiceURL, emp.Tenant, addr.ConversationID, a)
	var ce *ConnectorError
	if errors.As(err, &ce) && ce.Status == 413 {
		text := a.Text
		if len(a.Attachments) == 1 && a.Attachments[0].ContentType == ContentTypeAdaptiveCard {
			text = cardText(a.Attachments[0])
		}
		if len(text) < 2 {
			return "", err
		}
		half := splitPoint(text)
		first, err := s.send(ctx, emp, addr, &Activity{Type: "message", Text: text[:half], TextFormat: "plain"})
		if err != nil {
			return "", err
		}
		_, err = s.send(ctx, emp, addr, &Activity{Type: "message", Text: text[half:], TextFormat: "plain"})
		return first, err
	}
	return id, err
}

// splitPoint is near the middle of text, at a line or word break if one is close.
func splitPoint(text string) int {
	mid := len(text) / 2
	for _, sep := range []string{"\n", " "} {
		if i := strings.LastIndex(text[:mid], sep); i > mid/2 {
			return i + 1
		}
	}
	for mid > 0 && mid < len(text) && text[mid]&0xC0 == 0x80 { // not inside a UTF-8 sequence
		mid--
	}
	return mid
}

// cardText is the texts of a card, for splitting it into plain messages.
func cardText(a Attachment) string {
	var c struct {
		Body []struct {
			Type, Text string
		} `json:"body"`
	}
	_ = json.Unmarshal(a.Content, &c)
	var parts []string
	for _, b := range c.Body {
		if b.Type == "TextBlock" && b.Text != "" {
			parts = append(parts, b.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// address returns the conversation to reach an employee in, creating it (a proactive message) when
// only their user id is known.
func (s *Sender) address(ctx context.Context, emp *bridge.Employee) (bridge.TeamsAddress, error) {
	addr := emp.Teams
	if addr.ServiceURL == "" {
		addr.ServiceURL = s.proactive
	}
	if addr.ConversationID != "" {
		return addr, nil
	}
	if addr.UserID == "" {
		return addr, errNotInstalled
	}
	tenant := firstNonEmpty(emp.Tenant, s.tenantID)
	conv, err := s.connector.CreateConversation(ctx, addr.ServiceURL, tenant, addr.UserID)
	if err != nil {
		return addr, err
	}
	addr.ConversationID = conv
	if s.addresses != nil {
		if _, err := s.addresses.RegisterTeamsUser(ctx, bridge.TeamsUser{ID: emp.ID, Tenant: tenant, Address: addr}); err != nil {
			return addr, fmt.Errorf("record the new conversation: %w", errors.Join(err, bridge.ErrRetryLater))
		}
	}
	return addr, nil
}

// render turns a bridge message into activities.
func (s *Sender) render(ctx context.Context, m *bridge.TeamsMessage) ([]*Activity, error) {
	var (
		img  *Attachment
		note string
	)
	if media := m.Message.Media; media != nil {
		if !media.Fetched() || s.media == nil {
			note = "[" + m.Message.Type + " could not be retrieved]"
		} else {
			stored, data, err := s.media.MediaData(ctx, media.SHA256)
			if err != nil {
				return nil, fmt.Errorf("read media %s: %w", media.SHA256, errors.Join(err, bridge.ErrRetryLater))
			}
			if media.Name == "" {
				media.Name = stored.Name
			}
			img, note = inlineImage(stored, data)
			if m.Message.Type == "voice" || m.Message.Type == "video" {
				img, note = nil, fmt.Sprintf("[%s message, %s, kept in the archive; Teams cannot play WeChat's format]", m.Message.Type, size(len(data)))
			}
		}
	}
	var c card
	switch m.Kind {
	case bridge.TeamsCustomerMessage:
		c = customerCard(m, note)
	case bridge.TeamsColleagueMessage:
		c = colleagueCard(m, note)
	default:
		c = noticeCard(m)
		if note != "" {
			c["body"] = append(c["body"].([]any), textBlock(note, subtle))
		}
	}
	summary := m.ContactName
	if summary == "" {
		summary = "wxteams"
	}
	out := []*Activity{{Type: "message", Attachments: []Attachment{cardAttachment(c)}, Summary: summary + ": " + truncate(m.Message.Text, 80)}}
	if img != nil {
		out = append(out, &Activity{Type: "message", Attachments: []Attachment{*img}})
	}
	return out, nil
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// FetchMedia downloads an attachment an employee sent ("teams:<url>"), for relaying to WeChat.
func (s *Sender) FetchMedia(ctx context.Context, source string) ([]byte, string, error) {
	rawURL, ok := strings.CutPrefix(source, "teams:")
	if !ok {
		return nil, "", fmt.Errorf("bot: %q is not a Teams media source", source)
	}
	return s.connector.Download(ctx, rawURL, 0)
}
