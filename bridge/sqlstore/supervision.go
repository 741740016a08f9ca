package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/supervision"
)

// This file keeps the firm's supervision rules, the groups they name, and flagged messages' review
// items. Every change is archived in the supervision stream in the same transaction, with who made it.

// AddReview opens a review item for a flagged message (once per message).
func (t *tx) AddReview(ctx context.Context, it *supervision.ReviewItem) error {
	err := t.queryRow(ctx, `INSERT INTO review_items (tenant, chat_id, message_id, employee_id, contact, reason, rules, day, state, created_us)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (message_id) WHERE reason = 'flag' DO NOTHING RETURNING id`,
		it.Tenant, it.ChatID, it.MessageID, it.Employee, it.Contact, it.Reason, strings.Join(it.Rules, ","), it.Day,
		cmp.Or(it.State, supervision.StateOpen), us(it.CreatedAt)).Scan(&it.ID)
	if isNoRows(err) {
		err = t.queryRow(ctx, `SELECT id FROM review_items WHERE message_id = $1 AND reason = 'flag'`, it.MessageID).Scan(&it.ID)
	}
	if err != nil {
		return fmt.Errorf("open review of %s: %w", it.MessageID, t.s.wrap(err))
	}
	return nil
}

// SupervisionRules returns the rules in force (the latest version of each rule not deleted), by
// id, and the supervision groups by name: what the engine compiles.
func (s *Store) SupervisionRules(ctx context.Context) ([]supervision.Rule, map[string][]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT r.spec FROM supervision_rules r
		JOIN (SELECT rule_id, MAX(version) AS version FROM supervision_rules GROUP BY rule_id) l
		  ON l.rule_id = r.rule_id AND l.version = r.version
		WHERE NOT r.deleted ORDER BY r.rule_id`)
	if err != nil {
		return nil, nil, fmt.Errorf("read rules: %w", s.wrap(err))
	}
	rules, err := scanRules(rows)
	if err != nil {
		return nil, nil, err
	}
	groups, err := s.SupervisionGroups(ctx)
	return rules, groups, err
}

// RuleHistory returns every version of a rule, oldest first.
func (s *Store) RuleHistory(ctx context.Context, id string) ([]supervision.Rule, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT spec FROM supervision_rules WHERE rule_id = $1 ORDER BY version`), id)
	if err != nil {
		return nil, fmt.Errorf("read rule %s: %w", id, s.wrap(err))
	}
	rules, err := scanRules(rows)
	if err == nil && len(rules) == 0 {
		err = fmt.Errorf("rule %q: %w", id, supervision.ErrNoRule)
	}
	return rules, err
}

func scanRules(rows *sql.Rows) ([]supervision.Rule, error) {
	defer rows.Close()
	var out []supervision.Rule
	for rows.Next() {
		var spec string
		if err := rows.Scan(&spec); err != nil {
			return nil, fmt.Errorf("read rules: %w", err)
		}
		var r supervision.Rule
		if err := json.Unmarshal([]byte(spec), &r); err != nil {
			return nil, fmt.Errorf("read rules: a stored rule does not decode: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	return out, nil
}

// PutRule stores a new version of a rule (version 1 for a new id) and archives the change. The
// rule is validated first; the caller's Version, if set, must be the current one (an edit made
// on a stale copy is refused with bridge.ErrConflict, so two officers cannot overwrite each other).
func (s *Store) PutRule(ctx context.Context, r supervision.Rule, actor string, now time.Time) (supervision.Rule, error) {
	if err := r.Validate(); err != nil {
		return r, fmt.Errorf("%w: %v", supervision.ErrInvalid, err)
	}
	if err := s.fitsRules(ctx, r); err != nil {
		return r, err
	}
	return s.writeRule(ctx, r, false, actor, now)
}

// fitsRules refuses a rule that names a supervision group nobody made (it would cover no one while
// listed as in force), or that the rules in force could not be compiled with (every replica would
// keep the old rules, and a restart would refuse to start). Whoever writes rules — the API, the
// CLI — gets the same answer.
func (s *Store) fitsRules(ctx context.Context, r supervision.Rule) error {
	rules, groups, err := s.SupervisionRules(ctx)
	if err != nil {
		return err
	}
	for _, g := range r.Groups {
		if _, ok := groups[g]; !ok {
			return fmt.Errorf("%w: rule %s: there is no supervision group %q; create it first", supervision.ErrInvalid, r.ID, g)
		}
	}
	rules = slices.DeleteFunc(rules, func(x supervision.Rule) bool { return x.ID == r.ID })
	if _, err := supervision.Compile(append(rules, r), groups); err != nil {
		return fmt.Errorf("%w: the rules in force with this one do not compile: %v", supervision.ErrInvalid, err)
	}
	return nil
}

// DeleteRule ends a rule: a last version marked deleted, archived. version, if not 0, must be the
// current one.
func (s *Store) DeleteRule(ctx context.Context, id string, version int, actor string, now time.Time) (supervision.Rule, error) {
	hist, err := s.RuleHistory(ctx, id)
	if err != nil {
		return supervision.Rule{}, err
	}
	last := hist[len(hist)-1]
	if last.Deleted {
		return last, fmt.Errorf("rule %q: %w", id, supervision.ErrNoRule)
	}
	if version == 0 {
		version = last.Version
	}
	last.Version = version
	return s.writeRule(ctx, last, true, actor, now)
}

func (s *Store) writeRule(ctx context.Context, r supervision.Rule, deleted bool, actor string, now time.Time) (supervision.Rule, error) {
	expect := r.Version
	r.Deleted, r.ChangedBy, r.ChangedAt = deleted, actor, now.UTC().Truncate(time.Microsecond)
	err := s.InTx(ctx, func(btx bridge.Tx) error {
		t := btx.(*tx)
		var current int
		var wasDeleted bool
		err := t.queryRow(ctx, `SELECT version, deleted FROM supervision_rules WHERE rule_id = $1 ORDER BY version DESC LIMIT 1`, r.ID).Scan(&current, &wasDeleted)
		if err != nil && !isNoRows(err) {
			return fmt.Errorf("rule %s: %w", r.ID, t.s.wrap(err))
		}
		if expect == 0 && current > 0 && !wasDeleted && !deleted {
			return fmt.Errorf("rule %s exists (version %d): edit that version, or choose another id: %w", r.ID, current, supervision.ErrStale)
		}
		if expect != 0 && expect != current {
			return fmt.Errorf("rule %s is at version %d, not %d (someone changed it meanwhile; reload it): %w", r.ID, current, expect, supervision.ErrStale)
		}
		r.Version = current + 1
		spec, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("rule %s: %w", r.ID, err)
		}
		// Two writers of the same version collide on the primary key: the later one is told it is stale.
		if _, err := t.exec(ctx, `INSERT INTO supervision_rules (rule_id, version, spec, deleted, actor, at_us) VALUES ($1, $2, $3, $4, $5, $6)`,
			r.ID, r.Version, string(spec), deleted, actor, us(now)); err != nil {
			if err = t.s.wrap(err); errors.Is(err, bridge.ErrConflict) {
				return fmt.Errorf("rule %s was changed meanwhile; reload it: %w", r.ID, supervision.ErrStale)
			}
			return fmt.Errorf("rule %s: %w", r.ID, err)
		}
		change := "changed"
		switch {
		case deleted:
			change = "deleted"
		case current == 0 || wasDeleted:
			change = "created"
		}
		if err := t.bumpRulesRevision(ctx); err != nil {
			return err
		}
		return t.Append(ctx, compliance.Event{Stream: compliance.SupervisionStream, At: now, Kind: compliance.KindRuleChanged, Actor: actor,
			Meta:    compliance.Meta{Subject: r.ID, Version: strconv.Itoa(r.Version), Reason: change, Action: string(r.Action)},
			Content: compliance.Content{Payload: spec}})
	})
	return r, err
}

// SupervisionGroups returns each supervision group's employees, by name.
func (s *Store) SupervisionGroups(ctx context.Context) (map[string][]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, employee_id FROM supervision_groups ORDER BY name, employee_id`)
	if err != nil {
		return nil, fmt.Errorf("read groups: %w", s.wrap(err))
	}
	defer rows.Close()
	groups := map[string][]string{}
	for rows.Next() {
		var name, emp string
		if err := rows.Scan(&name, &emp); err != nil {
			return nil, fmt.Errorf("read groups: %w", err)
		}
		groups[name] = append(groups[name], emp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read groups: %w", err)
	}
	return groups, nil
}

// SetGroup sets a supervision group's employees (none: the group is removed) and archives who was
// added and removed.
func (s *Store) SetGroup(ctx context.Context, name string, employees []string, actor string, now time.Time) error {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > supervision.MaxNameBytes {
		return fmt.Errorf("%w: a group name of 1–%d bytes is required", supervision.ErrInvalid, supervision.MaxNameBytes)
	}
	want := slices.Compact(slices.Sorted(slices.Values(employees)))
	return s.InTx(ctx, func(btx bridge.Tx) error {
		t := btx.(*tx)
		rows, err := t.query(ctx, `SELECT employee_id FROM supervision_groups WHERE name = $1`, name)
		if err != nil {
			return fmt.Errorf("group %s: %w", name, t.s.wrap(err))
		}
		var had []string
		for rows.Next() {
			var e string
			if err := rows.Scan(&e); err != nil {
				rows.Close()
				return fmt.Errorf("group %s: %w", name, err)
			}
			had = append(had, e)
		}
		rows.Close()
		var added, removed []string
		for _, e := range want {
			if e == "" {
				return fmt.Errorf("%w: an empty employee id in group %s", supervision.ErrInvalid, name)
			}
			if !slices.Contains(had, e) {
				added = append(added, e)
				if _, err := t.exec(ctx, `INSERT INTO supervision_groups (name, employee_id) VALUES ($1, $2)`, name, e); err != nil {
					return fmt.Errorf("group %s: %w", name, t.s.wrap(err))
				}
			}
		}
		for _, e := range had {
			if !slices.Contains(want, e) {
				removed = append(removed, e)
				if _, err := t.exec(ctx, `DELETE FROM supervision_groups WHERE name = $1 AND employee_id = $2`, name, e); err != nil {
					return fmt.Errorf("group %s: %w", name, t.s.wrap(err))
				}
			}
		}
		if len(added)+len(removed) == 0 {
			return nil
		}
		if err := t.bumpRulesRevision(ctx); err != nil {
			return err
		}
		return t.Append(ctx, compliance.Event{Stream: compliance.SupervisionStream, At: now, Kind: compliance.KindGroupChanged, Actor: actor,
			Meta: compliance.Meta{Subject: name, Added: added, Removed: removed}})
	})
}

// RulesRevision changes whenever a rule or a group does: replicas poll it to know when to
// compile the rules again.
func (s *Store) RulesRevision(ctx context.Context) (int64, error) {
	v, err := s.Setting(ctx, settingRulesRevision)
	if err != nil || v == "" {
		return 0, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("rules revision %q: %w", v, err)
	}
	return n, nil
}

const settingRulesRevision = "rules_revision"

func (t *tx) bumpRulesRevision(ctx context.Context) error {
	if _, err := t.exec(ctx, `INSERT INTO supervision_settings (name, value) VALUES ($1, '1')
		ON CONFLICT (name) DO UPDATE SET value = CAST(CAST(supervision_settings.value AS BIGINT) + 1 AS TEXT)`, settingRulesRevision); err != nil {
		return fmt.Errorf("rules revision: %w", t.s.wrap(err))
	}
	return nil
}

// Setting reads a supervision setting ("" when unset).
func (s *Store) Setting(ctx context.Context, name string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT value FROM supervision_settings WHERE name = $1`), name).Scan(&v)
	if isNoRows(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("setting %s: %w", name, s.wrap(err))
	}
	return v, nil
}

// PutSetting changes a supervision setting and archives the change.
func (s *Store) PutSetting(ctx context.Context, name, value, actor string, now time.Time) error {
	return s.InTx(ctx, func(btx bridge.Tx) error {
		t := btx.(*tx)
		var old string
		if err := t.queryRow(ctx, `SELECT value FROM supervision_settings WHERE name = $1`, name).Scan(&old); err != nil && !isNoRows(err) {
			return fmt.Errorf("setting %s: %w", name, t.s.wrap(err))
		}
		if old == value {
			return nil
		}
		if _, err := t.exec(ctx, `INSERT INTO supervision_settings (name, value) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, name, value); err != nil {
			return fmt.Errorf("setting %s: %w", name, t.s.wrap(err))
		}
		return t.Append(ctx, compliance.Event{Stream: compliance.SupervisionStream, At: now, Kind: compliance.KindSettingChanged, Actor: actor,
			Meta: compliance.Meta{Subject: name, From: old, To: value}})
	})
}
