package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/export"
)

const exportSummary = `Export the compliance record into a new folder: records.jsonl (canonical) plus the formats asked
for (csv, eml: Global Relay-style, actiance: Actiance XML), media, and a manifest.json signed with
WXTEAMS_SIGNING_KEY (manifest.json.sig). Check it anywhere with ` + "`wxteams verify-export`" + `.
The export is archived with you as the operator.

  wxteams export --out DIR [--format jsonl,csv,eml,actiance] [--from DATE] [--to DATE]
                 [--employee ID] [--contact OPENID]

DATE is 2026-11-01 (UTC midnight) or RFC 3339 (2026-11-01T09:00:00Z); --to is exclusive.`

func runExport(ctx context.Context, env *environment, args []string) error {
	fs := flags(env, "export", "[flags]", exportSummary)
	dbURL := fs.String("database-url", "", "sqlite:PATH or postgres://… (default WXTEAMS_DATABASE_URL)")
	out := fs.String("out", "", "the folder to create (required; must not exist or be empty)")
	formats := fs.String("format", "jsonl", "comma-separated: jsonl, csv, eml, actiance, or all")
	from := fs.String("from", "", "first day or time included (UTC)")
	to := fs.String("to", "", "first day or time excluded (UTC)")
	employee := fs.String("employee", "", "only this employee's chats and stream")
	contact := fs.String("contact", "", "only this customer's chat and stream")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: --out is required", errUsage)
	}
	scope := export.Scope{Employee: *employee, Contact: *contact, Formats: splitFormats(*formats)}
	var err error
	if scope.From, err = parseWhen(*from); err != nil {
		return fmt.Errorf("%w: --from: %v", errUsage, err)
	}
	if scope.To, err = parseWhen(*to); err != nil {
		return fmt.Errorf("%w: --to: %v", errUsage, err)
	}
	if err := scope.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	store, _, keys, err := openCustodyStore(ctx, env, *dbURL)
	if err != nil {
		return err
	}
	defer store.Close()
	m, err := exportAndArchive(ctx, store, keys, *out, scope, cliActor(), time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "exported %d records from %d streams (%d conversations, %d media) to %s\n",
		m.Counts.Records, m.Counts.Streams, m.Counts.Conversations, m.Counts.Media, *out)
	return nil
}

// exportAndArchive writes an export and archives it (operator, scope, manifest hash).
func exportAndArchive(ctx context.Context, store *sqlstore.Store, keys *custody, dir string, scope export.Scope, actor string, now time.Time) (*export.Manifest, error) {
	if keys.sign == nil {
		return nil, errors.New("WXTEAMS_SIGNING_KEY is not set: exports are signed")
	}
	m, err := export.Write(ctx, dir, store.ExportSource(), scope, export.Options{Operator: actor, Tool: "wxteams " + versionString(), Key: keys.sign})
	if err != nil {
		return nil, err
	}
	hash, err := export.ManifestHash(dir)
	if err != nil {
		return nil, err
	}
	return m, archiveAdmin(ctx, store, compliance.KindExported, actor, now, exportMeta(scope, m, hash))
}

func exportMeta(scope export.Scope, m *export.Manifest, hash string) compliance.Meta {
	meta := compliance.Meta{Format: strings.Join(scope.Formats, ","), Count: m.Counts.Records, Hash: hash, Scope: "all"}
	switch {
	case scope.Job != "":
		meta.Scope, meta.Subject, meta.Seq = "job", scope.Job, scope.Run
	case scope.Employee != "":
		meta.Scope, meta.Subject = "employee", scope.Employee
	case scope.Contact != "":
		meta.Scope, meta.Subject = "contact", scope.Contact
	case scope.Stream != "":
		meta.Scope, meta.Subject = "stream", scope.Stream
	}
	var window []string
	if !scope.From.IsZero() {
		window = append(window, "from="+scope.From.UTC().Format(time.RFC3339))
	}
	if !scope.To.IsZero() {
		window = append(window, "to="+scope.To.UTC().Format(time.RFC3339))
	}
	meta.Query = strings.Join(window, " ")
	return meta
}

func splitFormats(v string) []string {
	if strings.TrimSpace(v) == "all" {
		return append([]string(nil), export.AllFormats...)
	}
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(strings.ToLower(f)); f != "" && f != export.JSONL {
			out = append(out, f)
		}
	}
	return append([]string{export.JSONL}, out...)
}

// parseWhen reads a UTC date or an RFC 3339 time; "" is the zero time.
func parseWhen(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither 2026-11-01 nor 2026-11-01T09:00:00Z", v)
	}
	return t.UTC(), nil
}

const verifyExportSummary = `Check an export folder offline, with only the public key of the key that signed it (from
` + "`wxteams keys public`" + `): the manifest's signature, every file's SHA-256, every record's content and hash
and the chain they form, and each stream's head under the signed checkpoint. Names the first file
or record that fails, and exits 1.`

func runVerifyExport(ctx context.Context, env *environment, args []string) error {
	fs := flags(env, "verify-export", "DIR [flags]", verifyExportSummary)
	pubText := fs.String("public-key", "", "the signing public key, base64 (default: derived from WXTEAMS_SIGNING_KEY)")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return fmt.Errorf("%w: give the export folder", errUsage)
	}
	var pub []byte
	if *pubText != "" {
		if pub, err = publicKeyFlag(*pubText); err != nil {
			return err
		}
	} else {
		cfg, err := loadConfig(env.getenv)
		if err != nil {
			return err
		}
		keys, err := loadCustody(cfg)
		if err != nil {
			return err
		}
		if pub = keys.public(); pub == nil {
			return fmt.Errorf("%w: give --public-key (from `wxteams keys public`)", errUsage)
		}
	}
	rep, err := export.Verify(positional[0], pub)
	if err != nil {
		return fmt.Errorf("export NOT intact: %w", err)
	}
	fmt.Fprintf(env.stdout, "export intact: %d files, %d records in %d streams; ", rep.Files, rep.Records, rep.Streams)
	if rep.Checkpoint != nil {
		fmt.Fprintf(env.stdout, "%d stream heads proven under checkpoint %s (%s), %d of them matched to exported records\n",
			rep.Leaves, rep.Checkpoint.Root, rep.Checkpoint.At.UTC().Format(time.RFC3339), rep.Matched)
	} else {
		fmt.Fprintln(env.stdout, "no checkpoint yet when it was made")
	}
	return nil
}

const exportJobSummary = `Scheduled incremental exports. Each run exports what the job has not exported yet (per stream,
after its cursor) into DIR/NAME-NNNNNN, and mails the EML files when --smtp-to is set (with
WXTEAMS_SMTP_URL and WXTEAMS_SMTP_FROM). serve runs due jobs; run starts one now.

  wxteams export-job add --name NAME --out DIR --every 1h [--format eml,…] [--smtp-to ADDRESS]
  wxteams export-job list
  wxteams export-job run --name NAME
  wxteams export-job remove --name NAME`

func runExportJobCmd(ctx context.Context, env *environment, args []string) error {
	action, rest, err := subcommand(env, "export-job", exportJobSummary, args, "add", "list", "run", "remove")
	if err != nil {
		return err
	}
	fs := flags(env, "export-job "+action, "[flags]", exportJobSummary)
	dbURL := fs.String("database-url", "", "sqlite:PATH or postgres://… (default WXTEAMS_DATABASE_URL)")
	name := fs.String("name", "", "the job's name: lower-case letters, digits and -")
	out := fs.String("out", "", "add: the folder runs are written under")
	formats := fs.String("format", "jsonl", "add: comma-separated formats, or all")
	every := fs.Duration("every", time.Hour, "add: how often it runs")
	smtpTo := fs.String("smtp-to", "", "add: also mail the EML files to this address")
	if err := parse(fs, rest); err != nil {
		return err
	}
	store, cfg, keys, err := openCustodyStore(ctx, env, *dbURL)
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now()
	switch action {
	case "add":
		fmts := splitFormats(*formats)
		if err := (&export.Scope{Formats: fmts}).Validate(); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if *smtpTo != "" && cfg.SMTPURL == "" {
			return errors.New("--smtp-to needs WXTEAMS_SMTP_URL and WXTEAMS_SMTP_FROM")
		}
		abs, err := filepath.Abs(*out)
		if *out == "" || err != nil {
			return fmt.Errorf("%w: --out is required", errUsage)
		}
		if err := store.AddExportJob(ctx, sqlstore.ExportJob{Name: *name, Formats: fmts, OutDir: abs, SMTPTo: *smtpTo, Every: *every}, cliActor(), now); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "export job %s added: every %s into %s\n", *name, *every, abs)
		return nil
	case "list":
		jobs, err := store.ExportJobs(ctx)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			state := "ok"
			if j.LastError != "" {
				state = "last run failed: " + j.LastError
			}
			fmt.Fprintf(env.stdout, "%s\t%s\tevery %s\t%s%s\t%d runs\tnext %s\t%s\n", j.Name, strings.Join(j.Formats, ","), j.Every, j.OutDir,
				mailNote(j.SMTPTo), j.Runs, j.Next.UTC().Format(time.RFC3339), state)
		}
		return nil
	case "remove":
		if err := store.RemoveExportJob(ctx, *name, cliActor(), now); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "export job %s removed\n", *name)
		return nil
	default:
		r := &exportRunner{store: store, keys: keys, cfg: cfg, owner: cliActor(), log: zap.NewNop()}
		job, err := store.ClaimExportJob(ctx, *name, r.owner, now, 10*time.Minute)
		if err != nil {
			return err
		}
		if job == nil {
			return fmt.Errorf("export job %q does not exist or another process is running it", *name)
		}
		dir, records, err := r.run(ctx, job, now)
		if err != nil {
			return err
		}
		if dir == "" {
			fmt.Fprintln(env.stdout, "nothing new to export")
		} else {
			fmt.Fprintf(env.stdout, "exported %d records to %s\n", records, dir)
		}
		return nil
	}
}

func mailNote(addr string) string {
	if addr == "" {
		return ""
	}
	return " and mail to " + addr
}

// exportRunner runs scheduled export jobs.
type exportRunner struct {
	store *sqlstore.Store
	keys  *custody
	cfg   *Config
	owner string
	log   *zap.Logger
}

// runDue runs every job that is due, one at a time.
func (r *exportRunner) runDue(ctx context.Context, now time.Time) {
	for ctx.Err() == nil {
		job, err := r.store.ClaimExportJob(ctx, "", r.owner, now, 30*time.Minute)
		if err != nil {
			r.log.Error("claim export job", zap.Error(err))
			return
		}
		if job == nil {
			return
		}
		dir, n, err := r.run(ctx, job, now)
		if err != nil {
			r.log.Error("export job failed", zap.String("job", job.Name), zap.Error(err))
			continue
		}
		if dir != "" {
			r.log.Info("export job ran", zap.String("job", job.Name), zap.String("folder", dir), zap.Int("records", n))
		}
	}
}

// custodyKinds are records the export machinery itself causes; a run with nothing else waits.
var custodyKinds = map[string]bool{string(compliance.KindExported): true, string(compliance.KindCheckpoint): true}

// run makes the job's next export. The folder is written under a temporary name, the cursor moves
// in the transaction that archives the run, and only then is the folder given its final name — a
// crash in between is finished by the next run.
func (r *exportRunner) run(ctx context.Context, job *sqlstore.ExportJob, now time.Time) (string, int, error) {
	fail := func(err error) (string, int, error) {
		if ferr := r.store.FailExportRun(context.WithoutCancel(ctx), job.Name, r.owner, err.Error(), now); ferr != nil {
			r.log.Error("record export job failure", zap.Error(ferr))
		}
		return "", 0, err
	}
	if r.keys.sign == nil {
		return fail(errors.New("WXTEAMS_SIGNING_KEY is not set: exports are signed"))
	}
	final := func(n int64) string { return filepath.Join(job.OutDir, fmt.Sprintf("%s-%06d", job.Name, n)) }
	partial := func(n int64) string { return filepath.Join(job.OutDir, fmt.Sprintf(".%s-%06d.partial", job.Name, n)) }
	if _, err := os.Stat(partial(job.Runs)); job.Runs > 0 && err == nil {
		if err := os.Rename(partial(job.Runs), final(job.Runs)); err != nil {
			return fail(fmt.Errorf("finish run %d: %w", job.Runs, err))
		}
	}
	n := job.Runs + 1
	dir := partial(n)
	if err := os.RemoveAll(dir); err != nil { // an attempt that never committed
		return fail(err)
	}
	scope := export.Scope{Formats: job.Formats, Job: job.Name, Run: n}
	m, err := export.Write(ctx, dir, r.store.ExportSource(), scope, export.Options{Operator: "job:" + job.Name, Tool: "wxteams " + versionString(), Key: r.keys.sign})
	if err != nil {
		_ = os.RemoveAll(dir)
		return fail(err)
	}
	substantive := 0
	for kind, c := range m.Counts.ByKind {
		if !custodyKinds[kind] {
			substantive += c
		}
	}
	if substantive == 0 {
		_ = os.RemoveAll(dir)
		return "", 0, r.store.FinishExportRun(ctx, job.Name, r.owner, job.Runs, nil, compliance.Event{}, now)
	}
	if job.SMTPTo != "" {
		if err := deliverEML(ctx, r.cfg, dir, job.SMTPTo); err != nil {
			_ = os.RemoveAll(dir)
			return fail(fmt.Errorf("mail to %s: %w", job.SMTPTo, err))
		}
	}
	hash, err := export.ManifestHash(dir)
	if err != nil {
		return fail(err)
	}
	cursors := map[string]int64{}
	for _, s := range m.Streams {
		cursors[s.Stream] = s.Segments[len(s.Segments)-1].LastSeq
	}
	ev := compliance.Event{Stream: compliance.AdminStream, At: now, Kind: compliance.KindExported, Actor: "job:" + job.Name, Meta: exportMeta(scope, m, hash)}
	if err := r.store.FinishExportRun(ctx, job.Name, r.owner, n, cursors, ev, now); err != nil {
		_ = os.RemoveAll(dir)
		return fail(err)
	}
	if err := os.Rename(dir, final(n)); err != nil {
		return "", 0, fmt.Errorf("run %d recorded; its folder stays %s until the next run renames it: %w", n, dir, err)
	}
	return final(n), m.Counts.Records, nil
}

// smtpTarget is a parsed WXTEAMS_SMTP_URL.
type smtpTarget struct {
	addr       string
	implicit   bool // smtps: TLS from the first byte
	plain      bool // ?tls=none: no TLS (only for a relay on loopback)
	user, pass string
	host       string
}

func parseSMTPURL(raw string) (*smtpTarget, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "smtp" && u.Scheme != "smtps") {
		return nil, errors.New("want smtp://user:password@host:587 (STARTTLS) or smtps://user:password@host:465")
	}
	t := &smtpTarget{addr: u.Host, implicit: u.Scheme == "smtps", host: u.Hostname()}
	if u.Port() == "" {
		port := "587"
		if t.implicit {
			port = "465"
		}
		t.addr = net.JoinHostPort(u.Hostname(), port)
	}
	if u.User != nil {
		t.user = u.User.Username()
		t.pass, _ = u.User.Password()
	}
	if u.Query().Get("tls") == "none" {
		ip := net.ParseIP(t.host)
		if t.host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, errors.New("tls=none is only allowed for a relay on this machine (localhost)")
		}
		t.plain = true
	}
	return t, nil
}

// deliverEML mails every EML file of an export folder to one address, reconnecting every 400
// messages as archive ingestion endpoints expect.
func deliverEML(ctx context.Context, cfg *Config, dir, to string) error {
	if cfg.SMTPURL == "" {
		return errors.New("WXTEAMS_SMTP_URL is not set")
	}
	target, err := parseSMTPURL(cfg.SMTPURL)
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(dir, "eml", "*.eml"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	for start := 0; start < len(files); start += 400 {
		end := min(start+400, len(files))
		if err := sendBatch(ctx, target, cfg.SMTPFrom, to, files[start:end]); err != nil {
			return err
		}
	}
	return nil
}

func sendBatch(ctx context.Context, t *smtpTarget, from, to string, files []string) error {
	var (
		c   *smtp.Client
		err error
	)
	tlsConfig := &tls.Config{ServerName: t.host, MinVersion: tls.VersionTLS12}
	switch {
	case t.implicit:
		c, err = smtp.DialTLS(t.addr, tlsConfig)
	case t.plain:
		c, err = smtp.Dial(t.addr)
	default:
		c, err = smtp.DialStartTLS(t.addr, tlsConfig)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	if t.user != "" {
		if err := c.Auth(sasl.NewPlainClient("", t.user, t.pass)); err != nil {
			return fmt.Errorf("authenticate: %w", err)
		}
	}
	for i, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := os.ReadFile(f) // #nosec G304 -- a file of the export this run just wrote
		if err != nil {
			return err
		}
		if err := c.SendMail(from, []string{to}, strings.NewReader(string(data))); err != nil {
			return fmt.Errorf("message %d (%s): %w", i+1, filepath.Base(f), err)
		}
	}
	return c.Quit()
}
