package export

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wxteams/wxteams/compliance"
)

// EML: one RFC 5322 message per chat per day, as Global Relay ingests chat over SMTP: the initiator
// in From, every participant in To, X-GlobalRelay-MsgType, a text/plain and text/html transcript,
// and the media as attachments. Everything in a message is derived from its records, so the same
// records give the same bytes.

// EMLMsgType is the X-GlobalRelay-MsgType of wxteams exports.
const EMLMsgType = "WeChat"

type emlWriter struct {
	dir    string
	people *directory
	media  func(sha string) (Media, error)
	g      grouper
	// Conversations are rendered and written by workers: creating thousands of small files is
	// mostly waiting on the file system. Each file's bytes depend only on its conversation.
	work chan *conversation
	done chan error
}

const emlWorkers = 4

func newEMLWriter(dir string, people *directory, media func(string) (Media, error)) (*emlWriter, error) {
	if err := os.MkdirAll(filepath.Join(dir, "eml"), 0o750); err != nil {
		return nil, err
	}
	w := &emlWriter{dir: dir, people: people, media: media, work: make(chan *conversation, 64), done: make(chan error, emlWorkers)}
	for range emlWorkers {
		go func() {
			var first error
			for c := range w.work {
				if first != nil {
					continue // drain
				}
				data, err := w.message(c)
				if err == nil {
					err = writeFile(filepath.Join(w.dir, filepath.FromSlash(EMLName(c.chatID, c.day))), data)
				}
				first = err
			}
			w.done <- first
		}()
	}
	return w, nil
}

func (w *emlWriter) add(r *rec) error { w.g.add(r); return nil }

// close waits for the workers and returns the first error.
func (w *emlWriter) close() error {
	close(w.work)
	var first error
	for range emlWorkers {
		if err := <-w.done; first == nil {
			first = err
		}
	}
	return first
}

func (w *emlWriter) endStream() error {
	for _, c := range w.g.take() {
		w.work <- c
	}
	return nil
}

// EMLName is the file of a chat's day.
func EMLName(chatID int64, day time.Time) string {
	return fmt.Sprintf("eml/chat-%d-%s.eml", chatID, day.UTC().Format("2006-01-02"))
}

func (w *emlWriter) address(p string) *mail.Address {
	kind, id, _ := strings.Cut(p, ":")
	person := w.people.person(kind, id)
	return &mail.Address{Name: person.Name, Address: person.Email}
}

func (w *emlWriter) message(c *conversation) ([]byte, error) {
	// The initiator is the first who wrote that day, else the first participant.
	initiator := ""
	for _, r := range c.recs {
		if s := sender(r); s != "" && isMessage(r) {
			initiator = s
			break
		}
	}
	if initiator == "" && len(c.parts) > 0 {
		initiator = c.parts[0]
	}
	var to []string
	names := []string{}
	for _, p := range c.parts {
		a := w.address(p)
		to = append(to, a.String())
		names = append(names, a.Name)
	}
	from := "wxteams <wxteams@wxteams.invalid>"
	if initiator != "" {
		from = w.address(initiator).String()
	}
	if len(to) == 0 {
		to = []string{from}
	}
	seed := sha256.Sum256([]byte(c.stream + c.day.Format(time.DateOnly)))
	boundary := "wxteams-" + hex.EncodeToString(seed[:12])
	first, last := c.recs[0].Seq, c.recs[len(c.recs)-1].Seq

	var b bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", from)
	header("To", strings.Join(to, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", fmt.Sprintf("WeChat conversation: %s, %s", strings.Join(names, ", "), c.day.Format(time.DateOnly))))
	header("Date", c.day.Add(24*time.Hour-time.Second).Format(time.RFC1123Z))
	header("Message-ID", fmt.Sprintf("<chat-%d.%s@wxteams.invalid>", c.chatID, c.day.Format(time.DateOnly)))
	header("MIME-Version", "1.0")
	header("Auto-Submitted", "auto-generated")
	header("Precedence", "bulk")
	header("X-GlobalRelay-MsgType", EMLMsgType)
	header("X-Wxteams-Stream", c.stream)
	header("X-Wxteams-Records", strconv.FormatInt(first, 10)+"-"+strconv.FormatInt(last, 10))
	header("Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
	b.WriteString("\r\n")

	mixed := multipart.NewWriter(&b)
	if err := mixed.SetBoundary(boundary); err != nil {
		return nil, err
	}
	altBoundary := "alt-" + boundary
	body, err := mixed.CreatePart(textproto.MIMEHeader{"Content-Type": {`multipart/alternative; boundary="` + altBoundary + `"`}})
	if err != nil {
		return nil, err
	}
	alt := multipart.NewWriter(body)
	if err := alt.SetBoundary(altBoundary); err != nil {
		return nil, err
	}
	plain, rows := w.transcript(c)
	for _, part := range []struct{ ctype, text string }{
		{"text/plain; charset=utf-8", plain},
		{"text/html; charset=utf-8", rows},
	} {
		pw, err := alt.CreatePart(textproto.MIMEHeader{"Content-Type": {part.ctype}, "Content-Transfer-Encoding": {"quoted-printable"}})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(pw)
		if _, err := qp.Write([]byte(part.text)); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := alt.Close(); err != nil {
		return nil, err
	}
	// Attachments, once each, in the order they appear.
	seen := map[string]bool{}
	for _, r := range c.recs {
		sha := r.meta.MediaSHA256
		if sha == "" || seen[sha] {
			continue
		}
		seen[sha] = true
		med, err := w.media(sha)
		if err != nil {
			continue // disposed of; the transcript names it
		}
		name := r.meta.MediaName
		if name == "" {
			name = sha + extension(med.ContentType)
		}
		ctype := med.ContentType
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		pw, err := mixed.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {mime.FormatMediaType(ctype, map[string]string{"name": name})},
			"Content-Disposition":       {mime.FormatMediaType("attachment", map[string]string{"filename": name})},
			"Content-Transfer-Encoding": {"base64"},
			"X-Wxteams-Sha256":          {sha},
		})
		if err != nil {
			return nil, err
		}
		enc := base64.StdEncoding.EncodeToString(med.Data)
		for len(enc) > 76 {
			fmt.Fprintf(pw, "%s\r\n", enc[:76])
			enc = enc[76:]
		}
		fmt.Fprintf(pw, "%s\r\n", enc)
	}
	if err := mixed.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func extension(ctype string) string {
	if exts, _ := mime.ExtensionsByType(ctype); len(exts) > 0 {
		sort.Strings(exts)
		return exts[0]
	}
	return ""
}

// transcript is the day as text and as an HTML table: time, who, what.
func (w *emlWriter) transcript(c *conversation) (string, string) {
	var plain, rows strings.Builder
	fmt.Fprintf(&plain, "WeChat conversation %s on %s (UTC)\r\nParticipants:\r\n", c.stream, c.day.Format(time.DateOnly))
	rows.WriteString("<html><body><h3>WeChat conversation " + html.EscapeString(c.stream) + " on " + c.day.Format(time.DateOnly) + " (UTC)</h3>\r\n<p>Participants:</p><ul>\r\n")
	for _, p := range c.parts {
		a := w.address(p)
		fmt.Fprintf(&plain, "  %s <%s>\r\n", a.Name, a.Address)
		rows.WriteString("<li>" + html.EscapeString(a.Name) + " &lt;" + html.EscapeString(a.Address) + "&gt;</li>\r\n")
	}
	plain.WriteString("\r\n")
	rows.WriteString("</ul>\r\n<table border=\"1\" cellpadding=\"4\">\r\n<tr><th>Time (UTC)</th><th>From</th><th>Message</th><th>Record</th></tr>\r\n")
	for _, r := range c.recs {
		who := "wxteams"
		if s := sender(r); s != "" {
			who = w.address(s).Name
		}
		text := r.content.Text
		switch {
		case r.Kind == compliance.KindAutoMessage:
			text = "(auto-message " + r.meta.Template + ") " + text
		case r.Kind == compliance.KindEmployeeEdit:
			text = "(edited in Teams, not relayed) " + text
		case r.Kind == compliance.KindEmployeeDelete:
			text = "(deleted in Teams, not relayed)"
		case !isMessage(r):
			text = describe(r)
		}
		if r.meta.MediaSHA256 != "" {
			text += " [attachment " + r.meta.MediaSHA256 + " " + r.meta.MediaName + "]"
		}
		at := r.At.UTC().Format("15:04:05")
		fmt.Fprintf(&plain, "%s  %s: %s\r\n", at, who, text)
		fmt.Fprintf(&rows, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s #%d</td></tr>\r\n", at, html.EscapeString(who),
			strings.ReplaceAll(html.EscapeString(text), "\n", "<br>"), html.EscapeString(r.Stream), r.Seq)
	}
	rows.WriteString("</table></body></html>\r\n")
	return plain.String(), rows.String()
}
