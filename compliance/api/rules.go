package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/supervision"
)

// This file is the firm's own rules over the API: /rules (read, write, delete, try a message) and
// /groups (the supervision groups rules can name). Every change is versioned and archived by the
// store with who made it; the engine checks messages against the new rules from the next one on.

// RuleStore keeps the firm's rules and groups (sqlstore.Store).
type RuleStore interface {
	SupervisionRules(ctx context.Context) ([]supervision.Rule, map[string][]string, error)
	RuleHistory(ctx context.Context, id string) ([]supervision.Rule, error)
	PutRule(ctx context.Context, r supervision.Rule, actor string, now time.Time) (supervision.Rule, error)
	DeleteRule(ctx context.Context, id string, version int, actor string, now time.Time) (supervision.Rule, error)
	SupervisionGroups(ctx context.Context) (map[string][]string, error)
	SetGroup(ctx context.Context, name string, employees []string, actor string, now time.Time) error
}

// Supervisor is the engine's side of the rules: the set messages are checked against now, and a
// reload after a change.
type Supervisor interface {
	Rules() *supervision.Set
	ReloadRules(ctx context.Context) error
}

func (a *API) ruleRoutes(s *mux.Router) {
	if a.cfg.Rules == nil {
		return
	}
	s.HandleFunc("/rules", a.handle("list rules", a.listRules)).Methods(http.MethodGet)
	s.HandleFunc("/rules/check", a.handle("check a message against the rules", a.checkRules)).Methods(http.MethodPost)
	s.HandleFunc("/rules/{id}", a.handle("read rule", a.getRule)).Methods(http.MethodGet)
	s.HandleFunc("/rules/{id}", a.handle("write rule", a.putRule)).Methods(http.MethodPut)
	s.HandleFunc("/rules/{id}", a.handle("delete rule", a.deleteRule)).Methods(http.MethodDelete)
	s.HandleFunc("/groups", a.handle("list supervision groups", a.listGroups)).Methods(http.MethodGet)
	s.HandleFunc("/groups/{name}", a.handle("set supervision group", a.putGroup)).Methods(http.MethodPut)
}

// listRules: GET /rules — the rules in force and the groups.
func (a *API) listRules(w http.ResponseWriter, r *http.Request, c *call) int {
	rules, groups, err := a.cfg.Rules.SupervisionRules(r.Context())
	if err != nil {
		return writeError(w, http.StatusServiceUnavailable, "rules not read: the database did not answer")
	}
	if rules == nil {
		rules = []supervision.Rule{}
	}
	c.count = len(rules)
	return writeJSON(w, http.StatusOK, map[string]any{"rules": rules, "groups": groups})
}

// getRule: GET /rules/{id} — the rule as it stands and every version before.
func (a *API) getRule(w http.ResponseWriter, r *http.Request, c *call) int {
	hist, err := a.cfg.Rules.RuleHistory(r.Context(), mux.Vars(r)["id"])
	if errors.Is(err, supervision.ErrNoRule) {
		return writeError(w, http.StatusNotFound, err.Error())
	}
	if err != nil {
		return writeError(w, http.StatusServiceUnavailable, "rule not read: the database did not answer")
	}
	c.count = len(hist)
	return writeJSON(w, http.StatusOK, map[string]any{"rule": hist[len(hist)-1], "history": hist})
}

// putRule: PUT /rules/{id} with the rule as JSON; "version" is the version edited (0 for a new rule).
func (a *API) putRule(w http.ResponseWriter, r *http.Request, c *call) int {
	var rule supervision.Rule
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rule); err != nil {
		return writeError(w, http.StatusBadRequest, "the body must be a rule as JSON (at most 1 MiB): "+jsonProblem(err))
	}
	id := mux.Vars(r)["id"]
	if rule.ID == "" {
		rule.ID = id
	}
	if rule.ID != id {
		return writeError(w, http.StatusBadRequest, fmt.Sprintf("the body names rule %q but the path %q", rule.ID, id))
	}
	rule.Deleted, rule.ChangedBy, rule.ChangedAt = false, "", time.Time{}
	if status := a.checkPeople(r, w, rule); status != 0 {
		return status
	}
	stored, err := a.cfg.Rules.PutRule(r.Context(), rule, c.actor, a.cfg.Clock.Now())
	c.detail += " version=" + strconv.Itoa(stored.Version)
	if status := a.ruleChanged(r.Context(), w, err); status != 0 {
		return status
	}
	return writeJSON(w, http.StatusOK, map[string]any{"rule": stored})
}

// deleteRule: DELETE /rules/{id}?version=N — a last version marked deleted.
func (a *API) deleteRule(w http.ResponseWriter, r *http.Request, c *call) int {
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return writeError(w, http.StatusBadRequest, "version must be the rule's current version number")
		}
		version = n
	}
	stored, err := a.cfg.Rules.DeleteRule(r.Context(), mux.Vars(r)["id"], version, c.actor, a.cfg.Clock.Now())
	if status := a.ruleChanged(r.Context(), w, err); status != 0 {
		return status
	}
	return writeJSON(w, http.StatusOK, map[string]any{"rule": stored})
}

// checkPeople refuses a rule naming an employee the directory does not know (it would cover no
// one); the store refuses unknown groups and rules that do not compile with those in force.
func (a *API) checkPeople(r *http.Request, w http.ResponseWriter, rule supervision.Rule) int {
	for _, e := range rule.Employees {
		if err := a.checkPerson(r.Context(), compliance.PersonEmployee, e); err != nil {
			return writeRefusal(w, err)
		}
	}
	return 0
}

// ruleChanged answers a failed change, or reloads the engine's rules after a good one (0).
func (a *API) ruleChanged(ctx context.Context, w http.ResponseWriter, err error) int {
	switch {
	case errors.Is(err, supervision.ErrInvalid):
		return writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, supervision.ErrStale):
		return writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, supervision.ErrNoRule):
		return writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		a.cfg.Log.Error("rule change not stored", zap.Error(err))
		return writeError(w, http.StatusServiceUnavailable, "the change was not stored: the database did not answer; try again")
	}
	if a.cfg.Supervisor != nil {
		if err := a.cfg.Supervisor.ReloadRules(ctx); err != nil {
			// Stored and archived: every replica picks it up at its next look.
			a.cfg.Log.Warn("rules changed but not reloaded here yet", zap.Error(err))
		}
	}
	return 0
}

// CheckResult is what trying a message against the rules in force finds.
type CheckResult struct {
	Action  supervision.Action  `json:"action"`
	Matches []supervision.Match `json:"matches"`
	Checked []string            `json:"checked"`
	Text    string              `json:"text"` // what would be delivered ("" when blocked)
}

// checkRules: POST /rules/check {"text", "direction", "employee"} — what the rules in force would
// do to a message. Nothing is archived but the access (never the text).
func (a *API) checkRules(w http.ResponseWriter, r *http.Request, c *call) int {
	var body struct {
		Text      string                `json:"text"`
		Direction supervision.Direction `json:"direction"`
		Employee  string                `json:"employee"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&body); err != nil {
		return writeError(w, http.StatusBadRequest, `the body must be JSON: {"text", "direction": "to_customer" or "to_employee", "employee"}`)
	}
	if body.Direction == "" {
		body.Direction = supervision.ToCustomer
	}
	if body.Direction != supervision.ToCustomer && body.Direction != supervision.ToEmployee {
		return writeError(w, http.StatusBadRequest, "direction must be to_customer or to_employee")
	}
	var set *supervision.Set
	if a.cfg.Supervisor != nil {
		set = a.cfg.Supervisor.Rules()
	}
	var employees []string
	if e := strings.TrimSpace(body.Employee); e != "" {
		employees = []string{e}
	}
	res := set.Check(body.Text, body.Direction, employees)
	out := CheckResult{Action: res.Action, Matches: res.Matches, Checked: res.Checked, Text: res.Text}
	if out.Matches == nil {
		out.Matches = []supervision.Match{}
	}
	if out.Checked == nil {
		out.Checked = []string{}
	}
	if res.Action == supervision.ActionBlock {
		out.Text = ""
	}
	c.count = len(res.Matches)
	return writeJSON(w, http.StatusOK, out)
}

// listGroups: GET /groups.
func (a *API) listGroups(w http.ResponseWriter, r *http.Request, c *call) int {
	groups, err := a.cfg.Rules.SupervisionGroups(r.Context())
	if err != nil {
		return writeError(w, http.StatusServiceUnavailable, "groups not read: the database did not answer")
	}
	c.count = len(groups)
	return writeJSON(w, http.StatusOK, map[string]any{"groups": groups})
}

// putGroup: PUT /groups/{name} {"employees": [...]} — an empty list removes the group.
func (a *API) putGroup(w http.ResponseWriter, r *http.Request, c *call) int {
	var body struct {
		Employees []string `json:"employees"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 256<<10)).Decode(&body); err != nil {
		return writeError(w, http.StatusBadRequest, `the body must be JSON: {"employees": ["<Entra object id>", …]}`)
	}
	for i, e := range body.Employees {
		body.Employees[i] = strings.TrimSpace(e)
		if err := a.checkPerson(r.Context(), compliance.PersonEmployee, body.Employees[i]); err != nil {
			return writeRefusal(w, err)
		}
	}
	name := mux.Vars(r)["name"]
	err := a.cfg.Rules.SetGroup(r.Context(), name, body.Employees, c.actor, a.cfg.Clock.Now())
	if status := a.ruleChanged(r.Context(), w, err); status != 0 {
		return status
	}
	c.count = len(body.Employees)
	return writeJSON(w, http.StatusOK, map[string]any{"group": name, "employees": body.Employees})
}

// jsonProblem says what is wrong with a JSON body without echoing it.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("not JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q must be %s", typ.Field, typ.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "not JSON"
}
