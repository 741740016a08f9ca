package wechatfake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/wechat"
)

// Mode is the account's message encryption setting in the WeChat console.
type Mode int

// Modes (消息加解密方式).
const (
	Plaintext  Mode = iota // 明文模式
	Compatible             // 兼容模式: plaintext fields and Encrypt together
	Safe                   // 安全模式: Encrypt only; replies must be encrypted
)

// Pusher calls a callback URL as WeChat does: signed and, in compatible and safe modes,
// encrypted; waiting Timeout for an answer and retrying the same push (same MsgId and CreateTime)
// up to Attempts times in all; then, if asked, sending duplicates.
type Pusher struct {
	URL        string
	Token      string
	AESKey     string // EncodingAESKey, for Compatible and Safe
	AppID      string
	OriginalID string
	Mode       Mode
	JSON       bool          // push JSON instead of XML (the console's data format)
	Attempts   int           // requests per push in all [3]; "总共重试三次" may also mean 1+3: set 4
	Timeout    time.Duration // [5 s]
	Duplicates int           // after an acknowledged push, deliver it this many more times
	HTTP       *http.Client
	Clock      bridge.Clock
	Random     io.Reader // the encryption's random bytes [crypto/rand]
}

// Result is how a push went.
type Result struct {
	Attempts int    // requests made (duplicates not counted)
	Acked    bool   // the callback answered success, an empty body or valid XML
	Status   int    // the last HTTP status (0 when no answer came)
	Body     string // the last answer's body
	// Failure says why the push was not acknowledged. WeChat then shows the customer
	// "该公众号暂时无法提供服务，请稍后再试" (the account cannot serve you at the moment).
	Failure string
}

// Push delivers one push to the callback.
func (p *Pusher) Push(ctx context.Context, m *wechat.Push) (Result, error) {
	attempts := p.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	var res Result
	for res.Attempts < attempts {
		res.Attempts++
		status, body, err := p.send(ctx, m)
		res.Status, res.Body = status, body
		if err != nil {
			res.Failure = "no answer within " + p.timeout().String() + ": " + err.Error()
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			continue // WeChat retries the same push
		}
		if status != http.StatusOK {
			res.Failure = fmt.Sprintf("HTTP %d", status)
			continue
		}
		if !p.validReply(body) {
			res.Failure = "the answer is neither success, empty, nor a valid reply: " + truncate(body, 80)
			return res, nil // the customer sees the error; WeChat does not retry
		}
		res.Acked, res.Failure = true, ""
		for range p.Duplicates {
			if _, _, err := p.send(ctx, m); err != nil && ctx.Err() != nil {
				return res, ctx.Err()
			}
		}
		return res, nil
	}
	return res, nil
}

func (p *Pusher) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return 5 * time.Second
}

// validReply accepts what WeChat accepts: "success", an empty body, or reply XML (encrypted in safe
// mode).
func (p *Pusher) validReply(body string) bool {
	b := strings.TrimSpace(body)
	switch {
	case b == "" || b == "success":
		return true
	case strings.HasPrefix(b, "<xml>") && strings.HasSuffix(b, "</xml>"):
		return p.Mode != Safe || strings.Contains(b, "<Encrypt>")
	}
	return false
}

// send makes one signed request.
func (p *Pusher) send(ctx context.Context, m *wechat.Push) (int, string, error) {
	timestamp := strconv.FormatInt(p.Clock.Now().Unix(), 10)
	nonce := randomNonce()
	q := url.Values{
		"signature": {wechat.Signature(p.Token, timestamp, nonce)},
		"timestamp": {timestamp}, "nonce": {nonce}, "openid": {m.FromUserName},
	}
	plain := encode(m, p.JSON)
	body := plain
	if p.Mode != Plaintext {
		c, err := wechat.NewCipher(p.AESKey, p.AppID)
		if err != nil {
			return 0, "", err
		}
		c.Random = p.Random
		encrypted, err := c.Encrypt(plain)
		if err != nil {
			return 0, "", err
		}
		q.Set("encrypt_type", "aes")
		q.Set("msg_signature", wechat.Signature(p.Token, timestamp, nonce, encrypted))
		body = envelope(m, encrypted, p.JSON, p.Mode == Compatible)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"?"+q.Encode(), strings.NewReader(string(body)))
	if err != nil {
		return 0, "", err
	}
	if p.JSON {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Header.Set("Content-Type", "text/xml")
	}
	hc := p.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, "", err
	}
	return resp.StatusCode, string(reply), nil
}

// VerifyURL makes WeChat's GET to the callback and reports whether it echoed echostr.
func (p *Pusher) VerifyURL(ctx context.Context, echostr string) (bool, error) {
	timestamp := strconv.FormatInt(p.Clock.Now().Unix(), 10)
	nonce := randomNonce()
	q := url.Values{"signature": {wechat.Signature(p.Token, timestamp, nonce)}, "timestamp": {timestamp}, "nonce": {nonce}, "echostr": {echostr}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"?"+q.Encode(), nil)
	if err != nil {
		return false, err
	}
	hc := p.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK && string(b) == echostr, nil
}

// field is one element of a push, in WeChat's order.
type field struct {
	name  string
	value string
	text  bool // a string (CDATA in XML, quoted in JSON), not a number
}

// fields lists a push's elements in the order WeChat writes them, leaving out what the type lacks.
func fields(m *wechat.Push) []field {
	fs := []field{
		{"ToUserName", m.ToUserName, true}, {"FromUserName", m.FromUserName, true},
		{"CreateTime", strconv.FormatInt(m.CreateTime, 10), false}, {"MsgType", m.MsgType, true},
	}
	num := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	switch m.MsgType {
	case "text":
		fs = append(fs, field{"Content", m.Content, true})
	case "image":
		fs = append(fs, field{"PicUrl", m.PicURL, true}, field{"MediaId", m.MediaID, true})
	case "voice":
		fs = append(fs, field{"MediaId", m.MediaID, true}, field{"Format", m.Format, true})
		if m.Recognition != "" {
			fs = append(fs, field{"Recognition", m.Recognition, true})
		}
	case "video", "shortvideo":
		fs = append(fs, field{"MediaId", m.MediaID, true}, field{"ThumbMediaId", m.ThumbMediaID, true})
	case "location":
		fs = append(fs, field{"Location_X", num(m.LocationX), false}, field{"Location_Y", num(m.LocationY), false},
			field{"Scale", num(m.Scale), false}, field{"Label", m.Label, true})
	case "link":
		fs = append(fs, field{"Title", m.Title, true}, field{"Description", m.Description, true}, field{"Url", m.URL, true})
	case "event":
		fs = append(fs, field{"Event", m.Event, true})
		switch strings.ToUpper(m.Event) {
		case "SUBSCRIBE", "SCAN":
			if m.EventKey != "" || m.Ticket != "" {
				fs = append(fs, field{"EventKey", m.EventKey, true})
			}
			if m.Ticket != "" {
				fs = append(fs, field{"Ticket", m.Ticket, true})
			}
		case "LOCATION":
			fs = append(fs, field{"Latitude", num(m.Latitude), false}, field{"Longitude", num(m.Longitude), false}, field{"Precision", num(m.Precision), false})
		case "TEMPLATESENDJOBFINISH":
			fs = append(fs, field{"MsgID", m.JobMsgID, false}, field{"Status", m.Status, true})
		case "CLICK", "VIEW":
			fs = append(fs, field{"EventKey", m.EventKey, true})
		}
	}
	if m.MsgType != "event" {
		fs = append(fs, field{"MsgId", m.MsgID, false})
	}
	return fs
}

// encode writes a push as WeChat does: XML with CDATA, or JSON.
func encode(m *wechat.Push, asJSON bool) []byte {
	return encodeFields(fields(m), asJSON)
}

func encodeFields(fs []field, asJSON bool) []byte {
	if asJSON {
		var b strings.Builder
		b.WriteByte('{')
		for i, f := range fs {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(f.name)
			b.Write(k)
			b.WriteByte(':')
			if f.text {
				v, _ := json.Marshal(f.value)
				b.Write(v)
			} else {
				b.WriteString(f.value)
			}
		}
		b.WriteByte('}')
		return []byte(b.String())
	}
	var b strings.Builder
	b.WriteString("<xml>")
	for _, f := range fs {
		b.WriteString("<" + f.name + ">")
		if f.text {
			b.WriteString("<![CDATA[" + strings.ReplaceAll(f.value, "]]>", "]]]]><![CDATA[>") + "]]>")
		} else {
			b.WriteString(f.value)
		}
		b.WriteString("</" + f.name + ">")
	}
	b.WriteString("</xml>")
	return []byte(b.String())
}

// envelope wraps the ciphertext: ToUserName and Encrypt, plus the plaintext fields in compatible
// mode.
func envelope(m *wechat.Push, encrypted string, asJSON, compatible bool) []byte {
	fs := []field{{"ToUserName", m.ToUserName, true}}
	if compatible {
		fs = fields(m)
	}
	fs = append(fs, field{"Encrypt", encrypted, true})
	return encodeFields(fs, asJSON)
}

func randomNonce() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	n, _ := strconv.ParseUint(hex.EncodeToString(b[:]), 16, 32)
	return strconv.FormatUint(n, 10)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// ErrNoPusher means a user acted before the fake was told where the callback is.
var ErrNoPusher = errors.New("wechatfake: no pusher: call SetPusher first")
