package export

import (
	"bufio"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"

	"github.com/wxteams/wxteams/compliance"
)

// Actiance (Smarsh Vantage) XML: a FileDump of conversations, one per chat per day, each with the
// participants present at its start, its messages and file transfers in order, participants
// entering and leaving, and everyone present at its end leaving. Times are Unix milliseconds (UTC).
// Media files are in media/, named by SHA-256.

// ActianceName is the XML file.
const ActianceName = "actiance.xml"

type actianceWriter struct {
	f      *os.File
	buf    *bufio.Writer
	enc    *xml.Encoder
	people *directory
	g      grouper
}

// XML elements, in the order Actiance expects them inside a Conversation.
type (
	axParticipant struct {
		XMLName          xml.Name
		LoginName        string `xml:"LoginName"`
		UserType         string `xml:"UserType"`
		DateTimeUTC      int64  `xml:"DateTimeUTC"`
		CorporateEmailID string `xml:"CorporateEmailID"`
	}
	axMessage struct {
		XMLName            xml.Name `xml:"Message"`
		MessageID          string   `xml:"MessageId"`
		LoginName          string   `xml:"LoginName"`
		UserType           string   `xml:"UserType"`
		DateTimeUTC        int64    `xml:"DateTimeUTC"`
		UpdatedType        string   `xml:"UpdatedType,omitempty"`
		UpdatedDateTimeUTC int64    `xml:"UpdatedDateTimeUTC,omitempty"`
		Content            string   `xml:"Content"`
	}
	axFileTransfer struct {
		XMLName      xml.Name
		LoginName    string `xml:"LoginName"`
		DateTimeUTC  int64  `xml:"DateTimeUTC"`
		UserFileName string `xml:"UserFileName"`
		FileName     string `xml:"FileName"`
		Status       string `xml:"Status,omitempty"`
	}
)

func newActianceWriter(dir string, people *directory) (*actianceWriter, error) {
	f, err := os.OpenFile(filepath.Join(dir, ActianceName), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640) // #nosec G302 G304 -- a new file in the export folder (0750), read by the compliance group
	if err != nil {
		return nil, err
	}
	w := &actianceWriter{f: f, buf: bufio.NewWriterSize(f, 1<<20), people: people}
	w.buf.WriteString(xml.Header)
	w.enc = xml.NewEncoder(w.buf)
	w.enc.Indent("", "  ")
	err = w.enc.EncodeToken(xml.StartElement{Name: xml.Name{Local: "FileDump"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns:xsi"}, Value: "http://www.w3.org/2001/XMLSchema-instance"}}})
	return w, err
}

func (w *actianceWriter) add(r *rec) error { w.g.add(r); return nil }

func (w *actianceWriter) login(p string) (name, userType, email string) {
	if p == "" {
		return "wxteams", "bot", "wxteams@wxteams.invalid"
	}
	kind, id, _ := strings.Cut(p, ":")
	person := w.people.person(kind, id)
	return id, "user", person.Email
}

func (w *actianceWriter) endStream() error {
	for _, c := range w.g.take() {
		if err := w.conversation(c); err != nil {
			return err
		}
	}
	return nil
}

func (w *actianceWriter) conversation(c *conversation) error {
	start := xml.StartElement{Name: xml.Name{Local: "Conversation"}, Attr: []xml.Attr{{Name: xml.Name{Local: "Perspective"}, Value: c.stream}}}
	if err := w.enc.EncodeToken(start); err != nil {
		return err
	}
	startMS, endMS := c.day.UnixMilli(), c.day.UnixMilli()+24*3600*1000-1
	simple := func(name, value string) error {
		return w.enc.EncodeElement(value, xml.StartElement{Name: xml.Name{Local: name}})
	}
	if err := simple("RoomID", c.stream); err != nil {
		return err
	}
	if err := w.enc.EncodeElement(startMS, xml.StartElement{Name: xml.Name{Local: "StartTimeUTC"}}); err != nil {
		return err
	}
	participant := func(element, p string, at int64) error {
		name, userType, email := w.login(p)
		return w.enc.Encode(axParticipant{XMLName: xml.Name{Local: element}, LoginName: name, UserType: userType, DateTimeUTC: at, CorporateEmailID: email})
	}
	present := append([]string(nil), c.atStart...)
	for _, p := range present {
		if err := participant("ParticipantEntered", p, startMS); err != nil {
			return err
		}
	}
	enter := func(p string, at int64) error {
		if contains(present, p) {
			return nil
		}
		present = append(present, p)
		return participant("ParticipantEntered", p, at)
	}
	for _, r := range c.recs {
		at := r.At.UnixMilli()
		for _, p := range []string{sender(r), prefixed("contact:", r.meta.Contact), prefixed("employee:", r.meta.Employee)} {
			if p != "" {
				if err := enter(p, at); err != nil {
					return err
				}
			}
		}
		for _, e := range r.meta.Added {
			if err := enter("employee:"+e, at); err != nil {
				return err
			}
		}
		for _, e := range r.meta.Removed {
			if i := indexOf(present, "employee:"+e); i >= 0 {
				present = append(present[:i], present[i+1:]...)
				if err := participant("ParticipantLeft", "employee:"+e, at); err != nil {
					return err
				}
			}
		}
		name, userType, _ := w.login(sender(r))
		msg := axMessage{MessageID: r.Stream + "#" + itoa(r.Seq), LoginName: name, UserType: userType, DateTimeUTC: at, Content: r.content.Text}
		switch {
		case r.Kind == compliance.KindEmployeeEdit:
			msg.UpdatedType, msg.UpdatedDateTimeUTC = "EditedNewMsg", at
		case r.Kind == compliance.KindEmployeeDelete:
			msg.UpdatedType, msg.UpdatedDateTimeUTC = "Deleted", at
		case !isMessage(r):
			msg.Content = describe(r)
		}
		if err := w.enc.Encode(msg); err != nil {
			return err
		}
		if sha := r.meta.MediaSHA256; sha != "" {
			userFile := r.meta.MediaName
			if userFile == "" {
				userFile = sha
			}
			for _, el := range []string{"FileTransferStarted", "FileTransferEnded"} {
				ft := axFileTransfer{XMLName: xml.Name{Local: el}, LoginName: name, DateTimeUTC: at, UserFileName: userFile, FileName: "media/" + sha}
				if el == "FileTransferEnded" {
					ft.Status = "Completed"
				}
				if err := w.enc.Encode(ft); err != nil {
					return err
				}
			}
		}
	}
	for _, p := range present {
		if err := participant("ParticipantLeft", p, endMS); err != nil {
			return err
		}
	}
	if err := w.enc.EncodeElement(endMS, xml.StartElement{Name: xml.Name{Local: "EndTimeUTC"}}); err != nil {
		return err
	}
	return w.enc.EncodeToken(start.End())
}

func prefixed(prefix, id string) string {
	if id == "" {
		return ""
	}
	return prefix + id
}

func (w *actianceWriter) close() error {
	err := w.enc.EncodeToken(xml.EndElement{Name: xml.Name{Local: "FileDump"}})
	if err == nil {
		err = w.enc.Flush()
	}
	if err == nil {
		_, err = w.buf.WriteString("\n")
	}
	if ferr := w.buf.Flush(); err == nil {
		err = ferr
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}
