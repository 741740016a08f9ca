package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/export"
	"github.com/wxteams/wxteams/compliance/transcript"
)

// Directory is the store's directory of people and chats (sqlstore.Store implements it).
type Directory interface {
	// People returns up to limit employees and customers whose name, e-mail or id contains q.
	People(ctx context.Context, q string, limit int) ([]compliance.Person, error)
	// Person returns one by id; ok is false when there is none.
	Person(ctx context.Context, kind, id string) (compliance.Person, bool, error)
	// ChatInfo returns a chat's customer, members and status; ok is false when there is none.
	ChatInfo(ctx context.Context, id int64) (compliance.ChatInfo, bool, error)
}

// unknownPerson refuses a search, export or hold that names nobody the directory knows, and
// offers the people whose name, e-mail or id matches what was typed.
type unknownPerson struct {
	msg     string
	matches []compliance.Person
}

func (e *unknownPerson) Error() string { return e.msg }

// errDirectory: the directory did not answer (the database); the caller may try again.
var errDirectory = errors.New("the directory of people did not answer; try again")

// writeRefusal answers a 400 for err, with the matching people when it names nobody known (a 503
// when the directory did not answer).
func writeRefusal(w http.ResponseWriter, err error) int {
	var u *unknownPerson
	if errors.Is(err, errDirectory) {
		return writeError(w, http.StatusServiceUnavailable, err.Error())
	}
	if errors.As(err, &u) {
		return writeJSON(w, http.StatusBadRequest, map[string]any{"error": u.msg, "matches": u.matches})
	}
	return writeError(w, http.StatusBadRequest, err.Error())
}

var kindWords = map[string]string{compliance.PersonEmployee: "employee", compliance.PersonCustomer: "customer"}

// checkPerson refuses an employee or customer id the directory does not know. Without a directory
// an employee must at least look like an Entra object id.
func (a *API) checkPerson(ctx context.Context, kind, id string) error {
	if id == "" {
		return nil
	}
	if a.cfg.People == nil {
		if kind == compliance.PersonEmployee {
			return checkEmployee(id)
		}
		return nil
	}
	if _, ok, err := a.cfg.People.Person(ctx, kind, id); err != nil {
		return errDirectory
	} else if ok {
		return nil
	}
	found, err := a.cfg.People.People(ctx, id, 10)
	if err != nil {
		return errDirectory
	}
	matches := []compliance.Person{}
	var names []string
	for _, p := range found {
		if p.Kind == kind {
			matches = append(matches, p)
			names = append(names, p.Name+" ("+p.ID+")")
		}
	}
	msg := fmt.Sprintf("no %s has the id %q", kindWords[kind], id)
	switch {
	case len(names) > 0:
		msg += "; did you mean " + strings.Join(names, ", or ") + "? Use their id"
	case kind == compliance.PersonEmployee:
		msg += ": pick the employee by name (GET /compliance/v1/people?q=…) or use their Entra object id"
	default:
		msg += ": pick the customer by name (GET /compliance/v1/people?q=…) or use their openid"
	}
	return &unknownPerson{msg: msg, matches: matches}
}

// checkHold refuses a hold whose subject matches no chat, employee or customer.
func (a *API) checkHold(ctx context.Context, h compliance.Hold) error {
	if a.cfg.People == nil || h.Validate() != nil {
		return nil // Validate's own words come from PlaceHold
	}
	switch h.Scope {
	case compliance.HoldChat:
		id, _ := strconv.ParseInt(h.Subject, 10, 64)
		_, ok, err := a.cfg.People.ChatInfo(ctx, id)
		switch {
		case err != nil:
			return errDirectory
		case !ok:
			return &unknownPerson{msg: fmt.Sprintf("there is no chat %d", id), matches: []compliance.Person{}}
		}
		return nil
	case compliance.HoldEmployee:
		return a.checkPerson(ctx, compliance.PersonEmployee, h.Subject)
	default:
		return a.checkPerson(ctx, compliance.PersonCustomer, h.Subject)
	}
}

// people: GET /people?q=&limit= — employees and customers whose name, e-mail or id contains q.
func (a *API) people(w http.ResponseWriter, r *http.Request, c *call) int {
	if a.cfg.People == nil {
		return writeError(w, http.StatusNotImplemented, "no directory of people is configured")
	}
	limit := 20
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return writeError(w, http.StatusBadRequest, "limit must be a positive number")
		}
		limit = min(n, 200)
	}
	found, err := a.cfg.People.People(r.Context(), r.URL.Query().Get("q"), limit)
	if err != nil {
		return writeError(w, http.StatusServiceUnavailable, "people cannot be listed: the database did not answer")
	}
	c.count = len(found)
	return writeJSON(w, http.StatusOK, map[string]any{"people": found})
}

// names names a transcript's people from the directory, each looked up once.
type names struct {
	ctx  context.Context
	dir  Directory
	seen map[string]string
}

func (n *names) lookup(kind, id string) string {
	key := kind + ":" + id
	if v, ok := n.seen[key]; ok {
		return v
	}
	p, ok, err := n.dir.Person(n.ctx, kind, id)
	name := ""
	if err == nil && ok {
		name = p.Name
	}
	n.seen[key] = name
	return name
}

func (n *names) Employee(id string) string { return n.lookup(compliance.PersonEmployee, id) }
func (n *names) Contact(id string) string  { return n.lookup(compliance.PersonCustomer, id) }

// Transcript is a page of a chat's transcript.
type Transcript struct {
	Chat    compliance.ChatInfo `json:"chat"`
	Entries []transcript.Entry  `json:"entries"`
	Page    int                 `json:"page"`
	Pages   int                 `json:"pages"`
	Total   int                 `json:"total"` // entries that pass the filter
	// Records are the chat's records the page shows (its entries' and their receipts'): what an
	// export of the page covers.
	Records []int64 `json:"records"`
}

// transcriptOf: GET /chats/{id}/transcript?person=&from=&to=&types=message,notice,event&page=&size=
func (a *API) transcriptOf(w http.ResponseWriter, r *http.Request, c *call) int {
	if a.cfg.People == nil {
		return writeError(w, http.StatusNotImplemented, "no directory of people is configured")
	}
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil || id <= 0 {
		return writeError(w, http.StatusBadRequest, "a chat is named by its number")
	}
	q := r.URL.Query()
	var f transcript.Filter
	if f.From, err = parseWhen(q.Get("from")); err != nil {
		return writeError(w, http.StatusBadRequest, "from: "+err.Error())
	}
	if f.To, err = parseWhen(q.Get("to")); err != nil {
		return writeError(w, http.StatusBadRequest, "to: "+err.Error())
	}
	for _, t := range strings.Split(q.Get("types"), ",") {
		switch t = strings.TrimSpace(t); t {
		case "":
		case transcript.Message, transcript.Notice, transcript.Event:
			f.Types = append(f.Types, t)
		default:
			return writeError(w, http.StatusBadRequest, fmt.Sprintf("types: %q is none of message, notice, event", t))
		}
	}
	page, size, err := pageOf(q, 1<<30)
	if err != nil {
		return writeError(w, http.StatusBadRequest, err.Error())
	}
	info, ok, err := a.cfg.People.ChatInfo(r.Context(), id)
	if err != nil {
		return writeError(w, http.StatusServiceUnavailable, "the chat cannot be read: the database did not answer")
	}
	if !ok {
		return writeError(w, http.StatusNotFound, fmt.Sprintf("there is no chat %d", id))
	}
	if person := strings.TrimSpace(q.Get("person")); person != "" {
		if !isPersonOf(info, person) {
			if err := a.checkPerson(r.Context(), compliance.PersonEmployee, person); err != nil {
				return writeRefusal(w, err)
			}
		}
		f.Person = person
	}
	var recs []*compliance.Record
	err = a.cfg.Archive.ExportSource().Scan(r.Context(), export.Scope{Chat: id}, func(rec *compliance.Record) error {
		cp := *rec
		recs = append(recs, &cp)
		return nil
	})
	if err != nil {
		return writeError(w, http.StatusServiceUnavailable, "the chat's records cannot be read")
	}
	all := f.Apply(transcript.Build(recs, &names{ctx: r.Context(), dir: a.cfg.People, seen: map[string]string{}}))
	t := Transcript{Chat: info, Page: page, Total: len(all), Pages: max((len(all)+size-1)/size, 1), Entries: []transcript.Entry{}, Records: []int64{}}
	if start := (page - 1) * size; start < len(all) {
		t.Entries = all[start:min(start+size, len(all))]
	}
	for _, e := range t.Entries {
		t.Records = append(t.Records, e.Records...)
	}
	c.count = len(t.Entries)
	return writeJSON(w, http.StatusOK, t)
}

// isPersonOf reports whether id is the chat's customer or one of its members now.
func isPersonOf(info compliance.ChatInfo, id string) bool {
	if info.Contact.ID == id {
		return true
	}
	for _, m := range info.Members {
		if m.ID == id {
			return true
		}
	}
	return false
}

// actorName names who an archived actor is: an employee's or customer's display name, "wxteams"
// for the system, else the actor as archived. seen caches lookups for one request.
func (a *API) actorName(ctx context.Context, actor string, seen map[string]string) string {
	if v, ok := seen[actor]; ok {
		return v
	}
	name := actor
	kind, id, _ := strings.Cut(actor, ":")
	switch {
	case actor == "system":
		name = "wxteams"
	case a.cfg.People != nil && (kind == "employee" || kind == "customer"):
		if p, ok, err := a.cfg.People.Person(ctx, kind, id); err == nil && ok {
			name = p.Name
		}
	}
	seen[actor] = name
	return name
}

// streamName names an archive stream: "chat 3", the person whose stream it is, or the stream.
func (a *API) streamName(ctx context.Context, stream string, seen map[string]string) string {
	kind, id, _ := strings.Cut(stream, ":")
	switch kind {
	case "chat":
		return "chat " + id
	case "contact":
		return a.actorName(ctx, "customer:"+id, seen)
	case "employee":
		return a.actorName(ctx, stream, seen)
	}
	return stream
}
