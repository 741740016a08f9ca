package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"

	"go.uber.org/zap"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/wechat"
)

const adminSummary = `Enable and disable WeChat for employees from the command line, with the same effect as the
admin API (/admin/v1): every change is archived with the operator ("cli:<user>@<host>") as actor.

  wxteams admin list
  wxteams admin enable [--name NAME] [--email EMAIL] [--tenant TENANT] USER-ID
  wxteams admin disable USER-ID
  wxteams admin qr [--out FILE] USER-ID

USER-ID is the employee's Entra ID object id; enable also takes their e-mail address (user
principal name), looked up in Entra ID through Microsoft Graph (the bot's credential, with
User.Read.All) and stored as the object id. With WXTEAMS_TEAMS_APP_ID set, enable also installs
the Teams app for the employee through Microsoft Graph. Messages it causes (the welcome) are sent
by the running wxteams. qr writes the PNG of the employee's WeChat QR code (WeChat must be
configured).`

func runAdmin(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fs := flags(env, "admin", "list|enable|disable|qr [flags] [USER-ID]", adminSummary)
		if err := parse(fs, args); err != nil {
			return err
		}
		return fmt.Errorf("%w: name an action: list, enable, disable or qr", errUsage)
	}
	action, args := args[0], args[1:]
	fs := flags(env, "admin "+action, "[flags] USER-ID", adminSummary)
	dbURL := fs.String("database-url", "", "sqlite:PATH or postgres://… (default WXTEAMS_DATABASE_URL)")
	var name, email, tenant, out *string
	switch action {
	case "list":
	case "enable":
		name = fs.String("name", "", "the employee's display name")
		email = fs.String("email", "", "the employee's email address")
		tenant = fs.String("tenant", "", "the employee's Entra tenant id (default WXTEAMS_BOT_TENANT_ID)")
	case "disable":
	case "qr":
		out = fs.String("out", "", "write the PNG here (default USER-ID.png)")
	default:
		return fmt.Errorf("%w: unknown action %q: want list, enable, disable or qr", errUsage, action)
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	var id bridge.EmployeeID
	switch {
	case action == "list" && len(positional) != 0:
		return fmt.Errorf("%w: list takes no arguments", errUsage)
	case action != "list" && len(positional) != 1:
		return fmt.Errorf("%w: %s takes exactly one USER-ID", errUsage, action)
	case action != "list":
		id = bridge.EmployeeID(positional[0])
	}

	a, err := openAdmin(ctx, env, *dbURL)
	if err != nil {
		return err
	}
	defer a.close()
	switch action {
	case "list":
		return a.list(ctx, env)
	case "enable":
		if *tenant == "" {
			*tenant = a.cfg.Bot.TenantID
		}
		return a.enable(ctx, env, bridge.EmployeeProfile{ID: id, Name: *name, Email: *email, Tenant: *tenant})
	case "disable":
		if err := a.engine.DisableEmployee(ctx, id, a.actor); err != nil {
			if errors.Is(err, bridge.ErrUnknownEmployee) {
				return fmt.Errorf("no employee %q", id)
			}
			return err
		}
		fmt.Fprintf(env.stdout, "WeChat disabled for %s\n", id)
		return nil
	default:
		path := *out
		if path == "" {
			path = string(id) + ".png"
		}
		return a.qr(ctx, env, id, path)
	}
}

// parseInterspersed parses flags that may come before or after the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// adminTool is the engine and channels the admin command works through.
type adminTool struct {
	cfg    *Config
	store  *sqlstore.Store
	engine *bridge.Engine
	admin  *bot.Admin // nil without the bot configured
	wechat *wechat.Client
	actor  string
}

func openAdmin(ctx context.Context, env *environment, dbURL string) (*adminTool, error) {
	cfg, err := loadConfig(overlay(env.getenv, map[string]string{"WXTEAMS_DATABASE_URL": dbURL}))
	if err != nil {
		return nil, err
	}
	keys, err := loadCustody(cfg)
	if err != nil {
		return nil, err
	}
	store, err := sqlstore.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	store.UseKeyring(keys.ring)
	a := &adminTool{cfg: cfg, store: store, actor: cliActor()}
	fail := func(err error) (*adminTool, error) {
		store.Close()
		return nil, err
	}
	if err := store.CheckSchema(ctx); err != nil {
		return fail(fmt.Errorf("%w (run `wxteams migrate` first)", err))
	}
	log := zap.NewNop()
	clk := clock.System{}
	if cfg.WeChat.AppID != "" {
		if a.wechat, err = newWeChatClient(cfg, store, clk, log); err != nil {
			return fail(err)
		}
	}
	// No senders: what the engine decides to send waits in the outbox for the running wxteams.
	if a.engine, err = bridge.NewEngine(bridge.Config{Store: store, Clock: clk, Logger: log, Policy: cfg.Policy}); err != nil {
		return fail(err)
	}
	if cfg.Bot.AppID != "" {
		teams, err := newTeamsChannel(cfg, env.getenv, env.transport, store, clk)
		if err != nil {
			return fail(err)
		}
		a.admin = teams.admin(nil, a.engine, nil, log)
	}
	return a, nil
}

func (a *adminTool) close() { a.store.Close() }

// cliActor names the operator for the archive.
func cliActor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	return "cli:" + name + "@" + host
}

func (a *adminTool) list(ctx context.Context, env *environment) error {
	emps, err := a.engine.Employees(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER-ID\tNAME\tWECHAT\tTEAMS\tUPDATED")
	for _, e := range emps {
		u := bot.UserOf(e)
		teams := "not installed"
		switch {
		case u.Installed && u.Reachable:
			teams = "reachable"
		case u.Installed:
			teams = "unreachable"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.ID, u.Name, onOff(u.WeChat), teams, u.UpdatedAt.Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

func onOff(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}

func (a *adminTool) enable(ctx context.Context, env *environment, p bridge.EmployeeProfile) error {
	if a.admin == nil {
		if !bot.ValidUserID(string(p.ID)) {
			return bot.ErrInvalidUserID
		}
		if bot.IsAddress(string(p.ID)) {
			return bot.ErrNoDirectory
		}
		if _, err := a.engine.EnableEmployee(ctx, p, a.actor); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "WeChat enabled for %s (the bot is not configured here: the employee adds the app in Teams)\n", p.ID)
		return nil
	}
	res, err := a.admin.Enable(ctx, p, a.actor)
	if err != nil {
		return err
	}
	who := res.User.ID
	if res.User.Name != "" {
		who = res.User.Name + " (" + res.User.ID + ")"
	}
	fmt.Fprintf(env.stdout, "WeChat enabled for %s\n", who)
	switch {
	case res.Installed:
		fmt.Fprintln(env.stdout, "Teams app installed for the employee; the running wxteams sends the welcome")
	case res.InstallError != "":
		fmt.Fprintf(env.stdout, "Teams app NOT installed (%s): the employee can add it in Teams\n", res.InstallError)
	default:
		fmt.Fprintln(env.stdout, "WXTEAMS_TEAMS_APP_ID is not set: the employee adds the app in Teams")
	}
	return nil
}

func (a *adminTool) qr(ctx context.Context, env *environment, id bridge.EmployeeID, path string) error {
	if a.wechat == nil {
		return errors.New("WeChat is not configured (WXTEAMS_WECHAT_*)")
	}
	emp, err := a.engine.Employee(ctx, id)
	if errors.Is(err, bridge.ErrUnknownEmployee) || err == nil && (!emp.Enabled || emp.Scene == "") {
		return fmt.Errorf("WeChat is not enabled for %q", id)
	}
	if err != nil {
		return err
	}
	png, err := a.wechat.QRCode(ctx, emp.Scene)
	if err != nil {
		return fmt.Errorf("WeChat did not make the QR code: %w", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil { // #nosec G306 G703 -- the operator's --out file; a QR code is printed on business cards
		return err
	}
	fmt.Fprintf(env.stdout, "QR code for %s written to %s\n", id, path)
	return nil
}
