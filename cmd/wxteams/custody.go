package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/export"
)

// This file is the record's custody in the binary: the archive and signing keys, the background
// checkpoint and purge jobs, and the commands that manage keys, holds and purges.

// errNoArchiveKeys refuses to serve real traffic with message text stored in the clear.
var errNoArchiveKeys = errors.New("WXTEAMS_ARCHIVE_KEY and WXTEAMS_SIGNING_KEY are required to serve: message content is encrypted at rest and checkpoints are signed (make them with `openssl rand -base64 32`, one each, and keep them in your secret store)")

// custody is the configured keys, held here and nowhere else once loadCustody has run.
type custody struct {
	ring *compliance.Keyring
	sign ed25519.PrivateKey // nil: checkpoints are not made
	// cookie keys the console's session cookies; derived from the archive key, so that every
	// replica has the same, without being the archive key.
	cookie []byte
}

func (c *custody) public() ed25519.PublicKey {
	if c == nil || c.sign == nil {
		return nil
	}
	return c.sign.Public().(ed25519.PublicKey)
}

// loadCustody builds the keys from the configuration; nil fields mean the feature is off. It takes
// the keys out of cfg: cfg.ArchiveKey, ArchiveKeyPrevious and SigningKey are zeroed and set to nil,
// so that the raw keys live only in the keyring and the signer.
func loadCustody(cfg *Config) (*custody, error) {
	defer func() {
		for _, k := range []*[]byte{&cfg.ArchiveKey, &cfg.ArchiveKeyPrevious, &cfg.SigningKey} {
			clear(*k)
			*k = nil
		}
	}()
	c := &custody{}
	if cfg.ArchiveKey != nil {
		var previous [][]byte
		if cfg.ArchiveKeyPrevious != nil {
			previous = append(previous, cfg.ArchiveKeyPrevious)
		}
		ring, err := compliance.NewKeyring(cfg.ArchiveKey, previous...)
		if err != nil {
			return nil, fmt.Errorf("WXTEAMS_ARCHIVE_KEY: %w", err)
		}
		c.ring = ring
		sum := sha256.Sum256(append([]byte("wxteams console cookie key\x00"), cfg.ArchiveKey...))
		c.cookie = sum[:]
	}
	if cfg.SigningKey != nil {
		key, err := compliance.SigningKeyFromSeed(cfg.SigningKey)
		if err != nil {
			return nil, fmt.Errorf("WXTEAMS_SIGNING_KEY: %w", err)
		}
		c.sign = key
	}
	return c, nil
}

// sandboxKeysPath is where the sandbox keeps its keys: beside its SQLite database, else
// wxteams-sandbox.keys.json in the working folder.
func sandboxKeysPath(dbURL string) string {
	if path, ok := strings.CutPrefix(dbURL, "sqlite:"); ok && path != ":memory:" {
		return strings.TrimPrefix(path, "//") + ".keys.json"
	}
	return "wxteams-sandbox.keys.json"
}

// sandboxKeyFile is the sandbox's keys file.
type sandboxKeyFile struct {
	Note       string `json:"note"`
	ArchiveKey []byte `json:"archive_key"`
	SigningKey []byte `json:"signing_key"`
}

// sandboxKeys returns the sandbox's own archive and signing keys, kept in a file (mode 0600) at
// path, so that the sandbox encrypts and signs exactly as production does. A new file gets new
// keys, each beginning with sandboxKeyMark so that serve refuses them. A file that others than
// its owner may read, or whose keys lack the mark, is refused.
func sandboxKeys(path string) (archive, signing []byte, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- the sandbox keys file beside the operator's chosen database
	if err == nil {
		keys := sandboxKeyFile{Note: "the wxteams sandbox's keys: for the sandbox only (serve refuses them); never commit this file"}
		keys.ArchiveKey, keys.SigningKey = newSandboxKey(), newSandboxKey()
		data, _ := json.MarshalIndent(keys, "", "  ")
		_, err = f.Write(append(data, '\n'))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(path)
			return nil, nil, fmt.Errorf("sandbox keys %s: %w", path, err)
		}
		return keys.ArchiveKey, keys.SigningKey, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return nil, nil, fmt.Errorf("sandbox keys: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox keys: %w", err)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, nil, fmt.Errorf("%s holds keys and others than its owner may read or change it (mode %#o): run `chmod 600 %s`", path, perm, path)
	}
	data, err := os.ReadFile(path) // #nosec G304 -- the sandbox's key file, beside its database
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox keys: %w", err)
	}
	var keys sandboxKeyFile
	if err := json.Unmarshal(data, &keys); err != nil || len(keys.ArchiveKey) != 32 || len(keys.SigningKey) != 32 {
		return nil, nil, fmt.Errorf("%s is not a wxteams sandbox key file; move it away to start a fresh sandbox", path)
	}
	if !bytes.HasPrefix(keys.ArchiveKey, sandboxKeyMark) || !bytes.HasPrefix(keys.SigningKey, sandboxKeyMark) {
		return nil, nil, fmt.Errorf("%s holds keys an older wxteams made, which serve cannot tell from real ones; delete it and the sandbox's database (%s) to start a fresh sandbox", path, strings.TrimSuffix(path, ".keys.json"))
	}
	return keys.ArchiveKey, keys.SigningKey, nil
}

// newSandboxKey is sandboxKeyMark followed by 24 random bytes.
func newSandboxKey() []byte {
	k := make([]byte, 32)
	copy(k, sandboxKeyMark)
	_, _ = rand.Read(k[len(sandboxKeyMark):])
	return k
}

// runCustodyJobs signs a checkpoint every WXTEAMS_CHECKPOINT_EVERY, runs the export jobs that are
// due every minute, purges what retention allows every WXTEAMS_PURGE_EVERY, and removes export
// folders older than WXTEAMS_EXPORT_RETENTION every hour, until ctx ends. Every replica runs them;
// they take turns in the database.
func runCustodyJobs(ctx context.Context, store *sqlstore.Store, keys *custody, policy func() bridge.Policy, cfg *Config, clk bridge.Clock, log *zap.Logger) {
	checkpoint := time.NewTicker(cfg.CheckpointEvery)
	defer checkpoint.Stop()
	exports := time.NewTicker(time.Minute)
	defer exports.Stop()
	host, _ := os.Hostname()
	runner := &exportRunner{store: store, keys: keys, cfg: cfg, owner: fmt.Sprintf("%s/%d", host, os.Getpid()), log: log.Named("export")}
	purge := time.NewTicker(cfg.PurgeEvery)
	defer purge.Stop()
	var prune <-chan time.Time // export folders, hourly when WXTEAMS_EXPORT_RETENTION is set
	if cfg.ExportRetention > 0 {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		prune = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-prune:
			if n, err := pruneExports(ctx, store, cfg.ExportDir, cfg.ExportRetention, clk.Now()); err != nil {
				log.Error("export retention failed", zap.Error(err))
			} else if n > 0 {
				log.Info("export folders removed after WXTEAMS_EXPORT_RETENTION", zap.Int("removed", n))
			}
		case <-checkpoint.C:
			if keys.sign == nil {
				continue
			}
			cp, err := store.MakeCheckpoint(ctx, keys.sign, "system:checkpoint", clk.Now())
			if err != nil {
				log.Error("checkpoint failed", zap.Error(err))
			} else if cp != nil {
				log.Info("checkpoint signed", zap.Int64("id", cp.ID), zap.Int64("streams", cp.Streams), zap.Int64("records", cp.Records))
			}
		case <-exports.C:
			runner.runDue(ctx, clk.Now())
		case <-purge.C:
			if _, err := purgeNow(ctx, store, policy(), "system:retention", clk.Now()); err != nil {
				log.Error("retention purge failed", zap.Error(err))
			}
		}
	}
}

// exportFolder names an export of the compliance API in WXTEAMS_EXPORT_DIR (a folder, or a note
// that it failed), with the time it started.
var exportFolder = regexp.MustCompile(`^(x-([0-9]{8}T[0-9]{6}Z)-[0-9a-f]{8})(\.failed)?$`)

// pruneExports removes the compliance API's exports in dir that started more than retention before
// now, archiving each removal (actor system:export-retention) before the files go. A finished
// export goes by its start time; an unfinished one (no signature) only once nothing in it has
// changed for the retention period either. Each folder is first renamed away, so that of replicas
// pruning together only one archives and removes it. Other entries of dir are left alone.
func pruneExports(ctx context.Context, store *sqlstore.Store, dir string, retention time.Duration, now time.Time) (int, error) {
	if retention <= 0 {
		return 0, nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("export retention: %w", err)
	}
	cutoff := now.Add(-retention)
	removed := 0
	for _, e := range entries {
		m := exportFolder.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() == (m[3] != "") {
			continue
		}
		started, err := time.Parse("20060102T150405Z", m[2])
		if err != nil || !started.Before(cutoff) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if e.IsDir() && !exportFinished(path) && !unchangedSince(path, cutoff) {
			continue
		}
		gone := filepath.Join(dir, ".removing-"+e.Name())
		if err := os.Rename(path, gone); err != nil {
			continue // another replica took it, or it cannot be moved: the next run tries again
		}
		meta := compliance.Meta{Subject: m[1], Reason: "export folder older than WXTEAMS_EXPORT_RETENTION (" + retention.String() + ")"}
		if !e.IsDir() {
			meta.Reason = "failed export's note older than WXTEAMS_EXPORT_RETENTION (" + retention.String() + ")"
		} else if hash, err := export.ManifestHash(gone); err == nil {
			meta.Hash = hash
		}
		if err := archiveAdmin(ctx, store, compliance.KindExportRemoved, "system:export-retention", now, meta); err != nil {
			_ = os.Rename(gone, path)
			return removed, fmt.Errorf("export retention: %s kept: %w", e.Name(), err)
		}
		removed++
		if err := os.RemoveAll(gone); err != nil {
			return removed, fmt.Errorf("export retention: %s archived as removed, but its files remain in %s: %w", e.Name(), gone, err)
		}
	}
	return removed, nil
}

// exportFinished reports whether an export folder holds its signed manifest.
func exportFinished(path string) bool {
	_, err := os.Stat(filepath.Join(path, export.SignatureName))
	return err == nil
}

// unchangedSince reports whether nothing under path was modified at or after t.
func unchangedSince(path string, t time.Time) bool {
	unchanged := true
	_ = filepath.WalkDir(path, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			unchanged = false
			return filepath.SkipAll
		}
		if fi, err := d.Info(); err != nil || !fi.ModTime().Before(t) {
			unchanged = false
			return filepath.SkipAll
		}
		return nil
	})
	return unchanged
}

// purgeNow purges what the policy's retention allows; retention 0 keeps everything.
func purgeNow(ctx context.Context, store *sqlstore.Store, p bridge.Policy, actor string, now time.Time) (sqlstore.PurgeResult, error) {
	if p.Retention <= 0 {
		return sqlstore.PurgeResult{}, nil
	}
	return store.Purge(ctx, now.Add(-time.Duration(p.Retention)), actor, now)
}

// openCustodyStore opens the database for a command that reads or changes the record: schema
// checked, keys configured.
func openCustodyStore(ctx context.Context, env *environment, dbURL string) (*sqlstore.Store, *Config, *custody, error) {
	cfg, err := loadConfig(overlay(env.getenv, map[string]string{"WXTEAMS_DATABASE_URL": dbURL}))
	if err != nil {
		return nil, nil, nil, err
	}
	keys, err := loadCustody(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := sqlstore.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := store.CheckSchema(ctx); err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	store.UseKeyring(keys.ring)
	return store, cfg, keys, nil
}

const keysSummary = `Manage the data keys that encrypt message content at rest.

  wxteams keys list      the data keys: tenant, the key-encryption key wrapping each, created, retired
  wxteams keys rotate    retire every current data key; new content is sealed with fresh ones
  wxteams keys rewrap    after changing WXTEAMS_ARCHIVE_KEY (old key in WXTEAMS_ARCHIVE_KEY_PREVIOUS),
                         wrap every data key with the new key-encryption key
  wxteams keys public    print the public key that verifies checkpoints and export manifests
                         (give it to whoever verifies exports: ` + "`wxteams verify-export --public-key`" + `)

No archived row is rewritten by either. Both are archived with the operator as actor.`

func runKeys(ctx context.Context, env *environment, args []string) error {
	action, rest, err := subcommand(env, "keys", keysSummary, args, "list", "rotate", "rewrap", "public")
	if err != nil {
		return err
	}
	fs := flags(env, "keys "+action, "[flags]", keysSummary)
	dbURL := fs.String("database-url", "", "sqlite:PATH or postgres://… (default WXTEAMS_DATABASE_URL)")
	if err := parse(fs, rest); err != nil {
		return err
	}
	if action == "public" {
		cfg, err := loadConfig(env.getenv)
		if err != nil {
			return err
		}
		keys, err := loadCustody(cfg)
		if err != nil {
			return err
		}
		if keys.sign == nil {
			return errors.New("WXTEAMS_SIGNING_KEY is not set")
		}
		fmt.Fprintf(env.stdout, "%s  (%s)\n", base64.StdEncoding.EncodeToString(keys.public()), compliance.SigningKeyID(keys.public()))
		return nil
	}
	store, _, keys, err := openCustodyStore(ctx, env, *dbURL)
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now()
	switch action {
	case "list":
		list, err := store.DataKeys(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%-28s %-12s %-20s %-20s %s\n", "DATA KEY", "TENANT", "WRAPPED BY", "CREATED", "RETIRED")
		for _, k := range list {
			retired := "current"
			if !k.Retired.IsZero() {
				retired = k.Retired.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(env.stdout, "%-28s %-12s %-20s %-20s %s\n", k.ID, orDash(k.Tenant), k.KEK, k.Created.UTC().Format(time.RFC3339), retired)
		}
		return nil
	case "rotate":
		n, err := store.RotateDataKeys(ctx, now)
		if err != nil {
			return err
		}
		if err := archiveAdmin(ctx, store, compliance.KindKeysRotated, cliActor(), now, compliance.Meta{Reason: "data keys retired", Count: int(n)}); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "retired %d data keys; new content is sealed with fresh ones\n", n)
		return nil
	default:
		if keys.ring == nil {
			return errors.New("WXTEAMS_ARCHIVE_KEY is not set")
		}
		n, err := store.RewrapDataKeys(ctx)
		if err != nil {
			return err
		}
		if err := archiveAdmin(ctx, store, compliance.KindKeysRotated, cliActor(), now, compliance.Meta{Reason: "data keys rewrapped", Count: n, KeyID: keys.ring.Current()}); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "rewrapped %d data keys with %s; WXTEAMS_ARCHIVE_KEY_PREVIOUS can now be removed\n", n, keys.ring.Current())
		return nil
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// archiveAdmin archives an administrator's action in the admin stream.
func archiveAdmin(ctx context.Context, store *sqlstore.Store, kind compliance.Kind, actor string, now time.Time, meta compliance.Meta) error {
	return store.Archive(ctx, compliance.Event{Stream: compliance.AdminStream, At: now, Kind: kind, Actor: actor, Meta: meta})
}

const holdSummary = `Place, lift and list legal holds. While a hold is in place the retention purge keeps every
record of the chat, employee or contact it names.

  wxteams hold list [--all]
  wxteams hold place --scope chat|employee|contact --subject ID --reason TEXT
  wxteams hold lift --id N --reason TEXT`

func runHold(ctx context.Context, env *environment, args []string) error {
	action, rest, err := subcommand(env, "hold", holdSummary, args, "list", "place", "lift")
	if err != nil {
		return err
	}
	fs := flags(env, "hold "+action, "[flags]", holdSummary)
	dbURL := fs.String("database-url", "", "sqlite:PATH or postgres://… (default WXTEAMS_DATABASE_URL)")
	all := fs.Bool("all", false, "list: lifted holds too")
	scope := fs.String("scope", "", "place: chat, employee or contact")
	subject := fs.String("subject", "", "place: the chat number, employee id or openid")
	reason := fs.String("reason", "", "place, lift: why (archived)")
	id := fs.Int64("id", 0, "lift: the hold's number")
	if err := parse(fs, rest); err != nil {
		return err
	}
	store, _, _, err := openCustodyStore(ctx, env, *dbURL)
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now()
	switch action {
	case "list":
		holds, err := store.Holds(ctx, !*all)
		if err != nil {
			return err
		}
		for _, h := range holds {
			state := "in place"
			if !h.LiftedAt.IsZero() {
				state = "lifted " + h.LiftedAt.UTC().Format(time.RFC3339) + " by " + h.LiftedBy
			}
			fmt.Fprintf(env.stdout, "%d\t%s %s\t%q\tplaced %s by %s\t%s\n", h.ID, h.Scope, h.Subject, h.Reason, h.PlacedAt.UTC().Format(time.RFC3339), h.PlacedBy, state)
		}
		return nil
	case "place":
		h, err := store.PlaceHold(ctx, compliance.Hold{Scope: *scope, Subject: *subject, Reason: *reason}, cliActor(), now)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "hold %d placed on %s %s\n", h.ID, h.Scope, h.Subject)
		return nil
	default:
		if *id == 0 || strings.TrimSpace(*reason) == "" {
			return fmt.Errorf("%w: lift needs --id and --reason", errUsage)
		}
		if err := store.LiftHold(ctx, *id, cliActor(), *reason, now); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "hold %d lifted\n", *id)
		return nil
	}
}

const purgeSummary = `Remove the records older than the policy's retention period (WXTEAMS_POLICY_FILE "retention",
6 years by default) that no legal hold covers. Each stream's removal is archived as a disposal, so
` + "`wxteams verify`" + ` still passes afterwards. serve runs this every WXTEAMS_PURGE_EVERY.`

func runPurge(ctx context.Context, env *environment, args []string) error {
	fs := flags(env, "purge", "[flags]", purgeSummary)
	dbURL := fs.String("database-url", "", "sqlite:PATH or postgres://… (default WXTEAMS_DATABASE_URL)")
	if err := parse(fs, args); err != nil {
		return err
	}
	store, cfg, _, err := openCustodyStore(ctx, env, *dbURL)
	if err != nil {
		return err
	}
	defer store.Close()
	if cfg.Policy.Retention <= 0 {
		fmt.Fprintln(env.stdout, "retention is 0 (keep for ever): nothing to purge")
		return nil
	}
	res, err := purgeNow(ctx, store, cfg.Policy, cliActor(), time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "removed %d records from %d streams, and %d media; %d streams with expired records kept under legal hold\n",
		res.Records, res.Streams, res.Media, res.Held)
	return nil
}

// subcommand splits "ACTION [flags]" and checks ACTION is one of actions.
func subcommand(env *environment, name, summary string, args []string, actions ...string) (string, []string, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fs := flags(env, name, strings.Join(actions, "|")+" [flags]", summary)
		if err := parse(fs, args); err != nil {
			return "", nil, err
		}
		return "", nil, fmt.Errorf("%w: name an action: %s", errUsage, strings.Join(actions, ", "))
	}
	for _, a := range actions {
		if a == args[0] {
			return a, args[1:], nil
		}
	}
	return "", nil, fmt.Errorf("%w: unknown action %q: want %s", errUsage, args[0], strings.Join(actions, ", "))
}

// publicKeyFlag reads an Ed25519 public key in base64.
func publicKeyFlag(v string) (ed25519.PublicKey, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("--public-key: want the %d-byte Ed25519 public key in base64", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

const checkpointSummary = `Sign a checkpoint now: a Merkle root over every stream's head, signed with WXTEAMS_SIGNING_KEY,
stored and archived. serve makes one every WXTEAMS_CHECKPOINT_EVERY when the archive has changed.`

func runCheckpoint(ctx context.Context, env *environment, args []string) error {
	fs := flags(env, "checkpoint", "[flags]", checkpointSummary)
	dbURL := fs.String("database-url", "", "sqlite:PATH or postgres://… (default WXTEAMS_DATABASE_URL)")
	if err := parse(fs, args); err != nil {
		return err
	}
	store, _, keys, err := openCustodyStore(ctx, env, *dbURL)
	if err != nil {
		return err
	}
	defer store.Close()
	if keys.sign == nil {
		return errors.New("WXTEAMS_SIGNING_KEY is not set")
	}
	cp, err := store.MakeCheckpoint(ctx, keys.sign, cliActor(), time.Now())
	if err != nil {
		return err
	}
	if cp == nil {
		fmt.Fprintln(env.stdout, "nothing changed since the last checkpoint")
		return nil
	}
	fmt.Fprintf(env.stdout, "checkpoint %d signed by %s: %d streams, %d records, root %s\n", cp.ID, cp.KeyID, cp.Streams, cp.Records, cp.Root)
	return nil
}
