package api

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/export"
	"github.com/wxteams/wxteams/compliance/supervision"
	"github.com/wxteams/wxteams/compliance/transcript"
)

// This file is the review queue's part of the API (issue 15): officers list flagged messages and
// sampled conversations, read each with the transcript around it and its history, assign and
// decide them, set the sample percentage, and read or export the report.

// Reviews is the review queue as the store keeps it (sqlstore.Store implements it).
type Reviews interface {
	ReviewItems(ctx context.Context, f supervision.ReviewFilter) ([]supervision.ReviewItem, int, error)
	ReviewItem(ctx context.Context, id int64) (supervision.ReviewItem, error)
	// ReviewHistory returns the item's records in the supervision stream, notes opened.
	ReviewHistory(ctx context.Context, id int64) ([]compliance.Record, error)
	AssignReview(ctx context.Context, id int64, assignee, actor string, now time.Time) (supervision.ReviewItem, error)
	DecideReview(ctx context.Context, id int64, decision, note, actor string, now time.Time) (supervision.ReviewItem, error)
	ReviewReport(ctx context.Context, from, to, now time.Time) (supervision.Report, error)
	Setting(ctx context.Context, name string) (string, error)
	PutSetting(ctx context.Context, name, value, actor string, now time.Time) error
}

// reviewRoutes adds /reviews to the API's router.
func (a *API) reviewRoutes(s *mux.Router) {
	s.HandleFunc("/reviews", a.handle("list reviews", a.reviews(a.listReviews))).Methods(http.MethodGet)
	s.HandleFunc("/reviews/settings", a.handle("review settings", a.reviews(a.reviewSettings))).Methods(http.MethodGet)
	s.HandleFunc("/reviews/settings", a.handle("change review settings", a.reviews(a.putReviewSettings))).Methods(http.MethodPut)
	s.HandleFunc("/reviews/report", a.handle("review report", a.reviews(a.reviewReport))).Methods(http.MethodGet)
	s.HandleFunc("/reviews/report/export", a.handle("export review report", a.reviews(a.exportReviewReport))).Methods(http.MethodPost)
	s.HandleFunc("/reviews/{id:[0-9]+}", a.handle("read review", a.reviews(a.getReview))).Methods(http.MethodGet)
	s.HandleFunc("/reviews/{id:[0-9]+}/assign", a.handle("assign review", a.reviews(a.assignReview))).Methods(http.MethodPost)
	s.HandleFunc("/reviews/{id:[0-9]+}/decide", a.handle("decide review", a.reviews(a.decideReview))).Methods(http.MethodPost)
}

// reviews refuses the review calls when no review queue is configured.
func (a *API) reviews(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, c *call) int {
		if a.cfg.Reviews == nil {
			return writeError(w, http.StatusNotImplemented, "no review queue is configured")
		}
		return h(w, r, c)
	}
}

// ReviewView is a review item with its people named.
type ReviewView struct {
	supervision.ReviewItem
	EmployeeName  string `json:"employee_name,omitempty"`
	ContactName   string `json:"contact_name,omitempty"`
	AssigneeName  string `json:"assignee_name,omitempty"`
	DecidedByName string `json:"decided_by_name,omitempty"`
}

func (a *API) reviewView(ctx context.Context, it supervision.ReviewItem, seen map[string]string) ReviewView {
	v := ReviewView{ReviewItem: it}
	if it.Rules == nil {
		v.Rules = []string{}
	}
	if it.Employee != "" {
		v.EmployeeName = a.actorName(ctx, "employee:"+it.Employee, seen)
	}
	if it.Contact != "" {
		v.ContactName = a.actorName(ctx, "customer:"+it.Contact, seen)
	}
	v.AssigneeName, v.DecidedByName = reviewerName(it.Assignee), reviewerName(it.DecidedBy)
	return v
}

// reviewerName is how a reviewer reads: the actor without its "compliance:" or "cli:" prefix.
func reviewerName(actor string) string {
	for _, p := range []string{"compliance:", "cli:"} {
		if v, ok := strings.CutPrefix(actor, p); ok {
			return v
		}
	}
	return actor
}

var reviewStates = []string{supervision.StateOpen, supervision.StateAssigned, supervision.StateEscalated, supervision.StateClosed, "backlog"}

// listReviews: GET /reviews?state=&reason=&rule=&employee=&assignee=&from=&to=&page=&size= —
// oldest first; state "backlog" is any but closed; assignee "me" is the caller.
func (a *API) listReviews(w http.ResponseWriter, r *http.Request, c *call) int {
	q := r.URL.Query()
	f := supervision.ReviewFilter{State: q.Get("state"), Reason: q.Get("reason"), Rule: strings.TrimSpace(q.Get("rule")),
		Employee: strings.TrimSpace(q.Get("employee")), Assignee: strings.TrimSpace(q.Get("assignee"))}
	switch {
	case f.State != "" && !slices.Contains(reviewStates, f.State):
		return writeError(w, http.StatusBadRequest, fmt.Sprintf("state %q: use open, assigned, escalated, closed or backlog", f.State))
	case f.Reason != "" && f.Reason != supervision.ReasonFlag && f.Reason != supervision.ReasonSample:
		return writeError(w, http.StatusBadRequest, fmt.Sprintf("reason %q: use flag or sample", f.Reason))
	case len(f.Rule) > supervision.MaxRuleIDBytes:
		return writeError(w, http.StatusBadRequest, "rule: a rule id is at most 64 bytes")
	}
	if f.Assignee == "me" {
		f.Assignee = c.actor
	}
	if err := a.checkPerson(r.Context(), compliance.PersonEmployee, f.Employee); err != nil {
		return writeRefusal(w, err)
	}
	var err error
	if f.From, f.To, err = Window(q.Get("from"), q.Get("to")); err != nil {
		return writeError(w, http.StatusBadRequest, err.Error())
	}
	page, size, err := pageOf(q, 1<<20)
	if err != nil {
		return writeError(w, http.StatusBadRequest, err.Error())
	}
	f.Limit, f.Offset = size, (page-1)*size
	items, total, err := a.cfg.Reviews.ReviewItems(r.Context(), f)
	if err != nil {
		return writeError(w, http.StatusServiceUnavailable, "the review queue cannot be read: the database did not answer")
	}
	seen := map[string]string{}
	out := make([]ReviewView, len(items))
	for i, it := range items {
		out[i] = a.reviewView(r.Context(), it, seen)
	}
	c.count = len(out)
	return writeJSON(w, http.StatusOK, map[string]any{"items": out, "total": total, "page": page, "pages": max((total+size-1)/size, 1)})
}

// reviewItem reads the item's number and the item; it answers 404 itself when there is none.
func (a *API) reviewItem(w http.ResponseWriter, r *http.Request, c *call) (supervision.ReviewItem, int) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil || id <= 0 {
		return supervision.ReviewItem{}, writeError(w, http.StatusNotFound, "a review item is named by its number")
	}
	c.detail += " item=" + strconv.FormatInt(id, 10)
	it, err := a.cfg.Reviews.ReviewItem(r.Context(), id)
	switch {
	case errors.Is(err, supervision.ErrNoReview):
		return it, writeError(w, http.StatusNotFound, fmt.Sprintf("there is no review item %d", id))
	case err != nil:
		return it, writeError(w, http.StatusServiceUnavailable, "the review item cannot be read: the database did not answer")
	}
	return it, 0
}

// ReviewStep is one archived step of a review item: opened, assigned, decided.
type ReviewStep struct {
	Seq       int64     `json:"seq"`
	At        time.Time `json:"at"`
	Step      string    `json:"step"` // opened, assigned, decided
	Actor     string    `json:"actor"`
	ActorName string    `json:"actor_name"`
	Reason    string    `json:"reason,omitempty"`    // opened: flag or sample; decided: the decision
	From      string    `json:"from,omitempty"`      // assigned: the previous reviewer; decided: the previous state
	To        string    `json:"to,omitempty"`        // assigned: the reviewer; decided: the new state
	Rules     []string  `json:"rules,omitempty"`     // opened: the rule versions that flagged it
	Note      string    `json:"note,omitempty"`      // decided: the reviewer's note
	Selection string    `json:"selection,omitempty"` // opened by the sample: how it was drawn
	Hash      string    `json:"hash"`
}

// ReviewDetail is a review item, its history and the transcript around it.
type ReviewDetail struct {
	Item    ReviewView   `json:"item"`
	History []ReviewStep `json:"history"`
	// Transcript is the conversation around the item: the ContextEntries entries before and after
	// a flagged message (Focus marks it), or the sampled day's conversation.
	Transcript Transcript `json:"transcript"`
	Focus      string     `json:"focus,omitempty"`
}

// ContextEntries is how many transcript entries a flagged message is shown with, before and after.
const ContextEntries = 10

// maxSampleEntries bounds the transcript a sampled day shows.
const maxSampleEntries = 500

// getReview: GET /reviews/{id}
func (a *API) getReview(w http.ResponseWriter, r *http.Request, c *call) int {
	it, status := a.reviewItem(w, r, c)
	if status != 0 {
		return status
	}
	ctx := r.Context()
	seen := map[string]string{}
	d := ReviewDetail{Item: a.reviewView(ctx, it, seen), History: []ReviewStep{}, Focus: it.MessageID}
	recs, err := a.cfg.Reviews.ReviewHistory(ctx, it.ID)
	if err != nil {
		return writeError(w, http.StatusServiceUnavailable, "the item's history cannot be read: the database did not answer")
	}
	for _, rec := range recs {
		m, _ := compliance.DecodeMeta(rec.Meta)
		content, _ := compliance.DecodeContent(rec.Body)
		step := ReviewStep{Seq: rec.Seq, At: rec.At, Step: strings.TrimPrefix(string(rec.Kind), "supervision.review_"), Actor: rec.Actor,
			ActorName: a.actorName(ctx, rec.Actor, seen), Reason: m.Reason, From: m.From, To: m.To, Rules: m.Matched, Note: content.Text,
			Selection: m.Query, Hash: rec.Hash.String()}
		if step.ActorName == rec.Actor {
			step.ActorName = reviewerName(rec.Actor)
		}
		d.History = append(d.History, step)
	}
	t, err := Around(ctx, a.cfg.Archive.ExportSource(), a.cfg.People, it)
	if err != nil {
		return writeError(w, http.StatusServiceUnavailable, "the conversation cannot be read: the database did not answer")
	}
	d.Transcript = t
	c.count = len(t.Entries)
	return writeJSON(w, http.StatusOK, d)
}

// noNames names nobody: transcripts without a directory show ids.
type noNames struct{}

func (noNames) Employee(string) string { return "" }
func (noNames) Contact(string) string  { return "" }

// Around is the transcript around a review item: ContextEntries entries either side of its
// flagged message, or its sampled day's conversation. people may be nil (ids, no names).
func Around(ctx context.Context, src export.Source, people Directory, it supervision.ReviewItem) (Transcript, error) {
	t := Transcript{Page: 1, Pages: 1, Entries: []transcript.Entry{}, Records: []int64{}}
	var namer transcript.Names = noNames{}
	if people != nil {
		info, ok, err := people.ChatInfo(ctx, it.ChatID)
		if err != nil {
			return t, err
		}
		if ok {
			t.Chat = info
		}
		namer = &names{ctx: ctx, dir: people, seen: map[string]string{}}
	}
	if t.Chat.ID == 0 {
		t.Chat = compliance.ChatInfo{ID: it.ChatID, Members: []compliance.Person{}}
	}
	var recs []*compliance.Record
	err := src.Scan(ctx, export.Scope{Chat: it.ChatID}, func(rec *compliance.Record) error {
		cp := *rec
		recs = append(recs, &cp)
		return nil
	})
	if err != nil {
		return t, err
	}
	all := transcript.Build(recs, namer)
	var shown []transcript.Entry
	if it.MessageID != "" {
		at := slices.IndexFunc(all, func(e transcript.Entry) bool { return e.MessageID == it.MessageID })
		if at >= 0 {
			shown = all[max(at-ContextEntries, 0):min(at+ContextEntries+1, len(all))]
		}
	} else if day, err := time.Parse(time.DateOnly, it.Day); err == nil {
		for _, e := range all {
			if !e.At.Before(day) && e.At.Before(day.Add(24*time.Hour)) && len(shown) < maxSampleEntries {
				shown = append(shown, e)
			}
		}
	}
	t.Entries = append(t.Entries, shown...)
	t.Total = len(t.Entries)
	for _, e := range t.Entries {
		t.Records = append(t.Records, e.Records...)
	}
	return t, nil
}

// stepError answers a refused or failed step: 409 when the item's state or a concurrent change
// refused it, 404 when the item is gone, 503 otherwise.
func stepError(w http.ResponseWriter, err error) int {
	switch {
	case errors.Is(err, supervision.ErrState), errors.Is(err, supervision.ErrChanged):
		return writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, supervision.ErrNoReview):
		return writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, supervision.ErrBadStep):
		return writeError(w, http.StatusBadRequest, err.Error())
	}
	return writeError(w, http.StatusServiceUnavailable, "the step was not recorded: the database did not answer; try again")
}

// assignReview: POST /reviews/{id}/assign {"assignee"} — "me" (or nothing) is the caller; a
// reviewer named without a prefix is a compliance officer ("compliance:<name>").
func (a *API) assignReview(w http.ResponseWriter, r *http.Request, c *call) int {
	it, status := a.reviewItem(w, r, c)
	if status != 0 {
		return status
	}
	var body struct {
		Assignee string `json:"assignee"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		return writeError(w, http.StatusBadRequest, `the body must be JSON: {"assignee": "me" or the reviewer}`)
	}
	who := supervision.Reviewer(body.Assignee, c.actor)
	c.detail += " assignee=" + who
	it, err := a.cfg.Reviews.AssignReview(r.Context(), it.ID, who, c.actor, a.cfg.Clock.Now())
	if err != nil {
		return stepError(w, err)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"item": a.reviewView(r.Context(), it, map[string]string{})})
}

// decideReview: POST /reviews/{id}/decide {"decision": "no_issue|escalate|close", "note"}
func (a *API) decideReview(w http.ResponseWriter, r *http.Request, c *call) int {
	it, status := a.reviewItem(w, r, c)
	if status != 0 {
		return status
	}
	var body struct {
		Decision string `json:"decision"`
		Note     string `json:"note"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&body); err != nil {
		return writeError(w, http.StatusBadRequest, `the body must be JSON: {"decision": "no_issue", "escalate" or "close", "note": "why"}`)
	}
	c.detail += " decision=" + body.Decision // never the note: it is the record's content
	it, err := a.cfg.Reviews.DecideReview(r.Context(), it.ID, body.Decision, body.Note, c.actor, a.cfg.Clock.Now())
	if err != nil {
		return stepError(w, err)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"item": a.reviewView(r.Context(), it, map[string]string{})})
}

// ReviewSettings are the firm's review settings.
type ReviewSettings struct {
	// SamplePercent is the share of each employee's conversations of a day drawn for review
	// (0: no sample).
	SamplePercent int `json:"sample_percent"`
}

// reviewSettings: GET /reviews/settings
func (a *API) reviewSettings(w http.ResponseWriter, r *http.Request, c *call) int {
	v, err := a.cfg.Reviews.Setting(r.Context(), supervision.SettingSamplePercent)
	if err != nil {
		return writeError(w, http.StatusServiceUnavailable, "the settings cannot be read: the database did not answer")
	}
	p, err := supervision.ParsePercent(v)
	if err != nil {
		return writeError(w, http.StatusInternalServerError, "the stored "+err.Error())
	}
	return writeJSON(w, http.StatusOK, ReviewSettings{SamplePercent: p})
}

// putReviewSettings: PUT /reviews/settings {"sample_percent": 0–100}; the change is archived.
func (a *API) putReviewSettings(w http.ResponseWriter, r *http.Request, c *call) int {
	var body struct {
		SamplePercent *int `json:"sample_percent"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.SamplePercent == nil {
		return writeError(w, http.StatusBadRequest, `the body must be JSON: {"sample_percent": a whole number from 0 (no sample) to 100}`)
	}
	p := *body.SamplePercent
	if p < 0 || p > 100 {
		return writeError(w, http.StatusBadRequest, fmt.Sprintf("sample_percent %d: use a whole number from 0 (no sample) to 100", p))
	}
	c.detail += " sample_percent=" + strconv.Itoa(p)
	if err := a.cfg.Reviews.PutSetting(r.Context(), supervision.SettingSamplePercent, strconv.Itoa(p), c.actor, a.cfg.Clock.Now()); err != nil {
		return writeError(w, http.StatusServiceUnavailable, "the setting was not changed: the database did not answer; try again")
	}
	return writeJSON(w, http.StatusOK, ReviewSettings{SamplePercent: p})
}

// Window reads a report or list window from "from" and "to" (a day or an RFC 3339 time; a day "to"
// includes that day) and refuses an empty one. The review API and `wxteams review` share it.
func Window(fromV, toV string) (from, to time.Time, err error) {
	if from, err = parseWhen(fromV); err != nil {
		return from, to, fmt.Errorf("from: %v", err)
	}
	if to, err = parseWhen(toV); err != nil {
		return from, to, fmt.Errorf("to: %v", err)
	}
	if len(toV) == len(time.DateOnly) {
		to = to.Add(24 * time.Hour)
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		return from, to, errors.New("the window is empty: to must not be before from")
	}
	return from, to, nil
}

// reviewReport: GET /reviews/report?from=&to= — items opened in the window per reason, rule and
// decision with their time to review, and the backlog now by age.
func (a *API) reviewReport(w http.ResponseWriter, r *http.Request, c *call) int {
	from, to, err := Window(r.URL.Query().Get("from"), r.URL.Query().Get("to"))
	if err != nil {
		return writeError(w, http.StatusBadRequest, err.Error())
	}
	rep, err := a.cfg.Reviews.ReviewReport(r.Context(), from, to, a.cfg.Clock.Now())
	if err != nil {
		return writeError(w, http.StatusServiceUnavailable, "the report cannot be made: the database did not answer")
	}
	c.count = len(rep.Rows)
	return writeJSON(w, http.StatusOK, rep)
}

// Report files in an export.
const (
	ReportCSVName   = "review-report.csv"
	ReportJSONLName = "review-report.jsonl"
)

// ReportFile writes a report as CSV or JSONL (one row a line): the file an export carries.
func ReportFile(rep supervision.Report, format string) (export.Attachment, error) {
	var b bytes.Buffer
	switch format {
	case export.CSV:
		cw := csv.NewWriter(&b)
		_ = cw.Write(supervision.CSVHeader)
		for _, row := range rep.Rows {
			_ = cw.Write(row.CSV())
		}
		cw.Flush()
		return export.Attachment{Name: ReportCSVName, Data: b.Bytes()}, cw.Error()
	case export.JSONL:
		enc := json.NewEncoder(&b)
		for _, row := range rep.Rows {
			if err := enc.Encode(row); err != nil {
				return export.Attachment{}, err
			}
		}
		return export.Attachment{Name: ReportJSONLName, Data: b.Bytes()}, nil
	}
	return export.Attachment{}, fmt.Errorf("format %q: use csv or jsonl", format)
}

// ReportScope is the export of a review report: the supervision stream's records of the window
// (every opening, assignment and decision the report counts, chained and signed like any export)
// with the report beside them.
func ReportScope(rep supervision.Report, format string) (export.Scope, error) {
	f, err := ReportFile(rep, format)
	if err != nil {
		return export.Scope{}, err
	}
	s := export.Scope{From: rep.From, To: rep.To, Stream: compliance.SupervisionStream, Formats: []string{export.JSONL}, Files: []export.Attachment{f}}
	return s, s.Validate()
}

// exportReviewReport: POST /reviews/report/export {"format": "csv|jsonl", "from", "to"} — 202
// with the export's id, as POST /exports; GET /exports/{id} says when it is done.
func (a *API) exportReviewReport(w http.ResponseWriter, r *http.Request, c *call) int {
	var body struct {
		Format string `json:"format"`
		From   string `json:"from"`
		To     string `json:"to"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&body); err != nil {
		return writeError(w, http.StatusBadRequest, `the body must be JSON: {"format": "csv" or "jsonl", "from", "to"}`)
	}
	if body.Format != export.CSV && body.Format != export.JSONL {
		return writeError(w, http.StatusBadRequest, fmt.Sprintf("format %q: use csv or jsonl", body.Format))
	}
	from, to, err := Window(body.From, body.To)
	if err != nil {
		return writeError(w, http.StatusBadRequest, err.Error())
	}
	rep, err := a.cfg.Reviews.ReviewReport(r.Context(), from, to, a.cfg.Clock.Now())
	if err != nil {
		return writeError(w, http.StatusServiceUnavailable, "the report cannot be made: the database did not answer")
	}
	scope, err := ReportScope(rep, body.Format)
	if err != nil {
		return writeError(w, http.StatusBadRequest, err.Error())
	}
	return writeJSON(w, http.StatusAccepted, a.launchExport(r.Context(), c, scope))
}
