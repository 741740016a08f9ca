package sqlstore

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/compliance"
)

// MakeCheckpoint signs a checkpoint over every stream's current head (compliance/checkpoint.go),
// stores it with the leaves that changed since the previous one, and archives it in the admin
// stream. Replicas take turns; it returns nil, nil when nothing changed since the last checkpoint.
func (s *Store) MakeCheckpoint(ctx context.Context, key ed25519.PrivateKey, actor string, now time.Time) (*compliance.Checkpoint, error) {
	var cp *compliance.Checkpoint
	err := s.InTx(ctx, func(btx bridge.Tx) error {
		t := btx.(*tx)
		cp = nil
		var one int
		if err := t.queryRow(ctx, `SELECT id FROM checkpoint_lock WHERE id = 1 FOR UPDATE`).Scan(&one); err != nil {
			return fmt.Errorf("checkpoint lock: %w", t.s.wrap(err))
		}
		// One statement, so the leaves are one consistent snapshot.
		rows, err := t.query(ctx, `SELECT h.stream, h.seq, h.hash, COALESCE(c.seq, -1) FROM archive_heads h
			LEFT JOIN checkpoint_heads c ON c.stream = h.stream WHERE h.seq > 0 ORDER BY h.stream`)
		if err != nil {
			return fmt.Errorf("read heads: %w", err)
		}
		var leaves, changed []compliance.Leaf
		for rows.Next() {
			var (
				l       compliance.Leaf
				hash    []byte
				prevSeq int64
			)
			if err := rows.Scan(&l.Stream, &l.Seq, &hash, &prevSeq); err != nil {
				rows.Close()
				return t.s.wrap(err)
			}
			copy(l.Hash[:], hash)
			leaves = append(leaves, l)
			if prevSeq != l.Seq {
				changed = append(changed, l)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return t.s.wrap(err)
		}
		if len(changed) == 0 {
			return nil
		}
		// The database orders by its collation; the tree is in byte order.
		compliance.SortLeaves(leaves)
		cp = compliance.NewCheckpoint(leaves, now, key)
		if err := t.queryRow(ctx, `INSERT INTO checkpoints (at_us, streams, records, root, key_id, signature, heads)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, us(cp.At), cp.Streams, cp.Records, cp.Root[:], cp.KeyID,
			cp.Signature, compliance.EncodeLeaves(changed)).Scan(&cp.ID); err != nil {
			return fmt.Errorf("store checkpoint: %w", t.s.wrap(err))
		}
		for _, l := range changed {
			if _, err := t.exec(ctx, `INSERT INTO checkpoint_heads (stream, seq, hash) VALUES ($1, $2, $3)
				ON CONFLICT (stream) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash`, l.Stream, l.Seq, l.Hash[:]); err != nil {
				return fmt.Errorf("store checkpoint leaves: %w", err)
			}
		}
		return t.Append(ctx, compliance.Event{Stream: compliance.AdminStream, At: now, Kind: compliance.KindCheckpoint, Actor: actor,
			Meta: compliance.Meta{Hash: cp.Root.String(), Count: int(cp.Streams), Seq: cp.Records, KeyID: cp.KeyID}})
	})
	return cp, err
}

// Checkpoints returns the checkpoints, oldest first, each with the leaves it changed.
func (s *Store) Checkpoints(ctx context.Context) ([]*compliance.Checkpoint, [][]compliance.Leaf, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, at_us, streams, records, root, key_id, signature, heads FROM checkpoints ORDER BY id`)
	if err != nil {
		return nil, nil, fmt.Errorf("read checkpoints: %w", s.wrap(err))
	}
	defer rows.Close()
	var (
		cps    []*compliance.Checkpoint
		deltas [][]compliance.Leaf
	)
	for rows.Next() {
		var (
			cp          compliance.Checkpoint
			at          int64
			root, heads []byte
		)
		if err := rows.Scan(&cp.ID, &at, &cp.Streams, &cp.Records, &root, &cp.KeyID, &cp.Signature, &heads); err != nil {
			return nil, nil, s.wrap(err)
		}
		cp.At = fromUS(at)
		copy(cp.Root[:], root)
		delta, err := compliance.DecodeLeaves(heads)
		if err != nil {
			return nil, nil, fmt.Errorf("checkpoint %d: %w", cp.ID, err)
		}
		cps = append(cps, &cp)
		deltas = append(deltas, delta)
	}
	return cps, deltas, s.wrap(rows.Err())
}

// CheckpointError names the first checkpoint that does not verify.
type CheckpointError struct {
	ID      int64
	At      time.Time
	Problem string
	Err     error // the underlying error, if any (compliance.ErrBadSignature)
}

func (e *CheckpointError) Error() string {
	return fmt.Sprintf("checkpoint %d (%s): %s", e.ID, e.At.Format(time.RFC3339), e.Problem)
}

func (e *CheckpointError) Unwrap() error { return e.Err }

// VerifyCheckpoints checks every checkpoint: its signature (when pub is given), its root against
// its leaves, the checkpoints archived in the admin stream, and that the archive still holds each
// leaf — the record at that stream and sequence number with that hash, or a disposal that removed
// it — so a stream cut short or rewritten after a checkpoint is caught. It returns how many it
// checked and the latest.
func (s *Store) VerifyCheckpoints(ctx context.Context, pub ed25519.PublicKey) (int, *compliance.Checkpoint, error) {
	cps, deltas, err := s.Checkpoints(ctx)
	if err != nil || len(cps) == 0 {
		return 0, nil, err
	}
	heads, err := s.ArchiveHeads(ctx)
	if err != nil {
		return 0, nil, err
	}
	disposals, err := s.Disposals(ctx)
	if err != nil {
		return 0, nil, err
	}
	archived, err := s.archivedCheckpoints(ctx)
	if err != nil {
		return 0, nil, err
	}
	var leaves []compliance.Leaf // the full set, in tree order
	for i, cp := range cps {
		fail := func(format string, args ...any) (int, *compliance.Checkpoint, error) {
			return i, nil, &CheckpointError{ID: cp.ID, At: cp.At, Problem: fmt.Sprintf(format, args...)}
		}
		if pub != nil {
			if err := cp.VerifySignature(pub); err != nil {
				return i, nil, &CheckpointError{ID: cp.ID, At: cp.At, Problem: err.Error(), Err: err}
			}
		}
		for _, l := range deltas[i] {
			at, found := slices.BinarySearchFunc(leaves, l.Stream, func(a compliance.Leaf, stream string) int { return strings.Compare(a.Stream, stream) })
			if found {
				leaves[at] = l
			} else {
				leaves = slices.Insert(leaves, at, l)
			}
		}
		if got := compliance.MerkleRoot(leaves); got != cp.Root || int64(len(leaves)) != cp.Streams {
			return fail("its stored leaves do not make its signed root")
		}
		if !archived[cp.Root] {
			return fail("not in the admin stream: stored without being archived")
		}
		for _, l := range deltas[i] {
			if problem := s.leafProblem(ctx, l, heads[l.Stream], disposals[l.Stream]); problem != "" {
				return fail("stream %s seq %d: %s", l.Stream, l.Seq, problem)
			}
		}
	}
	return len(cps), cps[len(cps)-1], nil
}

// leafProblem says why the archive no longer agrees with a checkpoint leaf, or "".
func (s *Store) leafProblem(ctx context.Context, l compliance.Leaf, head compliance.Head, d Disposal) string {
	if l.Seq > head.Seq {
		return fmt.Sprintf("the stream now ends at seq %d: records signed for were removed", head.Seq)
	}
	if l.Seq <= d.Seq {
		if l.Seq == d.Seq && l.Hash != d.Hash {
			return "the disposal's hash is not the signed one"
		}
		return ""
	}
	var (
		hash []byte
		got  compliance.Hash
	)
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT hash FROM archive WHERE stream = $1 AND seq = $2`), l.Stream, l.Seq).Scan(&hash)
	switch {
	case isNoRows(err):
		return "the record is missing"
	case err != nil:
		return "cannot read the record: " + s.wrap(err).Error()
	case copy(got[:], hash) != len(got) || got != l.Hash:
		return "the record's hash is not the signed one: the chain was rewritten"
	}
	return ""
}

func (s *Store) archivedCheckpoints(ctx context.Context) (map[compliance.Hash]bool, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT meta FROM archive WHERE stream = $1 AND kind = $2`), compliance.AdminStream, string(compliance.KindCheckpoint))
	if err != nil {
		return nil, fmt.Errorf("read archived checkpoints: %w", s.wrap(err))
	}
	defer rows.Close()
	out := map[compliance.Hash]bool{}
	for rows.Next() {
		var meta []byte
		if err := rows.Scan(&meta); err != nil {
			return nil, s.wrap(err)
		}
		if m, err := compliance.DecodeMeta(meta); err == nil {
			out[m.HashValue()] = true
		}
	}
	return out, s.wrap(rows.Err())
}
