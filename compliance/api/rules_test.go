package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/api"
	"github.com/wxteams/wxteams/compliance/export"
	"github.com/wxteams/wxteams/compliance/supervision"
)

// rulesOf stands for the engine: the rules it compiled at its last reload.
type rulesOf struct {
	store   *sqlstore.Store
	set     *supervision.Set
	reloads int
}

func (r *rulesOf) Rules() *supervision.Set { return r.set }

func (r *rulesOf) ReloadRules(ctx context.Context) error {
	rules, groups, err := r.store.SupervisionRules(ctx)
	if err != nil {
		return err
	}
	r.set, err = supervision.Compile(rules, groups)
	r.reloads++
	return err
}

type rulesFixture struct {
	router *mux.Router
	store  *sqlstore.Store
	engine *rulesOf
}

func newRulesFixture(t *testing.T, url string) *rulesFixture {
	t.Helper()
	store := sqlstoretest.Open(t, url)
	engine := &rulesOf{store: store}
	a, err := api.New(api.Config{Auth: tokens{}, Archive: store, ExportDir: t.TempDir(), Clock: clock.NewFake(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)),
		Rules: store, Supervisor: engine,
		Export: func(context.Context, string, export.Scope, string) (*export.Manifest, error) {
			return nil, errors.New("no exports here")
		}})
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	a.Routes(r)
	return &rulesFixture{router: r, store: store, engine: engine}
}

// call sends a request as the compliance officer (or with token) and decodes the JSON answer.
func (f *rulesFixture) call(t *testing.T, method, target, body, token string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	f.router.ServeHTTP(w, req)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s answered %d with no JSON: %q", method, target, w.Code, w.Body.String())
	}
	return w.Code, out
}

const blockRule = `{"name": "Inside information", "action": "block", "directions": ["to_customer"],
	"terms": [{"text": "inside information"}], "reason": "never pass on non-public information"}`

func TestOfficersManageRulesOverTheAPI(t *testing.T) {
	sqlstoretest.EachURL(t, func(t *testing.T, url string) {
		f := newRulesFixture(t, url)

		if code, _ := f.call(t, http.MethodPut, "/compliance/v1/rules/insider", blockRule, "forged"); code != http.StatusUnauthorized {
			t.Errorf("a forged token writing a rule: %d; want 401", code)
		}
		if code, _ := f.call(t, http.MethodPut, "/compliance/v1/rules/insider", blockRule, "bob"); code != http.StatusForbidden {
			t.Errorf("a token without the role writing a rule: %d; want 403", code)
		}
		code, out := f.call(t, http.MethodPut, "/compliance/v1/rules/insider", blockRule, "cco")
		if code != http.StatusOK || out["rule"].(map[string]any)["version"] != 1.0 {
			t.Fatalf("new rule: %d %v; want version 1", code, out)
		}
		if f.engine.reloads != 1 || f.engine.set == nil || len(f.engine.set.Rules()) != 1 {
			t.Errorf("the engine reloaded %d times; want once, with the new rule", f.engine.reloads)
		}

		// What would happen to a message, before anyone sends one.
		code, out = f.call(t, http.MethodPost, "/compliance/v1/rules/check", `{"text": "I have inside information", "direction": "to_customer"}`, "cco")
		if code != http.StatusOK || out["action"] != "block" || out["text"] != "" || len(out["matches"].([]any)) != 1 {
			t.Errorf("check: %d %v; want blocked with one match", code, out)
		}
		code, out = f.call(t, http.MethodPost, "/compliance/v1/rules/check", `{"text": "I have inside information", "direction": "to_employee"}`, "cco")
		if code != http.StatusOK || out["action"] != "" || out["text"] != "I have inside information" {
			t.Errorf("check the other way: %d %v; want nothing (the rule covers messages to customers)", code, out)
		}

		// Bad rules are refused in words.
		for _, bad := range []struct{ body, want string }{
			{`{"name": "x", "action": "shout", "directions": ["to_customer"], "terms": [{"text": "a"}]}`, `action "shout": use block, redact or flag`},
			{`{"name": "x", "action": "flag", "directions": ["to_customer"], "terms": [{"text": "(", "regex": true}]}`, `pattern "("`},
			{`{"name": "x", "action": "flag", "directions": [], "terms": [{"text": "a"}]}`, `at least one direction`},
			{`{"name": "x", "action": "flag", "directions": ["to_customer"], "terms": [{"text": " - "}]}`, `nothing to match`},
			{`{"nmae": "x"}`, `unknown field "nmae"`},
			{`not json`, `not JSON`},
		} {
			code, out := f.call(t, http.MethodPut, "/compliance/v1/rules/bad", bad.body, "cco")
			if msg, _ := out["error"].(string); code != http.StatusBadRequest || !strings.Contains(msg, bad.want) {
				t.Errorf("PUT %s: %d %q; want 400 saying %q", bad.body, code, msg, bad.want)
			}
		}

		// A new rule under an id in force would replace it unawares; a group nobody made covers nobody.
		if code, out := f.call(t, http.MethodPut, "/compliance/v1/rules/insider", blockRule, "cco"); code != http.StatusConflict || !strings.Contains(out["error"].(string), "exists (version 1)") {
			t.Errorf("a second new rule insider: %d %v; want 409 saying it exists", code, out)
		}
		grouped := strings.Replace(blockRule, `"action": "block"`, `"action": "block", "groups": ["equites"]`, 1)
		if code, out := f.call(t, http.MethodPut, "/compliance/v1/rules/desk", grouped, "cco"); code != http.StatusBadRequest || !strings.Contains(out["error"].(string), `no supervision group "equites"`) {
			t.Errorf("a rule naming an unknown group: %d %v; want 400", code, out)
		}

		// Two officers edit version 1: the second is told to reload.
		edit := strings.Replace(blockRule, `"action": "block"`, `"action": "flag", "version": 1`, 1)
		if code, out := f.call(t, http.MethodPut, "/compliance/v1/rules/insider", edit, "cco"); code != http.StatusOK {
			t.Fatalf("edit: %d %v", code, out)
		}
		if code, out := f.call(t, http.MethodPut, "/compliance/v1/rules/insider", edit, "cco"); code != http.StatusConflict {
			t.Errorf("a stale edit: %d %v; want 409", code, out)
		}
		code, out = f.call(t, http.MethodGet, "/compliance/v1/rules/insider", "", "cco")
		if hist, _ := out["history"].([]any); code != http.StatusOK || len(hist) != 2 {
			t.Errorf("history: %d %v; want 2 versions", code, out)
		}
		if code, _ := f.call(t, http.MethodGet, "/compliance/v1/rules/nope", "", "cco"); code != http.StatusNotFound {
			t.Errorf("an unknown rule: %d; want 404", code)
		}
		if code, out := f.call(t, http.MethodDelete, "/compliance/v1/rules/insider?version=1", "", "cco"); code != http.StatusConflict {
			t.Errorf("deleting version 1 of a rule at version 2: %d %v; want 409", code, out)
		}
		if code, out := f.call(t, http.MethodDelete, "/compliance/v1/rules/insider?version=2", "", "cco"); code != http.StatusOK {
			t.Errorf("delete: %d %v", code, out)
		}
		code, out = f.call(t, http.MethodGet, "/compliance/v1/rules", "", "cco")
		if rules, _ := out["rules"].([]any); code != http.StatusOK || len(rules) != 0 {
			t.Errorf("rules after the delete: %d %v; want none", code, out)
		}

		// Groups.
		if code, out := f.call(t, http.MethodPut, "/compliance/v1/groups/equities", `{"employees": ["7faf8ab2-3d56-4244-b585-20c8a42ed2b8"]}`, "cco"); code != http.StatusOK {
			t.Errorf("set group: %d %v", code, out)
		}
		code, out = f.call(t, http.MethodGet, "/compliance/v1/groups", "", "cco")
		if g, _ := out["groups"].(map[string]any); code != http.StatusOK || len(g["equities"].([]any)) != 1 {
			t.Errorf("groups: %d %v", code, out)
		}

		// Every change is in the supervision stream with who made it; every call in the admin stream.
		recs, err := f.store.ArchiveStream(context.Background(), compliance.SupervisionStream)
		if err != nil {
			t.Fatal(err)
		}
		var changes []string
		for _, r := range recs {
			m, _ := compliance.DecodeMeta(r.Meta)
			changes = append(changes, string(r.Kind)+" "+m.Subject+" "+m.Version+" "+m.Reason+" "+r.Actor)
		}
		want := []string{
			"supervision.rule insider 1 created compliance:cco@acme.example",
			"supervision.rule insider 2 changed compliance:cco@acme.example",
			"supervision.rule insider 3 deleted compliance:cco@acme.example",
			"supervision.group equities   compliance:cco@acme.example",
		}
		if strings.Join(changes, "\n") != strings.Join(want, "\n") {
			t.Errorf("supervision stream:\n%s\nwant:\n%s", strings.Join(changes, "\n"), strings.Join(want, "\n"))
		}
	})
}
