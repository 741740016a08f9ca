package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/api"
	"github.com/wxteams/wxteams/compliance/completeness"
	"github.com/wxteams/wxteams/compliance/supervision"
)

// This file is supervision on the command line — the firm's rules and the review queue, on the
// database like `admin` — and the daily sampling job serve runs.

const rulesSummary = `Manage the firm's supervision rules (issue 15) on the database, with the same effect as the
compliance API (/compliance/v1/rules): every change is a new version, archived in the supervision
stream with the operator ("cli:<user>@<host>") as actor. A running wxteams picks the change up
within seconds.

  wxteams rules list                       the rules in force: id, version, action, directions, coverage
  wxteams rules show ID                    a rule as JSON, and every version of it
  wxteams rules put FILE.json              create or change a rule (JSON as "rules show" prints it;
                                           "version" is the version you edited, 0 for a new rule)
  wxteams rules delete [--version N] ID    end a rule (its versions stay in the record)
  wxteams rules check --direction D [--employee ID] TEXT
                                           what the rules in force do to a message: matches, the
                                           action, and the text that would be delivered

D is to_customer (employee → customer) or to_employee (customer → employee).`

func runRules(ctx context.Context, env *environment, args []string) error {
	action, rest, err := subcommand(env, "rules", rulesSummary, args, "list", "show", "put", "delete", "check")
	if err != nil {
		return err
	}
	fs := flags(env, "rules "+action, "[flags]", rulesSummary)
	dbURL := fs.String("database-url", "", "sqlite:PATH or postgres://… (default WXTEAMS_DATABASE_URL)")
	version := fs.Int("version", 0, "delete: the version you mean to end (default: the current one)")
	direction := fs.String("direction", "", "check: to_customer or to_employee")
	employee := fs.String("employee", "", "check: the employee writing or written to (their Entra object id)")
	positional, err := parseInterspersed(fs, rest)
	if err != nil {
		return err
	}
	want := map[string]int{"list": 0, "show": 1, "put": 1, "delete": 1, "check": 1}[action]
	if len(positional) != want {
		return fmt.Errorf("%w: rules %s takes %d argument(s); see wxteams rules --help", errUsage, action, want)
	}
	if action == "check" && *direction != string(supervision.ToCustomer) && *direction != string(supervision.ToEmployee) {
		return fmt.Errorf("%w: check needs --direction to_customer or to_employee", errUsage)
	}
	var rule supervision.Rule
	if action == "put" {
		data, err := os.ReadFile(positional[0]) // #nosec G304 G703 -- the file the operator named on the command line
		if err != nil {
			return fmt.Errorf("read the rule: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rule); err != nil {
			return fmt.Errorf("%w: %s is not a rule as JSON (see `wxteams rules show ID` for the shape): %v", errUsage, positional[0], err)
		}
	}
	store, _, _, err := openCustodyStore(ctx, env, *dbURL)
	if err != nil {
		return err
	}
	defer store.Close()
	actor, now := cliActor(), time.Now()
	switch action {
	case "list":
		rules, groups, err := store.SupervisionRules(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tVERSION\tACTION\tDIRECTIONS\tCOVERS\tTERMS\tNAME")
		for _, r := range rules {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.Version, ruleAction(r), directions(r.Directions), coverage(r), len(r.Terms), r.Name)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for name, emps := range groups {
			fmt.Fprintf(env.stdout, "group %s: %s\n", name, strings.Join(emps, ", "))
		}
		return nil
	case "show":
		hist, err := store.RuleHistory(ctx, positional[0])
		if errors.Is(err, supervision.ErrNoRule) {
			return fmt.Errorf("there is no rule %q: `wxteams rules list` shows the rules", positional[0])
		}
		if err != nil {
			return err
		}
		out, _ := json.MarshalIndent(hist[len(hist)-1], "", "  ")
		fmt.Fprintf(env.stdout, "%s\n\nversions:\n", out)
		for i, r := range hist {
			what := "changed"
			switch {
			case r.Deleted:
				what = "deleted"
			case i == 0 || hist[i-1].Deleted:
				what = "created"
			}
			fmt.Fprintf(env.stdout, "  %d  %s  %s by %s\n", r.Version, r.ChangedAt.UTC().Format(time.RFC3339), what, r.ChangedBy)
		}
		return nil
	case "put":
		if rule.Version == 0 {
			// Version 0 is a new rule: an id in force is not overwritten unawares.
			if hist, err := store.RuleHistory(ctx, rule.ID); err == nil && !hist[len(hist)-1].Deleted {
				return fmt.Errorf("%w: rule %s exists (version %d): set \"version\" to the version you edited (`wxteams rules show %s`)", errUsage, rule.ID, hist[len(hist)-1].Version, rule.ID)
			}
		}
		got, err := store.PutRule(ctx, rule, actor, now)
		switch {
		case errors.Is(err, supervision.ErrInvalid):
			return fmt.Errorf("%w: %v", errUsage, err)
		case errors.Is(err, supervision.ErrStale):
			return fmt.Errorf("%w; `wxteams rules show %s` prints the current version to edit", err, rule.ID)
		case err != nil:
			return err
		}
		fmt.Fprintf(env.stdout, "rule %s is now at version %d (%s)\n", got.ID, got.Version, ruleAction(got))
		return nil
	case "delete":
		got, err := store.DeleteRule(ctx, positional[0], *version, actor, now)
		switch {
		case errors.Is(err, supervision.ErrNoRule):
			return fmt.Errorf("there is no rule %q in force: `wxteams rules list` shows the rules", positional[0])
		case errors.Is(err, supervision.ErrStale):
			return fmt.Errorf("%w; `wxteams rules show %s` prints the current version", err, positional[0])
		case err != nil:
			return err
		}
		fmt.Fprintf(env.stdout, "rule %s deleted (version %d)\n", got.ID, got.Version)
		return nil
	}
	// check
	rules, groups, err := store.SupervisionRules(ctx)
	if err != nil {
		return err
	}
	set, err := supervision.Compile(rules, groups)
	if err != nil {
		return fmt.Errorf("the rules in force do not compile: %w", err)
	}
	var emps []string
	if *employee != "" {
		emps = []string{*employee}
	}
	res := set.Check(positional[0], supervision.Direction(*direction), emps)
	if err := cliAccess(ctx, store, actor, now, "check a message against the rules", "rules check --direction "+*direction, len(res.Matches)); err != nil {
		return err
	}
	action2 := string(res.Action)
	if action2 == "" {
		action2 = "none"
	}
	fmt.Fprintf(env.stdout, "action: %s\nchecked against: %s\n", action2, strings.Join(res.Checked, ", "))
	for _, m := range res.Matches {
		fmt.Fprintf(env.stdout, "match: %s (%s, %s) term %q at bytes %d–%d: %q\n", m.Rule, m.Name, m.Action, m.Term, m.Start, m.End, positional[0][m.Start:m.End])
	}
	if res.Action == supervision.ActionBlock {
		fmt.Fprintln(env.stdout, "delivered: nothing (blocked)")
	} else {
		fmt.Fprintf(env.stdout, "delivered: %s\n", res.Text)
	}
	return nil
}

func ruleAction(r supervision.Rule) string {
	if r.Disabled {
		return string(r.Action) + " (disabled)"
	}
	return string(r.Action)
}

func directions(ds []supervision.Direction) string {
	var out []string
	for _, d := range ds {
		out = append(out, string(d))
	}
	return strings.Join(out, ",")
}

func coverage(r supervision.Rule) string {
	if len(r.Employees)+len(r.Groups) == 0 {
		return "everyone"
	}
	var parts []string
	for _, g := range r.Groups {
		parts = append(parts, "group "+g)
	}
	if n := len(r.Employees); n > 0 {
		parts = append(parts, strconv.Itoa(n)+" employee(s)")
	}
	return strings.Join(parts, ", ")
}

const reviewSummary = `Work the supervision review queue (issue 15) on the database, with the same effect as the
compliance API (/compliance/v1/reviews): every step is archived in the supervision stream with the
operator ("cli:<user>@<host>") as actor, a decision's note as the record's (encrypted) content.

  wxteams review list [--state S] [--reason flag|sample] [--rule ID] [--employee ID] [--page N]
                                      the queue, oldest first (state: open, assigned, escalated,
                                      closed, or backlog = any but closed)
  wxteams review show ID              an item, its history with notes, and the talk around it
  wxteams review assign ID WHO        give the item to a reviewer ("me": you)
  wxteams review decide ID DECISION --note N
                                      no_issue, escalate or close (a note is required to escalate
                                      or close); an escalated item is decided again
  wxteams review sample [--day D]     draw the day's random sample now (default: yesterday, UTC);
                                      a day already drawn adds nothing, a day not ended yet
                                      (midnight UTC + 5m) is refused. The share is the
                                      sample_percent setting (wxteams review sample --percent P sets it)
  wxteams review report [--from D] [--to D] [--format csv|jsonl --out DIR]
                                      items per reason, rule and decision with time to review, and
                                      the backlog by age; with --out, written as a signed export
                                      (check it with wxteams verify-export DIR)`

func runReview(ctx context.Context, env *environment, args []string) error {
	action, rest, err := subcommand(env, "review", reviewSummary, args, "list", "show", "assign", "decide", "sample", "report")
	if err != nil {
		return err
	}
	fs := flags(env, "review "+action, "[flags]", reviewSummary)
	dbURL := fs.String("database-url", "", "sqlite:PATH or postgres://… (default WXTEAMS_DATABASE_URL)")
	var f supervision.ReviewFilter
	fs.StringVar(&f.State, "state", "", "list: open, assigned, escalated, closed or backlog")
	fs.StringVar(&f.Reason, "reason", "", "list: flag or sample")
	fs.StringVar(&f.Rule, "rule", "", "list: items this rule flagged")
	fs.StringVar(&f.Employee, "employee", "", "list: items about this employee (Entra object id)")
	page := fs.Int("page", 1, "list: the page, 50 items each")
	note := fs.String("note", "", "decide: why (archived, encrypted)")
	dayFlag := fs.String("day", "", "sample: the UTC day to draw, YYYY-MM-DD (default: the latest ended day, yesterday after 00:05 UTC)")
	percent := fs.Int("percent", -1, "sample: first set sample_percent to this (0–100; archived)")
	from := fs.String("from", "", "report: first day (UTC) of items counted")
	to := fs.String("to", "", "report: last day (UTC) of items counted, included")
	format := fs.String("format", "", "report: csv or jsonl, with --out")
	out := fs.String("out", "", "report: write the report as a signed export into this new folder")
	positional, err := parseInterspersed(fs, rest)
	if err != nil {
		return err
	}
	want := map[string]int{"list": 0, "show": 1, "assign": 2, "decide": 2, "sample": 0, "report": 0}[action]
	if len(positional) != want {
		return fmt.Errorf("%w: review %s takes %d argument(s); see wxteams review --help", errUsage, action, want)
	}
	var id int64
	if want > 0 {
		if id, err = strconv.ParseInt(positional[0], 10, 64); err != nil || id <= 0 {
			return fmt.Errorf("%w: %q is not a review item's number (wxteams review list shows them)", errUsage, positional[0])
		}
	}
	if (*format == "") != (*out == "") {
		return fmt.Errorf("%w: give --format csv|jsonl and --out DIR together", errUsage)
	}
	store, _, keys, err := openCustodyStore(ctx, env, *dbURL)
	if err != nil {
		return err
	}
	defer store.Close()
	actor, now := cliActor(), time.Now()
	switch action {
	case "list":
		f.Limit, f.Offset = 50, (max(*page, 1)-1)*50
		items, total, err := store.ReviewItems(ctx, f)
		if err != nil {
			return err
		}
		if err := cliAccess(ctx, store, actor, now, "list review items", "review list", len(items)); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tOPENED\tREASON\tSTATE\tEMPLOYEE\tCHAT\tRULES/DAY\tASSIGNEE\tDECISION")
		for _, it := range items {
			what := strings.Join(it.Rules, ",")
			if it.Reason == supervision.ReasonSample {
				what = it.Day
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", it.ID, it.CreatedAt.Format("2006-01-02 15:04"), it.Reason, it.State,
				personName(ctx, store, compliance.PersonEmployee, it.Employee), it.ChatID, what, it.Assignee, it.Decision)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%d of %d item(s), page %d\n", len(items), total, max(*page, 1))
		return nil
	case "show":
		// The item's notes and the talk around it are read: the read is archived, as the API's are.
		if err := cliAccess(ctx, store, actor, now, "read review item", "review show "+strconv.FormatInt(id, 10), 1); err != nil {
			return err
		}
		return showReview(ctx, env, store, id)
	case "assign":
		it, err := store.AssignReview(ctx, id, supervision.Reviewer(positional[1], actor), actor, now)
		if err != nil {
			return reviewError(err, id)
		}
		fmt.Fprintf(env.stdout, "review item %d is %s, with %s\n", it.ID, it.State, it.Assignee)
		return nil
	case "decide":
		it, err := store.DecideReview(ctx, id, positional[1], *note, actor, now)
		if err != nil {
			return reviewError(err, id)
		}
		fmt.Fprintf(env.stdout, "review item %d: %s by %s; now %s\n", it.ID, it.Decision, it.DecidedBy, it.State)
		return nil
	case "sample":
		day, _ := time.Parse(time.DateOnly, completeness.LastEnded(now))
		if *dayFlag != "" {
			if day, err = time.Parse(time.DateOnly, *dayFlag); err != nil {
				return fmt.Errorf("%w: --day %q: use YYYY-MM-DD", errUsage, *dayFlag)
			}
		}
		if end, _ := completeness.EndOf(completeness.DayOf(day)); now.Before(end) {
			return fmt.Errorf("%w: day %s has not ended yet: it can be sampled from %s (midnight UTC + %s)", errUsage, completeness.DayOf(day),
				end.Format(time.RFC3339), completeness.Grace)
		}
		if *percent >= 0 {
			if *percent > 100 {
				return fmt.Errorf("%w: --percent %d: use 0 (no sample) to 100", errUsage, *percent)
			}
			if err := store.PutSetting(ctx, supervision.SettingSamplePercent, strconv.Itoa(*percent), actor, now); err != nil {
				return err
			}
		}
		res, err := store.SampleDay(ctx, day, actor, now)
		if err != nil {
			return err
		}
		switch {
		case res.Percent == 0:
			fmt.Fprintln(env.stdout, "no sample: sample_percent is 0 (set it with --percent P, or PUT /compliance/v1/reviews/settings)")
		case res.Done:
			fmt.Fprintf(env.stdout, "%s was sampled already: nothing added\n", res.Day)
		default:
			n := 0
			for _, c := range res.Conversations {
				n += c
			}
			fmt.Fprintf(env.stdout, "%s: %d conversation(s) drawn for review at %d%% from %d of %d employee(s)' %d conversation(s)\n",
				res.Day, len(res.Items), res.Percent, len(res.Sampled), len(res.Conversations), n)
		}
		return nil
	}
	// report
	fromT, toT, err := reportWindow(*from, *to)
	if err != nil {
		return err
	}
	rep, err := store.ReviewReport(ctx, fromT, toT, now)
	if err != nil {
		return err
	}
	if *out != "" {
		scope, err := api.ReportScope(rep, *format)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		m, err := exportAndArchive(ctx, store, keys, *out, scope, actor, now)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "review report written to %s with %d supervision record(s), signed (wxteams verify-export %s)\n", *out, m.Counts.Records, *out)
		return nil
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(supervision.CSVHeader, "\t")))
	for _, r := range rep.Rows {
		fmt.Fprintln(tw, strings.Join(r.CSV(), "\t"))
	}
	return tw.Flush()
}

// reportWindow reads --from and --to as the API reads from and to.
func reportWindow(from, to string) (time.Time, time.Time, error) {
	f, t, err := api.Window(from, to)
	if err != nil {
		return f, t, fmt.Errorf("%w: --%v", errUsage, err)
	}
	return f, t, nil
}

// reviewError says what to do about a refused step.
func reviewError(err error, id int64) error {
	switch {
	case errors.Is(err, supervision.ErrNoReview):
		return fmt.Errorf("there is no review item %d: `wxteams review list` shows them", id)
	case errors.Is(err, bridge.ErrInvalid):
		return fmt.Errorf("%w: %v", errUsage, err)
	case errors.Is(err, supervision.ErrState), errors.Is(err, supervision.ErrChanged):
		return fmt.Errorf("%v (`wxteams review show %d` shows where it stands)", err, id)
	}
	return err
}

func personName(ctx context.Context, store *sqlstore.Store, kind, id string) string {
	if id == "" {
		return ""
	}
	if p, ok, err := store.Person(ctx, kind, id); err == nil && ok && p.Name != "" {
		return p.Name
	}
	return id
}

func showReview(ctx context.Context, env *environment, store *sqlstore.Store, id int64) error {
	it, err := store.ReviewItem(ctx, id)
	if err != nil {
		return reviewError(err, id)
	}
	fmt.Fprintf(env.stdout, "review item %d: %s, %s\n", it.ID, it.Reason, it.State)
	fmt.Fprintf(env.stdout, "  chat %d: %s with %s\n", it.ChatID, personName(ctx, store, compliance.PersonEmployee, it.Employee), personName(ctx, store, compliance.PersonCustomer, it.Contact))
	if it.MessageID != "" {
		fmt.Fprintf(env.stdout, "  message %s flagged by %s\n", it.MessageID, strings.Join(it.Rules, ", "))
	} else {
		fmt.Fprintf(env.stdout, "  the conversation of %s, drawn in the sample\n", it.Day)
	}
	if it.Assignee != "" {
		fmt.Fprintf(env.stdout, "  assignee: %s\n", it.Assignee)
	}
	hist, err := store.ReviewHistory(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, "\nhistory:")
	for _, r := range hist {
		m, _ := compliance.DecodeMeta(r.Meta)
		c, _ := compliance.DecodeContent(r.Body)
		line := fmt.Sprintf("  %s  %-8s by %s", r.At.UTC().Format(time.RFC3339), strings.TrimPrefix(string(r.Kind), "supervision.review_"), r.Actor)
		switch r.Kind {
		case compliance.KindReviewAssigned:
			line += " to " + m.To
		case compliance.KindReviewDecided:
			line += ": " + m.Reason
			if c.Text != "" {
				line += " — " + c.Text
			}
		}
		fmt.Fprintln(env.stdout, line)
	}
	t, err := api.Around(ctx, store.ExportSource(), store, it)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, "\nconversation:")
	for _, e := range t.Entries {
		mark := "  "
		if it.MessageID != "" && e.MessageID == it.MessageID {
			mark = "▶ "
		}
		text := e.Text
		if text == "" {
			text = "(" + string(e.Kind) + ")"
		}
		fmt.Fprintf(env.stdout, "%s%s  %s: %s\n", mark, e.At.UTC().Format("2006-01-02 15:04"), e.Author.Name, text)
	}
	return nil
}

// sampleDays draws the sample of every ended UTC day (midnight + completeness.Grace) that sampling
// has not handled yet: from the day after the latest handled one (yesterday alone if none is)
// through the latest ended day, at most backfillDays of them (the latest; earlier ones skipped with
// a warning). A day that fails stops the run, so that the next run starts again there.
func sampleDays(ctx context.Context, store *sqlstore.Store, now time.Time, log *zap.Logger) {
	last, err := store.LastSampledDay(ctx)
	if err != nil {
		log.Error("daily review sample failed", zap.Error(err))
		return
	}
	days, skipped := completeness.Backfill(last, "", completeness.LastEnded(now), backfillDays)
	warnSkipped(log, "review samples", skipped)
	for _, d := range days {
		day, err := time.Parse(time.DateOnly, d)
		if err != nil {
			log.Error("daily review sample failed", zap.String("day", d), zap.Error(err))
			return
		}
		res, err := store.SampleDay(ctx, day, "system:sample", now)
		switch {
		case err != nil:
			log.Error("daily review sample failed", zap.String("day", d), zap.Error(err))
			return
		case res.Percent > 0 && !res.Done:
			log.Info("daily review sample drawn", zap.String("day", res.Day), zap.Int("items", len(res.Items)), zap.Int("percent", res.Percent))
		}
	}
}

// runSampler draws the samples of the ended days not drawn yet (sampleDays) at start and then
// hourly (a day already drawn — by this replica or another — adds nothing, so every replica may
// run it).
func runSampler(ctx context.Context, store *sqlstore.Store, clk bridge.Clock, log *zap.Logger) {
	for {
		sampleDays(ctx, store, clk.Now(), log)
		select {
		case <-ctx.Done():
			return
		case <-clk.After(time.Hour):
		}
	}
}

// cliAccess archives a read made on the command line, as the compliance API archives its calls:
// who, what was asked (never message text), how many results.
func cliAccess(ctx context.Context, store *sqlstore.Store, actor string, now time.Time, what, query string, count int) error {
	if err := archiveAdmin(ctx, store, compliance.KindAccess, actor, now, compliance.Meta{Reason: what, Query: query, Count: count}); err != nil {
		return fmt.Errorf("the read could not be archived, so it was not made: %w", err)
	}
	return nil
}
