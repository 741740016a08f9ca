package main

import (
	"context"
	"fmt"
	"time"

	"github.com/wxteams/wxteams/bridge/sqlstore"
)

func runMigrate(ctx context.Context, env *environment, args []string) error {
	fs := flags(env, "migrate", "[flags]", `Bring the database schema up to date. Safe to run from several replicas at once on
PostgreSQL (they take turns). Refuses a database migrated by a newer wxteams.`)
	dbURL := fs.String("database-url", "", "sqlite:PATH or postgres://… (default WXTEAMS_DATABASE_URL or sqlite:wxteams.db)")
	if err := parse(fs, args); err != nil {
		return err
	}
	store, err := openStore(ctx, env, *dbURL)
	if err != nil {
		return err
	}
	defer store.Close()
	applied, err := store.Migrate(ctx)
	if err != nil {
		return err
	}
	have, _, err := store.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(env.stdout, "database already at schema version %d\n", have)
		return nil
	}
	fmt.Fprintf(env.stdout, "applied migrations %v; database at schema version %d\n", applied, have)
	return nil
}

func runVerify(ctx context.Context, env *environment, args []string) error {
	fs := flags(env, "verify", "[flags]", `Check the compliance archive in the database: every stream's hash chain from its start (or its
last disposal) to its head, each record's content against its hash (with WXTEAMS_ARCHIVE_KEY), that
every removal was an archived disposal, and every signed checkpoint — its signature, its root, and
that the archive still holds what it signed for. Prints the first record or checkpoint that fails
and exits 1 if there is one.`)
	dbURL := fs.String("database-url", "", "sqlite:PATH or postgres://… (default WXTEAMS_DATABASE_URL or sqlite:wxteams.db)")
	pubText := fs.String("public-key", "", "the checkpoint signing public key, base64 (default: derived from WXTEAMS_SIGNING_KEY)")
	if err := parse(fs, args); err != nil {
		return err
	}
	store, _, keys, err := openCustodyStore(ctx, env, *dbURL)
	if err != nil {
		return err
	}
	defer store.Close()
	pub := keys.public()
	if *pubText != "" {
		if pub, err = publicKeyFlag(*pubText); err != nil {
			return err
		}
	}
	n, err := store.VerifyArchive(ctx)
	if err != nil {
		return fmt.Errorf("archive NOT intact after %d good records: %w", n, err)
	}
	content := "contents checked against their hashes"
	if !store.Encrypted() {
		content = "sealed contents not checked (no WXTEAMS_ARCHIVE_KEY)"
	}
	fmt.Fprintf(env.stdout, "archive intact: %d records verified, %s\n", n, content)
	cps, latest, err := store.VerifyCheckpoints(ctx, pub)
	if err != nil {
		return fmt.Errorf("checkpoints NOT intact: %w", err)
	}
	switch {
	case cps == 0:
		fmt.Fprintln(env.stdout, "no checkpoints yet")
	case pub == nil:
		fmt.Fprintf(env.stdout, "%d checkpoints consistent with the archive; signatures NOT checked (give --public-key or WXTEAMS_SIGNING_KEY)\n", cps)
	default:
		fmt.Fprintf(env.stdout, "%d checkpoints verified with %s; latest %s: %d streams, %d records, root %s\n",
			cps, latest.KeyID, latest.At.UTC().Format(time.RFC3339), latest.Streams, latest.Records, latest.Root)
	}
	return nil
}

// openStore opens the database named by the flag, else by the configuration.
func openStore(ctx context.Context, env *environment, flagURL string) (*sqlstore.Store, error) {
	cfg, err := loadConfig(overlay(env.getenv, map[string]string{"WXTEAMS_DATABASE_URL": flagURL}))
	if err != nil {
		return nil, err
	}
	return sqlstore.Open(ctx, cfg.DatabaseURL)
}
