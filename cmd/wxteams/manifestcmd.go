package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/wxteams/wxteams/manifest"
)

const manifestSummary = `Build the Teams app package to upload to your organisation's app catalog (Teams admin center →
Manage apps → Upload): manifest.json (schema ` + manifest.SchemaVersion + `) with the bot from WXTEAMS_BOT_APP_ID and
WXTEAMS_PUBLIC_URL's host as its valid domain, and the two icons. After uploading, set
WXTEAMS_TEAMS_APP_ID to the app's catalog id so enabling an employee installs it for them.`

func runManifest(ctx context.Context, env *environment, args []string) error {
	fs := flags(env, "manifest", "[flags]", manifestSummary)
	out := fs.String("out", "wxteams-teams-app.zip", "the package to write")
	id := fs.String("id", "", "the app's manifest id (default: derived from the bot's app id, the same on every build)")
	version := fs.String("version", "1.0.0", "the app's version (semver); raise it to update the app in the catalog")
	name := fs.String("name", "WeChat", "the app's short name in Teams")
	developer := fs.String("developer", "", "your firm's name as the developer (default: WXTEAMS_PUBLIC_URL's host)")
	website := fs.String("website", "", "developer website (default: WXTEAMS_PUBLIC_URL)")
	privacy := fs.String("privacy", "", "privacy statement URL (default: WXTEAMS_PUBLIC_URL/privacy)")
	terms := fs.String("terms", "", "terms of use URL (default: WXTEAMS_PUBLIC_URL/terms)")
	if err := parse(fs, args); err != nil {
		return err
	}
	// Only these two matter here; the rest of the bot's configuration is the server's business.
	botID, publicURL := strings.TrimSpace(env.getenv("WXTEAMS_BOT_APP_ID")), strings.TrimSpace(env.getenv("WXTEAMS_PUBLIC_URL"))
	if botID == "" || publicURL == "" {
		return fmt.Errorf("%w: WXTEAMS_BOT_APP_ID and WXTEAMS_PUBLIC_URL are required", errUsage)
	}
	pkg, err := manifest.Package(manifest.Config{ID: *id, BotID: botID, PublicURL: publicURL, Version: *version, Name: *name,
		Developer: *developer, Website: *website, Privacy: *privacy, Terms: *terms})
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, pkg, 0o644); err != nil { // #nosec G306 -- the Teams app package, uploaded to Teams: nothing secret
		return err
	}
	appID := *id
	if appID == "" {
		appID = manifest.DefaultID(botID)
	}
	fmt.Fprintf(env.stdout, "wrote %s (app id %s, bot %s, version %s)\n", *out, appID, botID, *version)
	return nil
}
