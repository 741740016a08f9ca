package bot

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

	"github.com/wxteams/wxteams/bridge"
)

// The administrators' API: enable and disable WeChat per user, list users, get a user's QR code.
// Callers present an Entra ID access token carrying the app role WeChat.Admin.

// AdminRole is the app role administrators need.
const AdminRole = "WeChat.Admin"

// Installer installs the Teams app for a user through Microsoft Graph, so the bot can message them
// first (bot/graph implements it). A repeat install (409) counts as installed. It returns the
// installation's chat id when Graph gives it.
type Installer interface {
	InstallApp(ctx context.Context, userID string) (chatID string, err error)
}

// Directory finds the tenant's users in Entra ID through Microsoft Graph (bot/graph implements it),
// so administrators can name an employee by e-mail address (user principal name).
type Directory interface {
	LookupUser(ctx context.Context, idOrUPN string) (DirectoryUser, error)
}

// DirectoryUser is a user as Entra ID knows them.
type DirectoryUser struct {
	ID    string // the object id, a GUID
	Name  string // display name
	Email string // mail, else the user principal name
}

// ErrNoSuchUser: the directory has no user by that id or address.
var ErrNoSuchUser = errors.New("no such user in the directory")

// unknownUser is ErrNoSuchUser naming the address asked for.
type unknownUser string

func (u unknownUser) Error() string        { return "Entra ID has no user " + string(u) }
func (u unknownUser) Is(target error) bool { return target == ErrNoSuchUser }

// AdminBridge is what the admin API asks of the bridge (bridge.Engine).
type AdminBridge interface {
	EnableEmployee(ctx context.Context, p bridge.EmployeeProfile, actor string) (*bridge.Employee, error)
	DisableEmployee(ctx context.Context, id bridge.EmployeeID, actor string) error
	Employees(ctx context.Context) ([]*bridge.Employee, error)
	Employee(ctx context.Context, id bridge.EmployeeID) (*bridge.Employee, error)
	RegisterTeamsUser(ctx context.Context, u bridge.TeamsUser) (*bridge.Employee, error)
	Chats(ctx context.Context, emp bridge.EmployeeID) ([]bridge.ChatSummary, error)
	ChangeMembers(ctx context.Context, in bridge.MembersChange) error
}

// Admin serves /admin/v1.
type Admin struct {
	validator *Validator
	bridge    AdminBridge
	installer Installer // nil: apps are installed by hand
	qr        QRSource  // nil: no WeChat configured
	directory Directory // nil: employees are named by object id only
	proactive string    // serviceUrl for conversations Graph reports
	log       *zap.Logger
}

// NewAdmin returns the admin API. installer and qr may be nil.
func NewAdmin(v *Validator, b AdminBridge, installer Installer, qr QRSource, log *zap.Logger) *Admin {
	if log == nil {
		log = zap.NewNop()
	}
	return &Admin{validator: v, bridge: b, installer: installer, qr: qr, proactive: ProactiveServiceURL, log: log}
}

// Routes adds the API to r.
func (a *Admin) Routes(r *mux.Router) {
	s := r.PathPrefix("/admin/v1").Subrouter()
	s.HandleFunc("/users", a.authorized(a.list)).Methods(http.MethodGet)
	s.HandleFunc("/users/{id}/wechat", a.authorized(a.enable)).Methods(http.MethodPut)
	s.HandleFunc("/users/{id}/wechat", a.authorized(a.disable)).Methods(http.MethodDelete)
	s.HandleFunc("/users/{id}/qr", a.authorized(a.qrCode)).Methods(http.MethodGet)
	s.HandleFunc("/users/{id}/chats", a.authorized(a.chats)).Methods(http.MethodGet)
	s.HandleFunc("/chats/{chat:[0-9]+}/members/{employee}", a.authorized(a.addMember)).Methods(http.MethodPut)
	s.HandleFunc("/chats/{chat:[0-9]+}/members/{employee}", a.authorized(a.removeMember)).Methods(http.MethodDelete)
}

type adminHandler func(w http.ResponseWriter, r *http.Request, actor string)

// authorized checks the bearer token and the WeChat.Admin role; the actor recorded is who it names.
func (a *Admin) authorized(h adminHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		actor, status, err := a.validator.Authorize(r, AdminRole, "admin:")
		if err != nil {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			}
			writeError(w, status, err.Error())
			return
		}
		h(w, r, actor)
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeBody(w, status, map[string]string{"error": msg})
}

func writeBody(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// User is an employee as the admin API shows them.
type User struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email,omitempty"`
	Tenant    string    `json:"tenant,omitempty"`
	WeChat    bool      `json:"wechat_enabled"`
	Scene     string    `json:"qr_scene,omitempty"`
	Reachable bool      `json:"teams_reachable"`
	Installed bool      `json:"teams_installed"`
	UpdatedAt time.Time `json:"updated_at"`
}

// UserOf is how the admin API shows an employee.
func UserOf(e *bridge.Employee) User {
	return User{ID: string(e.ID), Name: e.Name, Email: e.Email, Tenant: e.Tenant, WeChat: e.Enabled, Scene: e.Scene,
		Reachable: e.Reachable, Installed: e.Teams.ConversationID != "", UpdatedAt: e.UpdatedAt}
}

func (a *Admin) list(w http.ResponseWriter, r *http.Request, _ string) {
	emps, err := a.bridge.Employees(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "users cannot be listed: the database did not answer")
		return
	}
	users := make([]User, 0, len(emps))
	for _, e := range emps {
		users = append(users, UserOf(e))
	}
	writeBody(w, http.StatusOK, map[string]any{"users": users})
}

// EnableResult is the answer to enabling a user.
type EnableResult struct {
	User         User   `json:"user"`
	Installed    bool   `json:"teams_app_installed"`
	InstallError string `json:"install_error,omitempty"`
	QR           string `json:"qr,omitempty"` // where the QR code image is
}

// ErrInvalidUserID refuses a user id that cannot be an Entra ID object id or user principal name.
var ErrInvalidUserID = errors.New("the user must be named by their Entra ID object id or their e-mail address (user principal name)")

// ErrNoDirectory refuses an e-mail address where no directory is configured to look it up.
var ErrNoDirectory = errors.New("an employee can be enabled by e-mail address only where wxteams reaches Microsoft Graph (the bot's credential); use their Entra ID object id")

// IsAddress reports whether a user id is an e-mail address (user principal name), to be looked up.
func IsAddress(id string) bool { return strings.Contains(id, "@") }

// ValidUserID reports whether id can be an Entra object id (a GUID) or a user principal name.
func ValidUserID(id string) bool {
	return id != "" && len(id) <= 128 && !strings.ContainsAny(id, " /\\?#")
}

func (a *Admin) enable(w http.ResponseWriter, r *http.Request, actor string) {
	id := mux.Vars(r)["id"]
	if !ValidUserID(id) {
		writeError(w, http.StatusBadRequest, ErrInvalidUserID.Error())
		return
	}
	var body struct {
		Name   string `json:"name"`
		Email  string `json:"email"`
		Tenant string `json:"tenant"`
	}
	if data, _ := io.ReadAll(io.LimitReader(r.Body, 16<<10)); len(strings.TrimSpace(string(data))) > 0 {
		if err := json.Unmarshal(data, &body); err != nil {
			writeError(w, http.StatusBadRequest, "the body must be JSON: {\"name\", \"email\", \"tenant\"} (all optional)")
			return
		}
	}
	res, err := a.Enable(r.Context(), bridge.EmployeeProfile{ID: bridge.EmployeeID(id), Name: body.Name, Email: body.Email, Tenant: body.Tenant}, actor)
	switch {
	case errors.Is(err, ErrNoSuchUser):
		writeError(w, http.StatusNotFound, "not enabled: "+err.Error())
		return
	case errors.Is(err, ErrNoDirectory), errors.Is(err, ErrInvalidUserID):
		writeError(w, http.StatusBadRequest, "not enabled: "+err.Error())
		return
	case errors.Is(err, errDirectoryDown):
		writeError(w, http.StatusBadGateway, "not enabled: "+err.Error())
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "not enabled: "+err.Error())
		return
	}
	if a.qr != nil {
		res.QR = "/admin/v1/users/" + res.User.ID + "/qr"
	}
	writeBody(w, http.StatusOK, res)
}

// Enable enables WeChat for an employee and, with an installer, installs the Teams app for them so
// the bot can write first. Only enabling can fail the call: a failed install is reported in the
// result (the employee can still add the app by hand, and Teams then tells the bot).
//
// An employee named by e-mail address (user principal name) is looked up in the directory and
// enabled by their object id, with the directory's name and address unless others are given.
func (a *Admin) Enable(ctx context.Context, p bridge.EmployeeProfile, actor string) (EnableResult, error) {
	if !ValidUserID(string(p.ID)) {
		return EnableResult{}, ErrInvalidUserID
	}
	if IsAddress(string(p.ID)) {
		if a.directory == nil {
			return EnableResult{}, ErrNoDirectory
		}
		u, err := a.directory.LookupUser(ctx, string(p.ID))
		if errors.Is(err, ErrNoSuchUser) {
			return EnableResult{}, unknownUser(p.ID)
		}
		if err != nil {
			return EnableResult{}, fmt.Errorf("%w: %v", errDirectoryDown, err)
		}
		p.ID, p.Name, p.Email = bridge.EmployeeID(u.ID), firstNonEmpty(p.Name, u.Name), firstNonEmpty(p.Email, u.Email)
	}
	emp, err := a.bridge.EnableEmployee(ctx, p, actor)
	if err != nil {
		return EnableResult{}, err
	}
	res := EnableResult{User: UserOf(emp)}
	if a.installer == nil {
		return res, nil
	}
	chatID, err := a.installer.InstallApp(ctx, string(p.ID))
	if err != nil {
		res.InstallError = err.Error()
		a.log.Warn("Teams app install through Graph failed", zap.String("employee", string(p.ID)), zap.Error(err))
		return res, nil
	}
	res.Installed = true
	if emp, _ = a.bridge.Employee(ctx, p.ID); emp != nil && emp.Teams.ConversationID == "" && chatID != "" {
		// Teams tells the bot through conversationUpdate; if that has not come yet, the chat Graph
		// reports is enough to message the employee first.
		emp, _ = a.bridge.RegisterTeamsUser(ctx, bridge.TeamsUser{ID: emp.ID, Tenant: emp.Tenant,
			Address: bridge.TeamsAddress{ServiceURL: a.proactive, ConversationID: chatID}})
	}
	if emp != nil {
		res.User = UserOf(emp)
	}
	return res, nil
}

// errDirectoryDown: the directory did not answer (the error says how, in our words).
var errDirectoryDown = errors.New("the user could not be looked up in Microsoft Graph")

// SetDirectory lets administrators enable employees by e-mail address, looked up in Entra ID.
func (a *Admin) SetDirectory(d Directory) { a.directory = d }

// SetProactiveServiceURL sets the serviceUrl recorded for chats Graph reports [ProactiveServiceURL];
// sovereign clouds have their own.
func (a *Admin) SetProactiveServiceURL(u string) {
	if u != "" {
		a.proactive = u
	}
}

func (a *Admin) disable(w http.ResponseWriter, r *http.Request, actor string) {
	id := mux.Vars(r)["id"]
	err := a.bridge.DisableEmployee(r.Context(), bridge.EmployeeID(id), actor)
	switch {
	case errors.Is(err, bridge.ErrUnknownEmployee):
		writeError(w, http.StatusNotFound, "no such user")
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "not disabled: "+err.Error())
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *Admin) qrCode(w http.ResponseWriter, r *http.Request, _ string) {
	emp, err := a.bridge.Employee(r.Context(), bridge.EmployeeID(mux.Vars(r)["id"]))
	switch {
	case errors.Is(err, bridge.ErrUnknownEmployee):
		writeError(w, http.StatusNotFound, "no such user")
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	case !emp.Enabled || emp.Scene == "":
		writeError(w, http.StatusConflict, "WeChat is not enabled for this user")
		return
	case a.qr == nil:
		writeError(w, http.StatusNotImplemented, "WeChat is not configured")
		return
	}
	png, err := a.qr.QRCode(r.Context(), emp.Scene)
	if err != nil {
		writeError(w, http.StatusBadGateway, "WeChat did not make the QR code: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "private, max-age=3600")
	_, _ = w.Write(png) // #nosec G705 -- image/png, made here
}

// Chat is a chat as the admin API shows it: its customer, state and members.
type Chat struct {
	ID            int64     `json:"id"`
	Contact       string    `json:"contact"`
	ContactName   string    `json:"contact_name"`
	Status        string    `json:"status"`
	LastInboundAt time.Time `json:"last_inbound_at,omitzero"`
	Queued        int       `json:"queued"`
	Members       []User    `json:"members"`
}

func (a *Admin) chats(w http.ResponseWriter, r *http.Request, _ string) {
	id := bridge.EmployeeID(mux.Vars(r)["id"])
	if _, err := a.bridge.Employee(r.Context(), id); errors.Is(err, bridge.ErrUnknownEmployee) {
		writeError(w, http.StatusNotFound, "no such user")
		return
	} else if err != nil {
		writeError(w, http.StatusServiceUnavailable, "chats cannot be listed: the database did not answer")
		return
	}
	sums, err := a.bridge.Chats(r.Context(), id)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "chats cannot be listed: the database did not answer")
		return
	}
	emps, err := a.bridge.Employees(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "chats cannot be listed: the database did not answer")
		return
	}
	byID := make(map[bridge.EmployeeID]*bridge.Employee, len(emps))
	for _, e := range emps {
		byID[e.ID] = e
	}
	out := make([]Chat, 0, len(sums))
	for _, c := range sums {
		chat := Chat{ID: int64(c.Chat), Contact: string(c.Contact), ContactName: c.ContactName, Status: string(c.Status),
			LastInboundAt: c.LastInboundAt, Queued: c.QueueLen, Members: []User{}}
		for _, m := range c.Members {
			if e := byID[m]; e != nil {
				chat.Members = append(chat.Members, UserOf(e))
			} else {
				chat.Members = append(chat.Members, User{ID: string(m)})
			}
		}
		out = append(out, chat)
	}
	writeBody(w, http.StatusOK, map[string]any{"chats": out})
}

func (a *Admin) addMember(w http.ResponseWriter, r *http.Request, actor string) {
	a.changeMember(w, r, actor, true)
}

func (a *Admin) removeMember(w http.ResponseWriter, r *http.Request, actor string) {
	a.changeMember(w, r, actor, false)
}

// changeMember adds an employee to a chat or removes them (a team chat); the engine archives the
// change with the administrator and tells everyone concerned.
func (a *Admin) changeMember(w http.ResponseWriter, r *http.Request, actor string, add bool) {
	chat, err := strconv.ParseInt(mux.Vars(r)["chat"], 10, 64)
	emp := bridge.EmployeeID(mux.Vars(r)["employee"])
	if err != nil || !ValidUserID(string(emp)) {
		writeError(w, http.StatusBadRequest, "the path must be /admin/v1/chats/{chat number}/members/{Entra ID object id}")
		return
	}
	change := bridge.MembersChange{Chat: bridge.ChatID(chat), Actor: actor, ActorName: "an administrator"}
	if add {
		change.Add = []bridge.EmployeeID{emp}
	} else {
		change.Remove = []bridge.EmployeeID{emp}
	}
	err = a.bridge.ChangeMembers(r.Context(), change)
	switch {
	case errors.Is(err, bridge.ErrUnknownChat):
		writeError(w, http.StatusNotFound, "no such chat")
	case errors.Is(err, bridge.ErrUnknownEmployee):
		writeError(w, http.StatusNotFound, "no such user")
	case errors.Is(err, bridge.ErrInvalid):
		writeError(w, http.StatusConflict, invalidReason(err))
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "members not changed: the database did not answer")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
