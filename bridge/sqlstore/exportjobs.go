package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/compliance"
)

// Scheduled incremental exports. Each job remembers, per stream, the last sequence number it has
// exported (export_cursors). A stream's sequence numbers are assigned under its head's row lock,
// so they commit in order: exporting "everything after the cursor" neither skips a record nor
// repeats one, and the cursor moves in the same transaction that records the run.

// ExportJob is a scheduled export.
type ExportJob struct {
	Name      string        `json:"name"`
	Formats   []string      `json:"formats"`
	OutDir    string        `json:"out_dir"`
	SMTPTo    string        `json:"smtp_to,omitempty"` // EML files are also mailed here
	Every     time.Duration `json:"every"`
	Next      time.Time     `json:"next"`
	Runs      int64         `json:"runs"`
	LastError string        `json:"last_error,omitempty"`
	CreatedBy string        `json:"created_by"`
	Created   time.Time     `json:"created"`
}

var jobName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ErrBadExportJob refuses a job without a usable name, formats, folder or period.
var ErrBadExportJob = errors.New("an export job needs a name (lower-case letters, digits, -), formats, an output folder and a period of at least 1m")

// AddExportJob creates a job; its first run is due now.
func (s *Store) AddExportJob(ctx context.Context, j ExportJob, actor string, now time.Time) error {
	if !jobName.MatchString(j.Name) || len(j.Formats) == 0 || j.OutDir == "" || j.Every < time.Minute {
		return ErrBadExportJob
	}
	return s.InTx(ctx, func(btx bridge.Tx) error {
		t := btx.(*tx)
		_, err := t.exec(ctx, `INSERT INTO export_jobs (name, format, out_dir, smtp_to, every_us, next_us, created_by, created_us)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $6)`, j.Name, strings.Join(j.Formats, ","), j.OutDir, j.SMTPTo, j.Every.Microseconds(), us(now), actor)
		if errors.Is(err, bridge.ErrConflict) {
			return fmt.Errorf("export job %q already exists", j.Name)
		}
		if err != nil {
			return fmt.Errorf("add export job: %w", err)
		}
		return t.Append(ctx, compliance.Event{Stream: compliance.AdminStream, At: now, Kind: compliance.KindExportJob, Actor: actor,
			Meta: compliance.Meta{Subject: j.Name, Format: strings.Join(j.Formats, ","), Reason: "job added: every " + j.Every.String() + " to " + j.OutDir + mailTo(j.SMTPTo)}})
	})
}

func mailTo(addr string) string {
	if addr == "" {
		return ""
	}
	return " and " + addr
}

// ErrNoExportJob means there is no job of that name.
var ErrNoExportJob = errors.New("no such export job")

// RemoveExportJob deletes a job and its cursor.
func (s *Store) RemoveExportJob(ctx context.Context, name, actor string, now time.Time) error {
	return s.InTx(ctx, func(btx bridge.Tx) error {
		t := btx.(*tx)
		if _, err := t.exec(ctx, `DELETE FROM export_cursors WHERE job = $1`, name); err != nil {
			return err
		}
		r, err := t.exec(ctx, `DELETE FROM export_jobs WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return ErrNoExportJob
		}
		return t.Append(ctx, compliance.Event{Stream: compliance.AdminStream, At: now, Kind: compliance.KindExportJob, Actor: actor,
			Meta: compliance.Meta{Subject: name, Reason: "job removed"}})
	})
}

const jobColumns = `name, format, out_dir, smtp_to, every_us, next_us, runs, last_error, created_by, created_us`

func scanJob(row interface{ Scan(...any) error }) (*ExportJob, error) {
	var (
		j                    ExportJob
		formats              string
		every, next, created int64
	)
	if err := row.Scan(&j.Name, &formats, &j.OutDir, &j.SMTPTo, &every, &next, &j.Runs, &j.LastError, &j.CreatedBy, &created); err != nil {
		return nil, err
	}
	j.Formats = strings.Split(formats, ",")
	j.Every, j.Next, j.Created = time.Duration(every)*time.Microsecond, fromUS(next), fromUS(created)
	return &j, nil
}

// ExportJobs lists the jobs by name.
func (s *Store) ExportJobs(ctx context.Context) ([]*ExportJob, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+jobColumns+` FROM export_jobs ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list export jobs: %w", s.wrap(err))
	}
	defer rows.Close()
	var out []*ExportJob
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, j)
	}
	return out, s.wrap(rows.Err())
}

// ClaimExportJob leases a job for a run: the named one, or (name "") the first that is due. It
// returns nil, nil when there is none; a job leased by another replica is not claimed until its
// lease runs out.
func (s *Store) ClaimExportJob(ctx context.Context, name, owner string, now time.Time, lease time.Duration) (*ExportJob, error) {
	var job *ExportJob
	err := s.InTx(ctx, func(btx bridge.Tx) error {
		t := btx.(*tx)
		job = nil // a transaction run again starts afresh
		q := `SELECT ` + jobColumns + ` FROM export_jobs WHERE lease_until_us <= $1 AND next_us <= $1 ORDER BY next_us LIMIT 1 FOR UPDATE SKIP LOCKED`
		args := []any{us(now)}
		if name != "" {
			q = `SELECT ` + jobColumns + ` FROM export_jobs WHERE name = $2 AND lease_until_us <= $1 FOR UPDATE`
			args = append(args, name)
		}
		j, err := scanJob(t.queryRow(ctx, q, args...))
		if isNoRows(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("claim export job: %w", t.s.wrap(err))
		}
		if _, err := t.exec(ctx, `UPDATE export_jobs SET lease_owner = $2, lease_until_us = $3 WHERE name = $1`, j.Name, owner, us(now.Add(lease))); err != nil {
			return err
		}
		job = j
		return nil
	})
	return job, err
}

// FinishExportRun records a run: the job's cursor moves to the last sequence number exported per
// stream, its run count to run, and the export is archived — all in one transaction, and only if
// this owner still holds the lease.
func (s *Store) FinishExportRun(ctx context.Context, name, owner string, run int64, cursors map[string]int64, ev compliance.Event, now time.Time) error {
	return s.InTx(ctx, func(btx bridge.Tx) error {
		t := btx.(*tx)
		var every int64
		err := t.queryRow(ctx, `SELECT every_us FROM export_jobs WHERE name = $1 AND lease_owner = $2 FOR UPDATE`, name, owner).Scan(&every)
		if isNoRows(err) {
			return fmt.Errorf("export job %s: the lease was lost; the run is not recorded", name)
		}
		if err != nil {
			return t.s.wrap(err)
		}
		for stream, seq := range cursors {
			if _, err := t.exec(ctx, `INSERT INTO export_cursors (job, stream, seq) VALUES ($1, $2, $3)
				ON CONFLICT (job, stream) DO UPDATE SET seq = EXCLUDED.seq`, name, stream, seq); err != nil {
				return fmt.Errorf("move export cursor: %w", err)
			}
		}
		if _, err := t.exec(ctx, `UPDATE export_jobs SET runs = $2, next_us = $3, last_error = '', lease_owner = '', lease_until_us = 0 WHERE name = $1`,
			name, run, us(now)+every); err != nil {
			return err
		}
		if ev.Kind == "" {
			return nil
		}
		return t.Append(ctx, ev)
	})
}

// FailExportRun releases the lease and records why the run failed; the next run retries it.
func (s *Store) FailExportRun(ctx context.Context, name, owner, problem string, now time.Time) error {
	_, err := conn{s, s.db}.exec(ctx, `UPDATE export_jobs SET last_error = $3, lease_owner = '', lease_until_us = 0,
		next_us = $4 + every_us WHERE name = $1 AND lease_owner = $2`, name, owner, problem, us(now))
	return err
}
