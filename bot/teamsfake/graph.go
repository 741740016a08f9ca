package teamsfake

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
)

// GraphScope is the scope of Graph tokens.
const GraphScope = "https://graph.microsoft.com/.default"

// Graph fakes Microsoft Graph's per-user app installation (teams-bot-facts §4.1): installing the
// app sends the bot the activities Teams would, a repeated install answers 409, and the
// installation's chat can be looked up.
type Graph struct {
	Entra *Entra
	Teams *Teams
	AppID string // the Teams app's catalog id

	mu       sync.Mutex
	installs map[string]string // user → installation id
	// Requests counts install requests; Lookups, user lookups.
	Requests, Lookups int
}

// NewGraph returns a fake Graph for one Teams app.
func NewGraph(entra *Entra, teams *Teams, appID string) *Graph {
	return &Graph{Entra: entra, Teams: teams, AppID: appID, installs: map[string]string{}}
}

func graphError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func (g *Graph) authorized(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !g.Entra.Valid(tok, GraphScope) {
		graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty or invalid.")
		return false
	}
	return true
}

func (g *Graph) routes(mux *http.ServeMux) {
	// GET /users/{id | userPrincipalName}: Graph's user, or 404 with Graph's error body.
	mux.HandleFunc("GET /v1.0/users/{user}", func(w http.ResponseWriter, r *http.Request) {
		if !g.authorized(w, r) {
			return
		}
		g.mu.Lock()
		g.Lookups++
		g.mu.Unlock()
		user := r.PathValue("user")
		u, ok := g.Teams.Find(user)
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{
				"code":       "Request_ResourceNotFound",
				"message":    "Resource '" + user + "' does not exist or one of its queried reference-property objects are not present.",
				"innerError": map[string]any{"date": "2026-11-02T09:00:00", "request-id": randomHex(16), "client-request-id": randomHex(16)},
			}})
			return
		}
		out := map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
			"id": u.AADObjectID, "displayName": u.Name, "userPrincipalName": u.UPN}
		if u.UPN != "" {
			out["mail"] = u.UPN
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /v1.0/users/{user}/teamwork/installedApps", func(w http.ResponseWriter, r *http.Request) {
		if !g.authorized(w, r) {
			return
		}
		var in io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" { // kiota compresses request bodies, as Graph allows
			gz, err := gzip.NewReader(r.Body)
			if err != nil {
				graphError(w, http.StatusBadRequest, "BadRequest", "malformed gzip body")
				return
			}
			in = gz
		}
		var body map[string]any
		if err := json.NewDecoder(in).Decode(&body); err != nil {
			graphError(w, http.StatusBadRequest, "BadRequest", "malformed body")
			return
		}
		bind, _ := body["teamsApp@odata.bind"].(string)
		if bind == "" {
			graphError(w, http.StatusBadRequest, "BadRequest", "The navigation bind for teamsApp was missing in request.")
			return
		}
		if !strings.HasSuffix(bind, "/appCatalogs/teamsApps/"+g.AppID) {
			graphError(w, http.StatusNotFound, "NotFound", "The Teams app was not found in the catalog.")
			return
		}
		user := r.PathValue("user")
		g.mu.Lock()
		g.Requests++
		_, installed := g.installs[user]
		g.mu.Unlock()
		if installed {
			graphError(w, http.StatusConflict, "Conflict", "App is already installed for the user.")
			return
		}
		if _, ok := g.Teams.User(user); !ok {
			graphError(w, http.StatusNotFound, "NotFound", "The user was not found.")
			return
		}
		// Teams tells the bot, as it does after an install.
		if _, err := g.Teams.Install(r.Context(), user); err != nil {
			graphError(w, http.StatusBadGateway, "BadGateway", err.Error())
			return
		}
		g.mu.Lock()
		g.installs[user] = randomHex(32)
		g.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /v1.0/users/{user}/teamwork/installedApps", func(w http.ResponseWriter, r *http.Request) {
		if !g.authorized(w, r) {
			return
		}
		g.mu.Lock()
		id, ok := g.installs[r.PathValue("user")]
		g.mu.Unlock()
		value := []any{}
		if ok {
			value = append(value, map[string]any{"id": id, "teamsApp": map[string]any{"id": g.AppID, "externalId": g.AppID, "displayName": "wxteams"}})
		}
		writeJSON(w, http.StatusOK, map[string]any{"value": value})
	})
	mux.HandleFunc("GET /v1.0/users/{user}/teamwork/installedApps/{install}/chat", func(w http.ResponseWriter, r *http.Request) {
		if !g.authorized(w, r) {
			return
		}
		user := r.PathValue("user")
		g.mu.Lock()
		id := g.installs[user]
		g.mu.Unlock()
		u, ok := g.Teams.User(user)
		if !ok || id != r.PathValue("install") {
			graphError(w, http.StatusNotFound, "NotFound", "installation not found")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": u.ConversationID, "chatType": "oneOnOne"})
	})
}

// LookupCount is how many user lookups Graph answered.
func (g *Graph) LookupCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.Lookups
}

// Installed reports whether the app is installed for a user.
func (g *Graph) Installed(user string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.installs[user]
	return ok
}

// Handler serves Entra and Graph from one host (the fake "Microsoft cloud"); serve it over TLS.
func MicrosoftHandler(e *Entra, g *Graph) http.Handler {
	mux := http.NewServeMux()
	e.routes(mux)
	if g != nil {
		g.routes(mux)
	}
	return mux
}
