package bot

import (
	"encoding/json"
	"regexp"
	"strings"
)

// Activity is a Bot Framework activity as Teams sends and receives it (the fields the bridge uses).
type Activity struct {
	Type           string              `json:"type"`
	ID             string              `json:"id,omitempty"`
	Timestamp      string              `json:"timestamp,omitempty"`
	ServiceURL     string              `json:"serviceUrl,omitempty"`
	ChannelID      string              `json:"channelId,omitempty"`
	From           ChannelAccount      `json:"from"`
	Conversation   ConversationAccount `json:"conversation"`
	Recipient      ChannelAccount      `json:"recipient"`
	TextFormat     string              `json:"textFormat,omitempty"`
	Text           string              `json:"text,omitempty"`
	Attachments    []Attachment        `json:"attachments,omitempty"`
	Entities       []json.RawMessage   `json:"entities,omitempty"`
	ChannelData    json.RawMessage     `json:"channelData,omitempty"`
	ReplyToID      string              `json:"replyToId,omitempty"`
	Value          json.RawMessage     `json:"value,omitempty"`
	Name           string              `json:"name,omitempty"`
	Action         string              `json:"action,omitempty"` // installationUpdate: add, remove, add-upgrade, remove-upgrade
	MembersAdded   []ChannelAccount    `json:"membersAdded,omitempty"`
	MembersRemoved []ChannelAccount    `json:"membersRemoved,omitempty"`
	Locale         string              `json:"locale,omitempty"`
	Summary        string              `json:"summary,omitempty"`
}

// ChannelAccount is a user or a bot.
type ChannelAccount struct {
	ID          string `json:"id"`
	Name        string `json:"name,omitempty"`
	AADObjectID string `json:"aadObjectId,omitempty"`
	Role        string `json:"role,omitempty"`
}

// ConversationAccount is a conversation.
type ConversationAccount struct {
	ID               string `json:"id"`
	ConversationType string `json:"conversationType,omitempty"`
	TenantID         string `json:"tenantId,omitempty"`
	Name             string `json:"name,omitempty"`
	IsGroup          bool   `json:"isGroup,omitempty"`
}

// Attachment is a card, an inline image or a file.
type Attachment struct {
	ContentType  string          `json:"contentType"`
	ContentURL   string          `json:"contentUrl,omitempty"`
	Content      json.RawMessage `json:"content,omitempty"`
	Name         string          `json:"name,omitempty"`
	ThumbnailURL string          `json:"thumbnailUrl,omitempty"`
}

// Content types the bridge reads or sends.
const (
	ContentTypeAdaptiveCard = "application/vnd.microsoft.card.adaptive"
	ContentTypeFileDownload = "application/vnd.microsoft.teams.file.download.info"
)

// teamsChannelData is the channelData Teams adds.
type teamsChannelData struct {
	Tenant struct {
		ID string `json:"id"`
	} `json:"tenant"`
	EventType string `json:"eventType"`
}

func (a *Activity) channelData() teamsChannelData {
	var cd teamsChannelData
	if len(a.ChannelData) > 0 {
		_ = json.Unmarshal(a.ChannelData, &cd)
	}
	return cd
}

// TenantID is the Entra tenant of the activity.
func (a *Activity) TenantID() string {
	if a.Conversation.TenantID != "" {
		return a.Conversation.TenantID
	}
	return a.channelData().Tenant.ID
}

var mentionTag = regexp.MustCompile(`(?s)<at>.*?</at>`)

// PlainText is the activity's text without @-mentions of the bot, trimmed.
func (a *Activity) PlainText() string {
	return strings.TrimSpace(mentionTag.ReplaceAllString(a.Text, ""))
}
