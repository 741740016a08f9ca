package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/compliance"
)

const recordColumns = `id, stream, seq, tenant, at_us, kind, actor, chat_id, meta, body, body_key, body_hash, prev_hash, hash`

// ArchiveStream returns a stream's records in sequence order, bodies opened.
func (s *Store) ArchiveStream(ctx context.Context, stream string) ([]compliance.Record, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT `+recordColumns+` FROM archive WHERE stream = $1 ORDER BY seq`), compliance.StorableText(stream))
	if err != nil {
		return nil, fmt.Errorf("read archive stream %s: %w", stream, s.wrap(err))
	}
	defer rows.Close()
	var out []compliance.Record
	for rows.Next() {
		r, key, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("read archive stream %s: %w", stream, s.wrap(err))
		}
		if err := s.openBody(ctx, &r, key); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, s.wrap(rows.Err())
}

// openBody replaces a sealed body by its plaintext.
func (s *Store) openBody(ctx context.Context, r *compliance.Record, key string) error {
	body, err := s.openWith(ctx, conn{s, s.db}, key, r.Body, compliance.BodyAAD(r.Stream, r.Seq))
	if err != nil {
		return fmt.Errorf("archive stream %s seq %d: %w", r.Stream, r.Seq, err)
	}
	r.Body = body
	return nil
}

// ArchiveHeads returns the recorded head of every stream.
func (s *Store) ArchiveHeads(ctx context.Context) (map[string]compliance.Head, error) {
	return s.archiveHeads(ctx, s.db)
}

func (s *Store) archiveHeads(ctx context.Context, q querier) (map[string]compliance.Head, error) {
	rows, err := q.QueryContext(ctx, `SELECT stream, seq, hash FROM archive_heads`)
	if err != nil {
		return nil, fmt.Errorf("read archive heads: %w", s.wrap(err))
	}
	defer rows.Close()
	heads := map[string]compliance.Head{}
	for rows.Next() {
		var (
			stream string
			h      compliance.Head
			hash   []byte
		)
		if err := rows.Scan(&stream, &h.Seq, &hash); err != nil {
			return nil, fmt.Errorf("read archive heads: %w", s.wrap(err))
		}
		copy(h.Hash[:], hash)
		heads[stream] = h
	}
	return heads, s.wrap(rows.Err())
}

// Disposal is a stream's records up to Seq removed under retention; Hash is the last one's.
type Disposal struct {
	Stream  string
	Seq     int64
	Hash    compliance.Hash
	Records int64
}

// Disposals returns, per stream, its latest disposal (where its chain starts again).
func (s *Store) Disposals(ctx context.Context) (map[string]Disposal, error) {
	return s.disposals(ctx, s.db)
}

func (s *Store) disposals(ctx context.Context, q querier) (map[string]Disposal, error) {
	rows, err := q.QueryContext(ctx, `SELECT stream, through_seq, hash, records FROM archive_disposals ORDER BY stream, through_seq`)
	if err != nil {
		return nil, fmt.Errorf("read disposals: %w", s.wrap(err))
	}
	defer rows.Close()
	out := map[string]Disposal{}
	for rows.Next() {
		var (
			d    Disposal
			hash []byte
		)
		if err := rows.Scan(&d.Stream, &d.Seq, &hash, &d.Records); err != nil {
			return nil, fmt.Errorf("read disposals: %w", s.wrap(err))
		}
		copy(d.Hash[:], hash)
		out[d.Stream] = d
	}
	return out, s.wrap(rows.Err())
}

// VerifyArchive walks every stream of the archive in sequence order and checks its hash chain from
// the stream's beginning (or its last disposal) to its recorded head, and each record's content
// against its hash (opening sealed bodies when the archive key is configured). Every disposal must
// match the disposal event archived with it. It returns the number of records checked and, on the
// first problem, a *compliance.ChainError naming the record. On PostgreSQL it reads the heads, the
// disposals and the records in one snapshot, so that appends committing meanwhile on a live
// database do not look like records missing at the end of a chain.
func (s *Store) VerifyArchive(ctx context.Context) (int64, error) {
	var q querier = s.db
	if s.dialect == Postgres {
		snap, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
		if err != nil {
			return 0, fmt.Errorf("read archive: %w", s.wrap(err))
		}
		defer snap.Rollback() //nolint:errcheck // read only
		q = snap
	}
	heads, err := s.archiveHeads(ctx, q)
	if err != nil {
		return 0, err
	}
	disposals, err := s.disposals(ctx, q)
	if err != nil {
		return 0, err
	}
	rows, err := q.QueryContext(ctx, `SELECT `+recordColumns+` FROM archive ORDER BY stream, seq, id`)
	if err != nil {
		return 0, fmt.Errorf("read archive: %w", s.wrap(err))
	}
	defer rows.Close()
	var (
		n        int64
		v        *compliance.ChainVerifier
		seen     = map[string]bool{}
		archived = map[Disposal]bool{} // disposal events found in the chains
	)
	start := func(stream string) *compliance.ChainVerifier {
		if d, ok := disposals[stream]; ok {
			return compliance.NewChainVerifierFrom(stream, compliance.Head{Seq: d.Seq, Hash: d.Hash})
		}
		return compliance.NewChainVerifier(stream)
	}
	finish := func() error {
		if v == nil {
			return nil
		}
		return v.Finish(heads[v.Stream()])
	}
	for rows.Next() {
		r, key, err := scanRecord(rows)
		if err != nil {
			return n, fmt.Errorf("read archive: %w", s.wrap(err))
		}
		if v == nil || v.Stream() != r.Stream {
			if err := finish(); err != nil {
				return n, err
			}
			v = start(r.Stream)
			seen[r.Stream] = true
		}
		checkable := key == ""
		if key != "" && s.keys != nil {
			if err := s.openBody(ctx, &r, key); err != nil {
				return n, &compliance.ChainError{Stream: r.Stream, Seq: r.Seq, ID: r.ID, Problem: "content cannot be opened: " + err.Error()}
			}
			checkable = true
		}
		if err := v.Add(&r, checkable); err != nil {
			return n, err
		}
		if r.Kind == compliance.KindDisposed {
			if m, err := compliance.DecodeMeta(r.Meta); err == nil {
				archived[Disposal{Stream: m.Stream, Seq: m.Seq, Hash: m.HashValue(), Records: int64(m.Count)}] = true
			}
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("read archive: %w", s.wrap(err))
	}
	if err := finish(); err != nil {
		return n, err
	}
	for stream, h := range heads {
		if !seen[stream] {
			if err := start(stream).Finish(h); err != nil {
				return n, err
			}
		}
	}
	all, err := s.allDisposals(ctx, q)
	if err != nil {
		return n, err
	}
	for _, d := range all {
		if !archived[d] {
			return n, &compliance.ChainError{Stream: d.Stream, Seq: d.Seq,
				Problem: fmt.Sprintf("records 1–%d are gone, and the disposal that says so is not in the archive: removed without a purge", d.Seq)}
		}
	}
	return n, nil
}

func (s *Store) allDisposals(ctx context.Context, q querier) ([]Disposal, error) {
	rows, err := q.QueryContext(ctx, `SELECT stream, through_seq, hash, records FROM archive_disposals`)
	if err != nil {
		return nil, fmt.Errorf("read disposals: %w", s.wrap(err))
	}
	defer rows.Close()
	var out []Disposal
	for rows.Next() {
		var (
			d    Disposal
			hash []byte
		)
		if err := rows.Scan(&d.Stream, &d.Seq, &hash, &d.Records); err != nil {
			return nil, s.wrap(err)
		}
		copy(d.Hash[:], hash)
		out = append(out, d)
	}
	return out, s.wrap(rows.Err())
}

// scanRecord reads one archive row and the key its body is sealed with ("" = plaintext).
func scanRecord(row interface{ Scan(...any) error }) (compliance.Record, string, error) {
	var (
		r                              compliance.Record
		at                             int64
		kind, bodyKey                  string
		bodyHash, prevHash, recordHash sql.RawBytes // copied into the record's arrays: no allocation
	)
	if err := row.Scan(&r.ID, &r.Stream, &r.Seq, &r.Tenant, &at, &kind, &r.Actor, &r.ChatID, &r.Meta, &r.Body,
		&bodyKey, &bodyHash, &prevHash, &recordHash); err != nil {
		return r, "", err
	}
	r.At, r.Kind = fromUS(at), compliance.Kind(kind)
	copy(r.BodyHash[:], bodyHash)
	copy(r.PrevHash[:], prevHash)
	copy(r.Hash[:], recordHash)
	return r, bodyKey, nil
}

// Archive appends events in their own transaction: actions outside the engine (administrators',
// compliance officers', the record's custody).
func (s *Store) Archive(ctx context.Context, events ...compliance.Event) error {
	return s.InTx(ctx, func(tx bridge.Tx) error { return tx.Append(ctx, events...) })
}
