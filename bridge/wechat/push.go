package wechat

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Push is a message or event WeChat pushed to the callback: the union of the fields of every
// message and event type the bridge handles, in either of WeChat's formats (XML or JSON).
type Push struct {
	XMLName      xml.Name `xml:"xml" json:"-"`
	ToUserName   string   `xml:"ToUserName" json:"ToUserName"`
	FromUserName string   `xml:"FromUserName" json:"FromUserName"`
	CreateTime   int64    `xml:"CreateTime" json:"CreateTime"`
	MsgType      string   `xml:"MsgType" json:"MsgType"`
	MsgID        string   `xml:"MsgId" json:"MsgId"` // 64-bit; kept as text

	// Messages.
	Content      string  `xml:"Content" json:"Content"`
	PicURL       string  `xml:"PicUrl" json:"PicUrl"`
	MediaID      string  `xml:"MediaId" json:"MediaId"`
	Format       string  `xml:"Format" json:"Format"`
	Recognition  string  `xml:"Recognition" json:"Recognition"`
	ThumbMediaID string  `xml:"ThumbMediaId" json:"ThumbMediaId"`
	LocationX    float64 `xml:"Location_X" json:"Location_X"`
	LocationY    float64 `xml:"Location_Y" json:"Location_Y"`
	Scale        float64 `xml:"Scale" json:"Scale"`
	Label        string  `xml:"Label" json:"Label"`
	Title        string  `xml:"Title" json:"Title"`
	Description  string  `xml:"Description" json:"Description"`
	URL          string  `xml:"Url" json:"Url"`

	// Events.
	Event     string  `xml:"Event" json:"Event"`
	EventKey  string  `xml:"EventKey" json:"EventKey"`
	Ticket    string  `xml:"Ticket" json:"Ticket"`
	Latitude  float64 `xml:"Latitude" json:"Latitude"`
	Longitude float64 `xml:"Longitude" json:"Longitude"`
	Precision float64 `xml:"Precision" json:"Precision"`
	Status    string  `xml:"Status" json:"Status"`   // template receipt
	JobMsgID  string  `xml:"MsgID" json:"MsgID"`     // template receipt's message id
	Encrypt   string  `xml:"Encrypt" json:"Encrypt"` // safe and compatible modes
}

// IsEvent reports whether the push is an event rather than a message.
func (p *Push) IsEvent() bool { return p.MsgType == "event" }

// Parse errors.
var (
	ErrMalformed = errors.New("wechat: malformed push")
	ErrDoctype   = errors.New("wechat: XML with a DOCTYPE or entity declaration refused")
)

// ParsePush reads a push body in XML or JSON (JSON when the first non-space byte is '{').
// XML carrying a DOCTYPE or ENTITY declaration is refused outright; WeChat never sends one.
func ParsePush(body []byte) (*Push, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n\ufeff")
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrMalformed)
	}
	if trimmed[0] == '{' {
		return parseJSON(trimmed)
	}
	return parseXML(trimmed)
}

func parseXML(body []byte) (*Push, error) {
	upper := bytes.ToUpper(body)
	if bytes.Contains(upper, []byte("<!DOCTYPE")) || bytes.Contains(upper, []byte("<!ENTITY")) {
		return nil, ErrDoctype
	}
	var p Push
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	dec.Entity = nil // only the five predefined entities
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	p.trim()
	return &p, nil
}

// jsonPush is Push as JSON carries it: numbers may be large (MsgId) or quoted.
type jsonPush struct {
	Push
	CreateTime json.Number `json:"CreateTime"`
	MsgID      json.Number `json:"MsgId"`
	JobMsgID   json.Number `json:"MsgID"`
}

func parseJSON(body []byte) (*Push, error) {
	var j jsonPush
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	p := j.Push
	if j.CreateTime != "" {
		t, err := strconv.ParseInt(string(j.CreateTime), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: CreateTime %q", ErrMalformed, j.CreateTime)
		}
		p.CreateTime = t
	}
	p.MsgID, p.JobMsgID = string(j.MsgID), string(j.JobMsgID)
	p.trim()
	return &p, nil
}

func (p *Push) trim() {
	for _, f := range []*string{&p.ToUserName, &p.FromUserName, &p.MsgType, &p.MsgID, &p.Event, &p.EventKey, &p.Encrypt, &p.MediaID} {
		*f = strings.TrimSpace(*f)
	}
}

// Validate checks the fields every push must have.
func (p *Push) Validate() error {
	switch {
	case p.ToUserName == "":
		return fmt.Errorf("%w: no ToUserName", ErrMalformed)
	case p.FromUserName == "":
		return fmt.Errorf("%w: no FromUserName", ErrMalformed)
	case p.MsgType == "":
		return fmt.Errorf("%w: no MsgType", ErrMalformed)
	case p.IsEvent() && p.Event == "":
		return fmt.Errorf("%w: event without Event", ErrMalformed)
	case !p.IsEvent() && p.MsgID == "":
		return fmt.Errorf("%w: message without MsgId", ErrMalformed)
	}
	return nil
}

// Scene returns the QR scene of a subscribe or SCAN event, if it has one: subscribe carries
// "qrscene_<scene>", SCAN carries the scene itself. Other EventKeys (e.g. "last_trade_no_…" after a
// payment) are not scenes.
func (p *Push) Scene() (string, bool) {
	switch strings.ToLower(p.Event) {
	case "subscribe":
		scene, ok := strings.CutPrefix(p.EventKey, "qrscene_")
		return scene, ok && scene != ""
	case "scan":
		return p.EventKey, p.EventKey != ""
	}
	return "", false
}
