package main

import (
	"context"
	"fmt"

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
	fs := flags(env, "verify", "[flags]", `Check every hash chain of the compliance archive in the database. Prints the first record
that was altered, removed, inserted or reordered, and exits 1 if there is one.`)
	dbURL := fs.String("database-url", "", "sqlite:PATH or postgres://… (default WXTEAMS_DATABASE_URL or sqlite:wxteams.db)")
	if err := parse(fs, args); err != nil {
		return err
	}
	store, err := openStore(ctx, env, *dbURL)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.CheckSchema(ctx); err != nil {
		return err
	}
	n, err := store.VerifyArchive(ctx)
	if err != nil {
		return fmt.Errorf("archive NOT intact after %d good records: %w", n, err)
	}
	fmt.Fprintf(env.stdout, "archive intact: %d records verified\n", n)
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
