package console

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
)

// The sandbox's routes: the panes, the clock and the timeline. They exist only in the sandbox.
func (c *Console) sandboxRoutes(r *mux.Router) {
	sb := c.cfg.Sandbox
	r.HandleFunc("/state", func(w http.ResponseWriter, r *http.Request) {
		st, err := sb.State(r.Context())
		reply(w, st, err)
	}).Methods(http.MethodGet)
	r.HandleFunc("/teams/{id}", func(w http.ResponseWriter, r *http.Request) {
		items, err := sb.TeamsPane(r.Context(), mux.Vars(r)["id"])
		reply(w, map[string]any{"items": orEmpty(items)}, err)
	}).Methods(http.MethodGet)
	r.HandleFunc("/teams/{id}/say", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Text string }
		if !decode(w, r, &body) {
			return
		}
		reply(w, ok, sb.TeamsSay(r.Context(), mux.Vars(r)["id"], body.Text))
	}).Methods(http.MethodPost)
	r.HandleFunc("/teams/{id}/click", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Activity string          `json:"activity"`
			Verb     string          `json:"verb"`
			Data     json.RawMessage `json:"data"`
		}
		if !decode(w, r, &body) {
			return
		}
		reply(w, ok, sb.TeamsClick(r.Context(), mux.Vars(r)["id"], body.Activity, body.Verb, body.Data))
	}).Methods(http.MethodPost)
	r.HandleFunc("/wechat", func(w http.ResponseWriter, r *http.Request) {
		id, err := sb.WeChatNew(r.Context())
		reply(w, map[string]string{"openid": id}, err)
	}).Methods(http.MethodPost)
	r.HandleFunc("/wechat/{id}", func(w http.ResponseWriter, r *http.Request) {
		items, err := sb.WeChatPane(r.Context(), mux.Vars(r)["id"])
		reply(w, map[string]any{"items": orEmpty(items)}, err)
	}).Methods(http.MethodGet)
	r.HandleFunc("/wechat/{id}/scan", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Employee string }
		if !decode(w, r, &body) {
			return
		}
		reply(w, ok, sb.WeChatScan(r.Context(), mux.Vars(r)["id"], body.Employee))
	}).Methods(http.MethodPost)
	r.HandleFunc("/wechat/{id}/say", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Text string }
		if !decode(w, r, &body) {
			return
		}
		reply(w, ok, sb.WeChatSay(r.Context(), mux.Vars(r)["id"], body.Text))
	}).Methods(http.MethodPost)
	r.HandleFunc("/clock", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Advance string }
		if !decode(w, r, &body) {
			return
		}
		d, err := time.ParseDuration(body.Advance)
		if err != nil || d <= 0 || d > 30*24*time.Hour {
			writeError(w, http.StatusBadRequest, "advance must be a positive duration up to 720h, such as 24h")
			return
		}
		reply(w, ok, sb.Advance(r.Context(), d))
	}).Methods(http.MethodPost)
	r.HandleFunc("/timeline", func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		items, err := sb.Timeline(r.Context(), after)
		reply(w, map[string]any{"items": orEmpty(items)}, err)
	}).Methods(http.MethodGet)
}

var ok = map[string]bool{"ok": true}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ErrBadRequest marks a sandbox action refused for what was asked (unknown person, empty text).
var ErrBadRequest = errors.New("bad request")

func reply(w http.ResponseWriter, v any, err error) {
	switch {
	case errors.Is(err, ErrBadRequest):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		writeError(w, http.StatusBadGateway, err.Error())
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(v); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "the body must be JSON")
		return false
	}
	return true
}
