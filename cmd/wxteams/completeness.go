package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/intake"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/compliance/api"
	"github.com/wxteams/wxteams/compliance/completeness"
)

// This file wires the daily completeness report (compliance/completeness, made by the store) and
// stall detection (bridge/intake): the background jobs, the metrics, and the command.

// backfillDays caps how many missed days a run of the daily report job, or of the sampler, makes
// at once after downtime: the latest ones; earlier days are skipped, named in a warning.
const backfillDays = 31

// receiptMetrics counts receipts and refusals after receipt, and hands them on to the watcher.
type receiptMetrics struct {
	next     bridge.Receipts
	received *prometheus.CounterVec
	refused  *prometheus.CounterVec
}

var _ bridge.Receipts = (*receiptMetrics)(nil)

// newReceipts returns what the channel endpoints tell of their receipts: counted in reg (with the
// stall gauge, read from w) and handed to w.
func newReceipts(reg prometheus.Registerer, w *intake.Watcher) *receiptMetrics {
	m := &receiptMetrics{
		next: w,
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxteams_receipts_total",
			Help: "Pushes (WeChat) and activities from people (Teams) received: they passed authentication."}, []string{"channel"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxteams_receipts_refused_total",
			Help: "Pushes and activities refused after they were received (not archived), by reason."}, []string{"channel", "reason"}),
	}
	reg.MustRegister(m.received, m.refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wxteams_bridge_stalled",
		Help: "1 while chats are live but no inbound traffic has arrived for WXTEAMS_STALL_AFTER."}, func() float64 {
		if w.Stalled() {
			return 1
		}
		return 0
	}))
	return m
}

func (m *receiptMetrics) Received(ch bridge.Channel, at time.Time) {
	m.received.WithLabelValues(string(ch)).Inc()
	m.next.Received(ch, at)
}

func (m *receiptMetrics) Refused(ch bridge.Channel, reason string, at time.Time) {
	m.refused.WithLabelValues(string(ch), reason).Inc()
	m.next.Refused(ch, reason, at)
}

// warnSkipped names the days a backfill skipped, beyond backfillDays.
func warnSkipped(log *zap.Logger, what string, skipped []string) {
	if len(skipped) == 0 {
		return
	}
	log.Warn(what+" not made for days beyond the backfill cap", zap.Int("cap_days", backfillDays), zap.Int("skipped_days", len(skipped)),
		zap.String("skipped_from", skipped[0]), zap.String("skipped_through", skipped[len(skipped)-1]))
}

// makeDailyReports makes and archives the report of every day that has ended and has none yet,
// from the day after the latest archived one (or the archive's first day, if none is) through the
// latest ended day, at most backfillDays of them (the latest; earlier ones skipped with a
// warning). A day whose report fails stops the run, so that the next run starts again there.
func makeDailyReports(ctx context.Context, store *sqlstore.Store, key ed25519.PrivateKey, overdue time.Duration, now time.Time, log *zap.Logger) {
	last, err := store.LastCompletenessDay(ctx)
	first := ""
	if err == nil && last == "" {
		first, err = store.FirstArchiveDay(ctx)
	}
	if err != nil {
		log.Error("completeness reports failed", zap.Error(err))
		return
	}
	days, skipped := completeness.Backfill(last, first, completeness.LastEnded(now), backfillDays)
	warnSkipped(log, "completeness reports", skipped)
	for _, day := range days {
		if !makeDailyReport(ctx, store, key, overdue, day, now, log) {
			return
		}
	}
}

// makeDailyReport makes and archives the report of day, unless it exists already (another
// replica, an earlier run). It reports whether the day has its report now.
func makeDailyReport(ctx context.Context, store *sqlstore.Store, key ed25519.PrivateKey, overdue time.Duration, day string, now time.Time, log *zap.Logger) bool {
	signed, made, err := store.MakeCompleteness(ctx, day, key, overdue, "system:completeness", now)
	switch {
	case err != nil:
		log.Error("completeness report failed", zap.String("day", day), zap.Error(err))
		return false
	case made:
		rep, err := signed.Open(nil)
		if err != nil {
			log.Error("completeness report unreadable", zap.String("day", day), zap.Error(err))
			return true
		}
		level := log.Info
		if len(rep.Gaps) > 0 {
			level = log.Warn
		}
		level("completeness report archived", zap.String("day", day), zap.String("hash", signed.Hash), zap.Int("gaps", len(rep.Gaps)+int(rep.GapsOmitted)),
			zap.Int64("received", rep.Total.Received), zap.Int64("delivered", rep.Total.Delivered), zap.Int64("failed", rep.Total.Failed),
			zap.Int64("unknown", rep.Total.Unknown), zap.Int64("overdue", rep.Total.Overdue), zap.Int64("late", rep.Total.Late),
			zap.Int64("refused_after_receipt", rep.Total.Refused), zap.Int64("refused_by_policy", rep.Total.RefusedByPolicy))
	}
	return true
}

// runCompletenessJob archives the report of every ended UTC day that has none (the previous day,
// and after downtime the days missed, see makeDailyReports) at start and every few minutes, until
// ctx ends. Every replica runs it; each day's report is made once.
func runCompletenessJob(ctx context.Context, store *sqlstore.Store, keys *custody, cfg *Config, clk bridge.Clock, log *zap.Logger) {
	for {
		makeDailyReports(ctx, store, keys.sign, cfg.DeliveryOverdue, clk.Now(), log)
		select {
		case <-ctx.Done():
			return
		case <-clk.After(5 * time.Minute):
		}
	}
}

// completenessSource is GET /compliance/v1/completeness's report: the archived one, else one made
// now, signed, not archived — provisional (final false, inside the signature) when the day has not
// ended yet.
func completenessSource(store *sqlstore.Store, keys *custody, cfg *Config, clk bridge.Clock) func(ctx context.Context, day string) (*completeness.Signed, bool, error) {
	return func(ctx context.Context, day string) (*completeness.Signed, bool, error) {
		if signed, err := store.Completeness(ctx, day); err == nil {
			return signed, true, nil
		} else if !errors.Is(err, bridge.ErrNotFound) {
			return nil, false, err
		}
		rep, err := store.CompletenessReport(ctx, day, clk.Now(), cfg.DeliveryOverdue)
		if err != nil {
			return nil, false, err
		}
		signed, err := completeness.Sign(rep, keys.sign)
		return signed, false, err
	}
}

const completenessSummary = `The daily completeness report: for one UTC day, per channel (wechat, teams) and archive stream
kind, what was received, archived, delivered, failed, left with an unknown outcome, retried and is
still waiting; and every gap — a delivery waiting longer than WXTEAMS_DELIVERY_OVERDUE [15m], or
that finished only later than that, pushes and activities refused after they were received and not
archived, a stream whose chain does not verify across the day. serve signs (WXTEAMS_SIGNING_KEY)
and archives each day's report once the day has ended (midnight UTC + 5m), catching up on days
missed while it was down (at most 31). A report of a day not ended yet is provisional ("final":
false in the signed report) and is never archived.

  wxteams completeness [--day YYYY-MM-DD] [--json]   the archived report, else one computed now
  wxteams completeness --day D --archive             make, sign and archive D's report now (once;
                                                     only once D has ended)
  wxteams completeness --verify FILE                 check a saved report's signature (--json output
                                                     or the API's answer)`

func runCompleteness(ctx context.Context, env *environment, args []string) error {
	fs := flags(env, "completeness", "[flags]", completenessSummary)
	dbURL := fs.String("database-url", "", "sqlite:PATH or postgres://… (default WXTEAMS_DATABASE_URL or sqlite:wxteams.db)")
	day := fs.String("day", "", "the UTC day, YYYY-MM-DD (default: the latest ended day, yesterday after 00:05 UTC)")
	asJSON := fs.Bool("json", false, "print the signed report as JSON (what --verify reads)")
	archive := fs.Bool("archive", false, "make, sign and archive the day's report if it is not archived yet")
	verifyFile := fs.String("verify", "", "check the signature of a report saved in FILE")
	pubText := fs.String("public-key", "", "the signing public key, base64 (default: derived from WXTEAMS_SIGNING_KEY)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var pub ed25519.PublicKey
	if *pubText != "" {
		key, err := publicKeyFlag(*pubText)
		if err != nil {
			return err
		}
		pub = key
	}
	if *verifyFile != "" {
		if pub == nil {
			cfg, err := loadConfig(env.getenv)
			if err != nil {
				return err
			}
			keys, err := loadCustody(cfg)
			if err != nil {
				return err
			}
			if pub = keys.public(); pub == nil {
				return fmt.Errorf("%w: give --public-key (from `wxteams keys public`) or set WXTEAMS_SIGNING_KEY", errUsage)
			}
		}
		return verifyCompletenessFile(env, *verifyFile, pub)
	}
	now := time.Now()
	if *day == "" {
		*day = completeness.LastEnded(now)
	}
	if from, _, err := completeness.DayBounds(*day); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	} else if from.After(now) {
		return fmt.Errorf("%w: day %s has not begun yet (days are in UTC)", errUsage, *day)
	}
	if end, _ := completeness.EndOf(*day); *archive && now.Before(end) {
		return fmt.Errorf("%w: day %s has not ended yet: its report can be archived from %s (midnight UTC + %s); without --archive you see it as it is now, provisional",
			errUsage, *day, end.Format(time.RFC3339), completeness.Grace)
	}
	store, cfg, keys, err := openCustodyStore(ctx, env, *dbURL)
	if err != nil {
		return err
	}
	defer store.Close()
	if pub == nil {
		pub = keys.public()
	}
	var (
		signed   *completeness.Signed
		archived bool
	)
	if *archive {
		if keys.sign == nil {
			return errors.New("--archive signs the report: set WXTEAMS_SIGNING_KEY")
		}
		signed, _, err = store.MakeCompleteness(ctx, *day, keys.sign, cfg.DeliveryOverdue, cliActor(), now)
		archived = true
	} else {
		signed, archived, err = completenessSource(store, keys, cfg, clock.System{})(ctx, *day)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(api.CompletenessReply{Archived: archived, Signed: signed})
	}
	rep, err := signed.Open(pub)
	status := "signature verifies"
	switch {
	case errors.Is(err, completeness.ErrUnsigned):
		rep, err = signed.Open(nil)
		status = "not signed (no WXTEAMS_SIGNING_KEY)"
	case err == nil && pub == nil:
		status = "signature not checked (no public key)"
	}
	if err != nil {
		return fmt.Errorf("the report of %s does NOT verify: %w", *day, err)
	}
	where := "computed now, not archived (serve archives each day's report after midnight UTC; --archive does it now)"
	if archived {
		where = "as archived"
	}
	fmt.Fprintf(env.stdout, "%s; %s; hash %s\n", where, status, signed.Hash)
	return rep.WriteText(env.stdout)
}

// verifyCompletenessFile checks a saved report with pub and prints it.
func verifyCompletenessFile(env *environment, path string, pub ed25519.PublicKey) error {
	data, err := os.ReadFile(path) // #nosec G304 -- the operator's file to check
	if err != nil {
		return err
	}
	var signed completeness.Signed
	if err := json.Unmarshal(data, &signed); err != nil || len(signed.Report) == 0 {
		return fmt.Errorf("%s is not a completeness report (the output of `wxteams completeness --json` or GET /compliance/v1/completeness)", path)
	}
	rep, err := signed.Open(pub)
	if err != nil {
		return fmt.Errorf("the report in %s does NOT verify: %w", path, err)
	}
	fmt.Fprintf(env.stdout, "report of %s intact: signed by %s, hash %s\n", rep.Day, signed.KeyID, signed.Hash)
	return rep.WriteText(env.stdout)
}
