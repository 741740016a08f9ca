package export

import (
	"bufio"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wxteams/wxteams/compliance"
)

// Line is one record in records.jsonl: the record exactly as archived (meta and content as the
// bytes that were hashed), so anyone can recompute every hash.
type Line struct {
	Stream   string          `json:"stream"`
	Seq      int64           `json:"seq"`
	At       time.Time       `json:"at"`
	Tenant   string          `json:"tenant,omitempty"`
	Kind     compliance.Kind `json:"kind"`
	Actor    string          `json:"actor"`
	ChatID   int64           `json:"chat_id,omitempty"`
	Meta     json.RawMessage `json:"meta"`
	Content  json.RawMessage `json:"content,omitempty"` // the encoded content; absent when empty
	BodyHash compliance.Hash `json:"body_hash"`
	PrevHash compliance.Hash `json:"prev_hash"`
	Hash     compliance.Hash `json:"hash"`
}

// Record rebuilds the archived record from the line.
func (l *Line) Record() *compliance.Record {
	return &compliance.Record{Stream: l.Stream, Seq: l.Seq, Tenant: l.Tenant, At: l.At, Kind: l.Kind, Actor: l.Actor, ChatID: l.ChatID,
		Meta: l.Meta, Body: l.Content, BodyHash: l.BodyHash, PrevHash: l.PrevHash, Hash: l.Hash}
}

// RecordsName is the canonical file.
const RecordsName = "records.jsonl"

type jsonlWriter struct {
	f    *os.File
	buf  *bufio.Writer
	line []byte
}

func newJSONLWriter(dir string) (*jsonlWriter, error) {
	f, err := os.OpenFile(filepath.Join(dir, RecordsName), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640) // #nosec G302 G304 -- a new file in the export folder (0750), read by the compliance group
	if err != nil {
		return nil, err
	}
	return &jsonlWriter{f: f, buf: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (w *jsonlWriter) add(r *rec) error {
	w.line = AppendLine(w.line[:0], r.Record)
	_, err := w.buf.Write(w.line)
	return err
}

// AppendLine appends a record's records.jsonl line (with its newline): the fields of Line in
// order, the meta and content bytes exactly as hashed. It is what encoding/json would write for a
// Line, without reflection.
func AppendLine(b []byte, r *compliance.Record) []byte {
	b = append(b, `{"stream":`...)
	b = appendString(b, r.Stream)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, r.Seq, 10)
	b = append(b, `,"at":"`...)
	b = r.At.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if r.Tenant != "" {
		b = append(b, `,"tenant":`...)
		b = appendString(b, r.Tenant)
	}
	b = append(b, `,"kind":`...)
	b = appendString(b, string(r.Kind))
	b = append(b, `,"actor":`...)
	b = appendString(b, r.Actor)
	if r.ChatID != 0 {
		b = append(b, `,"chat_id":`...)
		b = strconv.AppendInt(b, r.ChatID, 10)
	}
	b = append(b, `,"meta":`...)
	b = append(b, r.Meta...)
	if len(r.Body) > 0 {
		b = append(b, `,"content":`...)
		b = append(b, r.Body...)
	}
	for _, h := range []struct {
		name string
		hash *compliance.Hash
	}{{`,"body_hash":"`, &r.BodyHash}, {`,"prev_hash":"`, &r.PrevHash}, {`,"hash":"`, &r.Hash}} {
		b = append(b, h.name...)
		b = hex.AppendEncode(b, h.hash[:])
		b = append(b, '"')
	}
	return append(b, "}\n"...)
}

// appendString appends s as a JSON string, escaping as encoding/json does without HTML escaping
// (invalid UTF-8 becomes U+FFFD).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

func (w *jsonlWriter) endStream() error { return nil }

func (w *jsonlWriter) close() error {
	err := w.buf.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// CSVName is the CSV file: one row per record, with the fields people filter on.
const CSVName = "records.csv"

var csvHeader = []string{"time_utc", "stream", "seq", "kind", "chat_id", "actor", "direction", "employee", "contact",
	"msg_type", "text", "template", "reason", "errcode", "media_sha256", "media_name", "hash"}

type csvWriter struct {
	f   *os.File
	buf *bufio.Writer
	w   *csv.Writer
}

func newCSVWriter(dir string) (*csvWriter, error) {
	f, err := os.OpenFile(filepath.Join(dir, CSVName), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640) // #nosec G302 G304 -- a new file in the export folder (0750), read by the compliance group
	if err != nil {
		return nil, err
	}
	w := &csvWriter{f: f, buf: bufio.NewWriterSize(f, 1<<20)}
	w.w = csv.NewWriter(w.buf)
	return w, w.w.Write(csvHeader)
}

func (w *csvWriter) add(r *rec) error {
	errcode := ""
	if r.meta.ErrCode != 0 {
		errcode = strconv.Itoa(r.meta.ErrCode)
	}
	chat := ""
	if r.ChatID != 0 {
		chat = strconv.FormatInt(r.ChatID, 10)
	}
	return w.w.Write([]string{r.At.UTC().Format(time.RFC3339Nano), r.Stream, strconv.FormatInt(r.Seq, 10), string(r.Kind), chat, r.Actor,
		r.meta.Direction, r.meta.Employee, r.meta.Contact, r.meta.MsgType, csvSafe(r.content.Text), r.meta.Template, r.meta.Reason, errcode,
		r.meta.MediaSHA256, csvSafe(r.meta.MediaName), r.Hash.String()})
}

// csvSafe keeps a spreadsheet from running a cell as a formula (CSV injection): text starting
// with =, +, - or @ gets a leading apostrophe. The canonical text is in records.jsonl.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func (w *csvWriter) endStream() error { return nil }

func (w *csvWriter) close() error {
	w.w.Flush()
	err := w.w.Error()
	if ferr := w.buf.Flush(); err == nil {
		err = ferr
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// conversation is one chat's records on one UTC day: an EML message, an Actiance conversation.
type conversation struct {
	stream string
	chatID int64
	day    time.Time
	recs   []*rec
	// present at the start of the day, in order of first appearance
	atStart []string
	// everyone who took part during the day, in order of first appearance ("employee:id", "contact:id")
	parts []string
}

// grouper cuts a chat stream's records into conversations, keeping who is in the chat.
type grouper struct {
	stream  string
	members []string // current participants, in order of appearance
	days    []*conversation
}

func (g *grouper) add(r *rec) {
	if !strings.HasPrefix(r.Stream, "chat:") {
		return
	}
	if g.stream != r.Stream {
		g.stream, g.members, g.days = r.Stream, nil, nil
	}
	day := r.At.UTC().Truncate(24 * time.Hour)
	var c *conversation
	if n := len(g.days); n > 0 && g.days[n-1].day.Equal(day) {
		c = g.days[n-1]
	} else {
		c = &conversation{stream: r.Stream, chatID: r.ChatID, day: day, atStart: append([]string(nil), g.members...)}
		c.parts = append(c.parts, g.members...)
		g.days = append(g.days, c)
	}
	join := func(p string) {
		if !contains(g.members, p) {
			g.members = append(g.members, p)
		}
		if !contains(c.parts, p) {
			c.parts = append(c.parts, p)
		}
	}
	if r.meta.Contact != "" {
		join("contact:" + r.meta.Contact)
	}
	if r.meta.Employee != "" {
		join("employee:" + r.meta.Employee)
	}
	for _, e := range r.meta.Added {
		join("employee:" + e)
	}
	for _, e := range r.meta.Removed {
		if i := indexOf(g.members, "employee:"+e); i >= 0 {
			g.members = append(g.members[:i], g.members[i+1:]...)
		}
	}
	c.recs = append(c.recs, r)
}

// take returns the stream's conversations and forgets them.
func (g *grouper) take() []*conversation {
	out := g.days
	g.stream, g.members, g.days = "", nil, nil
	return out
}

func contains(list []string, s string) bool { return indexOf(list, s) >= 0 }

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// sender is who a record comes from, as "employee:id", "contact:id", or "" for wxteams itself.
func sender(r *rec) string {
	switch {
	case r.Kind == compliance.KindCustomerMessage || r.Kind == compliance.KindLeave:
		return "contact:" + r.meta.Contact
	case r.Kind == compliance.KindEmployeeMessage || r.Kind == compliance.KindEmployeeEdit || r.Kind == compliance.KindEmployeeDelete:
		return "employee:" + r.meta.Employee
	}
	return ""
}

// describe is how an event that is not a message reads in a transcript.
func describe(r *rec) string {
	var b strings.Builder
	b.WriteString("[" + string(r.Kind))
	for _, kv := range [][2]string{{"message", r.meta.MessageID}, {"reason", r.meta.Reason}, {"from", r.meta.From}, {"to", r.meta.To},
		{"template", r.meta.Template}, {"scene", r.meta.Scene}, {"added", strings.Join(r.meta.Added, ",")}, {"removed", strings.Join(r.meta.Removed, ",")}} {
		if kv[1] != "" {
			b.WriteString(" " + kv[0] + "=" + kv[1])
		}
	}
	if r.meta.ErrCode != 0 {
		b.WriteString(" errcode=" + strconv.Itoa(r.meta.ErrCode))
	}
	b.WriteString("]")
	return b.String()
}

// isMessage says whether a record is something a person wrote or was shown.
func isMessage(r *rec) bool {
	switch r.Kind {
	case compliance.KindCustomerMessage, compliance.KindEmployeeMessage, compliance.KindAutoMessage,
		compliance.KindEmployeeEdit, compliance.KindEmployeeDelete, compliance.KindLeave:
		return true
	}
	return false
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
