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
	// Requests counts install requests.
	Requests int
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
