// Package api is the compliance officers' HTTP API, /compliance/v1: search the record, make and
// download exports, place and lift legal holds, verify the archive. Every call needs an Entra ID
// token carrying the app role WeChat.Compliance, and every call — allowed or not — is archived as
// an access event naming who asked what (never the message text returned). Calls without a valid
// token cost the archive a bounded amount (RefusedLimits).
//
// It imports compliance and compliance/export; the store and the token check come in as
// interfaces, wired by cmd/wxteams.
package api

import (
	"archive/zip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/export"
)

// Role is the app role compliance officers need.
const Role = "WeChat.Compliance"

// Authorizer checks a request's bearer token and role (bot.Validator implements it).
type Authorizer interface {
	Authorize(r *http.Request, role, prefix string) (actor string, status int, err error)
}

// Archive is what the API asks of the store (sqlstore.Store).
type Archive interface {
	ExportSource() export.Source
	Holds(ctx context.Context, activeOnly bool) ([]compliance.Hold, error)
	PlaceHold(ctx context.Context, h compliance.Hold, actor string, now time.Time) (compliance.Hold, error)
	LiftHold(ctx context.Context, id int64, actor, reason string, now time.Time) error
	VerifyArchive(ctx context.Context) (int64, error)
	VerifyCheckpoints(ctx context.Context, pub ed25519.PublicKey) (int, *compliance.Checkpoint, error)
	Archive(ctx context.Context, events ...compliance.Event) error
}

// ExportFunc writes and archives an export (cmd/wxteams: export.Write plus the archive event).
type ExportFunc func(ctx context.Context, dir string, scope export.Scope, actor string) (*export.Manifest, error)

// Clock is where the API gets the time, and waits to sum up refused calls (bridge.Clock).
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Config configures the API.
type Config struct {
	Auth      Authorizer
	Archive   Archive
	Export    ExportFunc
	ExportDir string            // where exports are written; a volume every replica shares
	PublicKey ed25519.PublicKey // checks checkpoints on /verify
	Clock     Clock
	Log       *zap.Logger
	// SearchLimit caps the records one search returns [1000].
	SearchLimit int
	// Refused bounds what calls without a valid token cost the archive.
	Refused RefusedLimits
	// People names employees and customers, and lets officers pick them by name (/people,
	// transcripts); with it, a search, export or hold naming nobody it knows is refused. nil: ids
	// are taken as they are.
	People Directory
	// Rules and Supervisor serve /rules and /groups (the firm's supervision rules); nil: not served.
	Rules      RuleStore
	Supervisor Supervisor
	// Completeness serves GET /completeness (nil: not available).
	Completeness CompletenessFunc
	// Reviews is the supervision review queue (/reviews); nil: those calls answer 501.
	Reviews Reviews
}

// API serves /compliance/v1.
type API struct {
	cfg      Config
	running  sync.Map // export id → started time, for exports this replica is writing
	refusals *refusals
}

// New returns the API.
func New(cfg Config) (*API, error) {
	if cfg.Auth == nil || cfg.Archive == nil || cfg.Export == nil || cfg.ExportDir == "" || cfg.Clock == nil {
		return nil, errors.New("compliance api: the authorizer, archive, exporter, export folder and clock are required")
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.SearchLimit <= 0 {
		cfg.SearchLimit = 1000
	}
	cfg.Refused.defaults()
	if err := os.MkdirAll(cfg.ExportDir, 0o750); err != nil {
		return nil, fmt.Errorf("compliance api: export folder: %w", err)
	}
	a := &API{cfg: cfg}
	a.refusals = &refusals{lim: cfg.Refused, clock: cfg.Clock, archive: func(ev compliance.Event) { a.archive(context.Background(), ev) }}
	return a, nil
}

// Close archives the summary of refused calls not archived yet; call it when the server stops.
func (a *API) Close() { a.refusals.close() }

// Routes adds the API to r.
func (a *API) Routes(r *mux.Router) {
	s := r.PathPrefix("/compliance/v1").Subrouter()
	s.HandleFunc("/records", a.handle("search", a.search)).Methods(http.MethodGet)
	s.HandleFunc("/exports", a.handle("list exports", a.listExports)).Methods(http.MethodGet)
	s.HandleFunc("/exports", a.handle("start export", a.startExport)).Methods(http.MethodPost)
	s.HandleFunc("/exports/{id}", a.handle("export status", a.exportStatus)).Methods(http.MethodGet)
	s.HandleFunc("/exports/{id}/download", a.handle("download export", a.download)).Methods(http.MethodGet)
	s.HandleFunc("/holds", a.handle("list holds", a.listHolds)).Methods(http.MethodGet)
	s.HandleFunc("/holds", a.handle("place hold", a.placeHold)).Methods(http.MethodPost)
	s.HandleFunc("/holds/{id}", a.handle("lift hold", a.liftHold)).Methods(http.MethodDelete)
	s.HandleFunc("/verify", a.handle("verify", a.verify)).Methods(http.MethodPost)
	s.HandleFunc("/people", a.handle("find people", a.people)).Methods(http.MethodGet)
	s.HandleFunc("/chats/{id}/transcript", a.handle("read transcript", a.transcriptOf)).Methods(http.MethodGet)
	a.ruleRoutes(s)
	s.HandleFunc("/completeness", a.handle("read completeness report", a.completenessOf)).Methods(http.MethodGet)
	a.reviewRoutes(s)
}

// call is one request in progress: who, and what to archive about it.
type call struct {
	actor  string
	what   string
	detail string // the query, ids — never message text
	count  int    // results returned
}

type handler func(w http.ResponseWriter, r *http.Request, c *call) int

// handle authorizes a call, runs it, and archives the access, refused or not.
func (a *API) handle(what string, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := &call{what: what, detail: r.URL.Path}
		if q := r.URL.RawQuery; q != "" {
			c.detail += "?" + q
		}
		actor, status, err := a.cfg.Auth.Authorize(r, Role, "compliance:")
		if err != nil {
			if status == http.StatusForbidden {
				// A valid token without the role: who it names is known, the call archived in full.
				c.actor = "unauthorized"
				if who := strings.TrimPrefix(actor, "compliance:"); who != "" {
					c.actor += ":" + who
				}
				a.access(r.Context(), c, status)
			} else {
				c.actor = "unauthenticated"
				a.refused(r.Context(), c, status, r.RemoteAddr)
			}
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			}
			writeError(w, status, err.Error())
			return
		}
		c.actor = actor
		status = h(w, r, c)
		a.access(r.Context(), c, status)
	}
}

// access archives a call. A call that cannot be archived is logged; it has already been answered.
func (a *API) access(ctx context.Context, c *call, status int) {
	a.archive(ctx, compliance.Event{Stream: compliance.AdminStream, At: a.cfg.Clock.Now(), Kind: compliance.KindAccess, Actor: c.actor,
		Meta: compliance.Meta{Reason: c.what, Query: c.detail, Count: c.count, ErrCode: status}})
}

func (a *API) archive(ctx context.Context, ev compliance.Event) {
	if err := a.cfg.Archive.Archive(context.WithoutCancel(ctx), ev); err != nil {
		a.cfg.Log.Error("compliance access not archived", zap.String("what", ev.Meta.Reason), zap.Error(err))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
	return status
}

func writeError(w http.ResponseWriter, status int, msg string) int {
	return writeJSON(w, status, map[string]string{"error": msg})
}

// entraObjectID is an employee id: the person's Entra ID object id, a GUID.
var entraObjectID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// checkEmployee refuses an employee that cannot be an Entra object id: a name typed there would
// match nothing, which reads as "no records".
func checkEmployee(id string) error {
	if id == "" || entraObjectID.MatchString(id) {
		return nil
	}
	return errors.New("employee must be the person's Entra ID object id, such as 7faf8ab2-3d56-4244-b585-20c8a42ed2b8 (the Users page lists them)")
}

// scopeFrom reads from, to, employee and contact from the query.
func (a *API) scopeFrom(r *http.Request) (export.Scope, error) {
	q := r.URL.Query()
	s := export.Scope{Employee: strings.TrimSpace(q.Get("employee")), Contact: strings.TrimSpace(q.Get("contact"))}
	if err := a.checkPerson(r.Context(), compliance.PersonEmployee, s.Employee); err != nil {
		return s, err
	}
	if err := a.checkPerson(r.Context(), compliance.PersonCustomer, s.Contact); err != nil {
		return s, err
	}
	var err error
	if s.From, err = parseWhen(q.Get("from")); err != nil {
		return s, fmt.Errorf("from: %v", err)
	}
	if s.To, err = parseWhen(q.Get("to")); err != nil {
		return s, fmt.Errorf("to: %v", err)
	}
	return s, s.Validate()
}

// pageOf reads page [1, at most maxPage] and size [50, at most 500] from a query.
func pageOf(q url.Values, maxPage int) (page, size int, err error) {
	page, size = 1, 50
	for _, p := range []struct {
		name string
		v    *int
		max  int
	}{{"page", &page, maxPage}, {"size", &size, 500}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return 0, 0, errors.New(p.name + " must be a positive number")
			}
			*p.v = min(n, p.max)
		}
	}
	return page, size, nil
}

func parseWhen(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither 2026-11-01 nor 2026-11-01T09:00:00Z", v)
	}
	return t.UTC(), nil
}

// Found is a record a search returns.
type Found struct {
	Stream string          `json:"stream"`
	Seq    int64           `json:"seq"`
	At     time.Time       `json:"at"`
	Kind   compliance.Kind `json:"kind"`
	Actor  string          `json:"actor"`
	// ActorName is who the actor is, by name (an employee's or customer's display name; "wxteams"
	// for the system; else the actor as archived).
	ActorName string `json:"actor_name"`
	// StreamName names the record's stream: "chat 3", or the person whose stream it is.
	StreamName string          `json:"stream_name"`
	ChatID     int64           `json:"chat_id,omitempty"`
	Meta       compliance.Meta `json:"meta"`
	Text       string          `json:"text,omitempty"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	Hash       compliance.Hash `json:"hash"`
}

// search: GET /records?employee=&contact=&from=&to=&q=&limit= — records in scope whose text
// contains q (case-insensitive), oldest first. Bodies are encrypted at rest, so the text is matched
// here, after the other criteria narrowed the records down.
func (a *API) search(w http.ResponseWriter, r *http.Request, c *call) int {
	scope, err := a.scopeFrom(r)
	if err != nil {
		return writeRefusal(w, err)
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 {
			return writeError(w, http.StatusBadRequest, "limit must be a positive number")
		}
	}
	limit = min(limit, a.cfg.SearchLimit)
	needle := strings.ToLower(r.URL.Query().Get("q"))
	found := []Found{} // an empty result is an empty list, never null
	seen := map[string]string{}
	truncated := false
	errStop := errors.New("enough")
	err = a.cfg.Archive.ExportSource().Scan(r.Context(), scope, func(rec *compliance.Record) error {
		content, err := compliance.DecodeContent(rec.Body)
		if err != nil {
			return err
		}
		if needle != "" && !strings.Contains(strings.ToLower(content.Text), needle) {
			return nil
		}
		if len(found) == limit {
			truncated = true
			return errStop
		}
		meta, _ := compliance.DecodeMeta(rec.Meta)
		found = append(found, Found{Stream: rec.Stream, Seq: rec.Seq, At: rec.At, Kind: rec.Kind, Actor: rec.Actor, ActorName: a.actorName(r.Context(), rec.Actor, seen), StreamName: a.streamName(r.Context(), rec.Stream, seen),
			ChatID: rec.ChatID, Meta: meta, Text: content.Text, Payload: content.Payload, Hash: rec.Hash})
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return writeError(w, http.StatusServiceUnavailable, "search failed: "+err.Error())
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].At.Before(found[j].At) })
	c.count = len(found)
	return writeJSON(w, http.StatusOK, map[string]any{"records": found, "truncated": truncated})
}

// ExportStatus describes an export made through the API.
type ExportStatus struct {
	ID       string           `json:"id"`
	State    string           `json:"state"` // running, done, failed
	Started  time.Time        `json:"started,omitzero"`
	Error    string           `json:"error,omitempty"`
	Manifest *export.Manifest `json:"manifest,omitempty"`
	// Records and Formats are the manifest's, once the export is done (the list leaves the
	// manifest out).
	Records  *int     `json:"records,omitempty"`
	Formats  []string `json:"formats,omitempty"`
	Download string   `json:"download,omitempty"`
}

var exportID = regexp.MustCompile(`^x-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$`)

// startExport: POST /exports {"from","to","employee","contact","chat","records","formats"} — 202
// with the export's id; it is written in the background (GET /exports/{id} says when it is done).
// chat and records export what a transcript page showed: those records of that chat.
func (a *API) startExport(w http.ResponseWriter, r *http.Request, c *call) int {
	var body struct {
		From     string   `json:"from"`
		To       string   `json:"to"`
		Employee string   `json:"employee"`
		Contact  string   `json:"contact"`
		Chat     int64    `json:"chat"`
		Records  []int64  `json:"records"`
		Formats  []string `json:"formats"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 256<<10)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		return writeError(w, http.StatusBadRequest, "the body must be JSON: {\"from\", \"to\", \"employee\", \"contact\", \"chat\", \"records\", \"formats\"}")
	}
	if len(body.Formats) == 0 {
		return writeError(w, http.StatusBadRequest, "choose at least one export format: "+strings.Join(export.AllFormats, ", ")+" (JSONL is always written too)")
	}
	scope := export.Scope{Employee: strings.TrimSpace(body.Employee), Contact: strings.TrimSpace(body.Contact), Chat: body.Chat, Records: body.Records,
		Formats: append([]string{export.JSONL}, without(body.Formats, export.JSONL)...)}
	err := a.checkPerson(r.Context(), compliance.PersonEmployee, scope.Employee)
	if err == nil {
		err = a.checkPerson(r.Context(), compliance.PersonCustomer, scope.Contact)
	}
	if err == nil && scope.Chat != 0 && a.cfg.People != nil {
		if _, ok, cerr := a.cfg.People.ChatInfo(r.Context(), scope.Chat); cerr != nil {
			err = errDirectory
		} else if !ok {
			err = fmt.Errorf("there is no chat %d", scope.Chat)
		}
	}
	if err == nil {
		scope.From, err = parseWhen(body.From)
	}
	if err == nil {
		scope.To, err = parseWhen(body.To)
	}
	if err == nil {
		err = scope.Validate()
	}
	if err != nil {
		return writeRefusal(w, err)
	}
	return writeJSON(w, http.StatusAccepted, a.launchExport(r.Context(), c, scope))
}

// launchExport starts an export in the background, for POST /exports and the review report.
func (a *API) launchExport(ctx context.Context, c *call, scope export.Scope) ExportStatus {
	now := a.cfg.Clock.Now().UTC()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	id := "x-" + now.Format("20060102T150405Z") + "-" + hex.EncodeToString(suffix)
	c.detail += " id=" + id
	dir := filepath.Join(a.cfg.ExportDir, id)
	a.running.Store(id, now)
	go func() {
		defer a.running.Delete(id)
		if _, err := a.cfg.Export(context.WithoutCancel(ctx), dir, scope, c.actor); err != nil {
			_ = os.RemoveAll(dir)
			_ = os.WriteFile(dir+".failed", []byte(err.Error()), 0o640) // #nosec G306 -- beside the exports, 0640 like them
			a.cfg.Log.Error("export failed", zap.String("id", id), zap.Error(err))
		}
	}()
	return ExportStatus{ID: id, State: "running", Started: now}
}

func without(list []string, s string) []string {
	var out []string
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}

// status reads an export's state from the shared folder. id matches exportID: it names a file in
// the export folder and nothing beyond it.
func (a *API) status(id string) (ExportStatus, bool) {
	st := ExportStatus{ID: id}
	if started, ok := a.running.Load(id); ok {
		st.State, st.Started = "running", started.(time.Time)
		return st, true
	}
	dir := filepath.Join(a.cfg.ExportDir, id)
	if msg, err := os.ReadFile(dir + ".failed"); err == nil { // #nosec G304 G703 -- id matches exportID
		st.State, st.Error = "failed", string(msg)
		return st, true
	}
	data, err := os.ReadFile(filepath.Join(dir, export.ManifestName))                            // #nosec G304 G703 -- id matches exportID
	if _, serr := os.Stat(filepath.Join(dir, export.SignatureName)); err != nil || serr != nil { // #nosec G703 -- id matches exportID
		if _, derr := os.Stat(dir); derr == nil { // #nosec G703 -- id matches exportID
			st.State = "running" // on another replica
			return st, true
		}
		return st, false
	}
	var m export.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		st.State, st.Error = "failed", "unreadable manifest"
		return st, true
	}
	st.State, st.Manifest, st.Download = "done", &m, "/compliance/v1/exports/"+id+"/download"
	st.Records, st.Formats = &m.Counts.Records, m.Scope.Formats
	return st, true
}

func (a *API) listExports(w http.ResponseWriter, r *http.Request, c *call) int {
	entries, err := os.ReadDir(a.cfg.ExportDir)
	if err != nil {
		return writeError(w, http.StatusServiceUnavailable, err.Error())
	}
	ids := map[string]bool{}
	for _, e := range entries {
		if id := strings.TrimSuffix(e.Name(), ".failed"); exportID.MatchString(id) {
			ids[id] = true
		}
	}
	a.running.Range(func(k, _ any) bool { ids[k.(string)] = true; return true })
	var out []ExportStatus
	for id := range ids {
		if st, ok := a.status(id); ok {
			st.Manifest = nil // the list stays small; GET /exports/{id} has it
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	c.count = len(out)
	return writeJSON(w, http.StatusOK, map[string]any{"exports": out})
}

func (a *API) exportStatus(w http.ResponseWriter, r *http.Request, c *call) int {
	id := mux.Vars(r)["id"]
	if !exportID.MatchString(id) {
		return writeError(w, http.StatusNotFound, "no such export")
	}
	st, ok := a.status(id)
	if !ok {
		return writeError(w, http.StatusNotFound, "no such export")
	}
	return writeJSON(w, http.StatusOK, st)
}

// download: GET /exports/{id}/download — the export folder as a zip: media stored as they are
// (mostly compressed already), the rest deflated.
func (a *API) download(w http.ResponseWriter, r *http.Request, c *call) int {
	id := mux.Vars(r)["id"]
	if !exportID.MatchString(id) { // before the id names a file
		return writeError(w, http.StatusNotFound, "no such export")
	}
	st, ok := a.status(id)
	switch {
	case !ok:
		return writeError(w, http.StatusNotFound, "no such export")
	case st.State != "done":
		return writeError(w, http.StatusConflict, "the export is "+st.State)
	}
	// Files are opened through the export's folder as a root: a link in it cannot reach beyond.
	root, err := os.OpenRoot(filepath.Join(a.cfg.ExportDir, id))
	if err != nil {
		return writeError(w, http.StatusServiceUnavailable, "the export cannot be read")
	}
	defer root.Close()
	files := root.FS()
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="wxteams-`+id+`.zip"`)
	w.Header().Set("Cache-Control", "no-store")
	zw := zip.NewWriter(w)
	err = fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		method := zip.Deflate
		if strings.HasPrefix(path, "media/") {
			method = zip.Store
		}
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: id + "/" + path, Method: method})
		if err != nil {
			return err
		}
		f, err := files.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(fw, f)
		return err
	})
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		a.cfg.Log.Error("export download broke off", zap.String("id", id), zap.Error(err))
		return http.StatusInternalServerError
	}
	c.count = st.Manifest.Counts.Records
	return http.StatusOK
}

func (a *API) listHolds(w http.ResponseWriter, r *http.Request, c *call) int {
	holds, err := a.cfg.Archive.Holds(r.Context(), r.URL.Query().Get("all") == "")
	if err != nil {
		return writeError(w, http.StatusServiceUnavailable, err.Error())
	}
	c.count = len(holds)
	out := make([]HoldView, len(holds))
	for i, h := range holds {
		out[i] = HoldView{Hold: h, SubjectName: a.subjectName(r.Context(), h)}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"holds": out})
}

// HoldView is a hold with its subject named: the employee's or customer's display name, or the
// chat's customer ("chat 3 with WeChat customer 1").
type HoldView struct {
	compliance.Hold
	SubjectName string `json:"subject_name,omitempty"`
}

func (a *API) subjectName(ctx context.Context, h compliance.Hold) string {
	if a.cfg.People == nil {
		return ""
	}
	switch h.Scope {
	case compliance.HoldChat:
		id, _ := strconv.ParseInt(h.Subject, 10, 64)
		if info, ok, err := a.cfg.People.ChatInfo(ctx, id); err == nil && ok {
			return "chat " + h.Subject + " with " + info.Contact.Name
		}
	case compliance.HoldEmployee, compliance.HoldContact:
		kind := compliance.PersonEmployee
		if h.Scope == compliance.HoldContact {
			kind = compliance.PersonCustomer
		}
		if p, ok, err := a.cfg.People.Person(ctx, kind, h.Subject); err == nil && ok {
			return p.Name
		}
	}
	return ""
}

// placeHold: POST /holds {"scope", "subject", "reason"}; a subject that names nobody is refused,
// with the people it may have meant.
func (a *API) placeHold(w http.ResponseWriter, r *http.Request, c *call) int {
	var h compliance.Hold
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&h); err != nil {
		return writeError(w, http.StatusBadRequest, "the body must be JSON: {\"scope\", \"subject\", \"reason\"}")
	}
	h.Subject = strings.TrimSpace(h.Subject)
	if err := a.checkHold(r.Context(), h); err != nil {
		return writeRefusal(w, err)
	}
	h, err := a.cfg.Archive.PlaceHold(r.Context(), compliance.Hold{Scope: h.Scope, Subject: h.Subject, Reason: h.Reason}, c.actor, a.cfg.Clock.Now())
	if errors.Is(err, compliance.ErrBadHold) {
		return writeError(w, http.StatusBadRequest, err.Error())
	}
	if err != nil {
		return writeError(w, http.StatusServiceUnavailable, "hold not placed: "+err.Error())
	}
	c.detail += fmt.Sprintf(" hold=%d %s:%s", h.ID, h.Scope, h.Subject)
	return writeJSON(w, http.StatusCreated, h)
}

// liftHold: DELETE /holds/{id}?reason=…
func (a *API) liftHold(w http.ResponseWriter, r *http.Request, c *call) int {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	reason := strings.TrimSpace(r.URL.Query().Get("reason"))
	if err != nil || reason == "" {
		return writeError(w, http.StatusBadRequest, "lift a hold with DELETE /compliance/v1/holds/{number}?reason=…")
	}
	err = a.cfg.Archive.LiftHold(r.Context(), id, c.actor, reason, a.cfg.Clock.Now())
	switch {
	case errors.Is(err, compliance.ErrNoHold):
		return writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		return writeError(w, http.StatusServiceUnavailable, "hold not lifted: "+err.Error())
	}
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

// verify: POST /verify — every chain, every content hash, every disposal and checkpoint.
func (a *API) verify(w http.ResponseWriter, r *http.Request, c *call) int {
	n, err := a.cfg.Archive.VerifyArchive(r.Context())
	res := map[string]any{"records": n, "intact": err == nil}
	if err != nil {
		res["problem"] = err.Error()
		return writeJSON(w, http.StatusOK, res)
	}
	cps, latest, err := a.cfg.Archive.VerifyCheckpoints(r.Context(), a.cfg.PublicKey)
	res["checkpoints"] = cps
	if err != nil {
		res["intact"], res["problem"] = false, err.Error()
	}
	if latest != nil {
		res["latest_checkpoint"] = latest
	}
	c.count = int(n)
	return writeJSON(w, http.StatusOK, res)
}
