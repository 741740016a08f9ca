package sqlstore

import (
	"context"
	"fmt"

	"github.com/wxteams/wxteams/compliance"
)

const recordColumns = `id, stream, seq, tenant, at_us, kind, actor, chat_id, meta, body, body_key, body_hash, prev_hash, hash`

// ArchiveStream returns a stream's records in sequence order.
func (s *Store) ArchiveStream(ctx context.Context, stream string) ([]compliance.Record, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT `+recordColumns+` FROM archive WHERE stream = $1 ORDER BY seq`), compliance.StorableText(stream))
	if err != nil {
		return nil, fmt.Errorf("read archive stream %s: %w", stream, s.wrap(err))
	}
	defer rows.Close()
	var out []compliance.Record
	for rows.Next() {
		r, _, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("read archive stream %s: %w", stream, s.wrap(err))
		}
		out = append(out, r)
	}
	return out, s.wrap(rows.Err())
}

// ArchiveHeads returns the recorded head of every stream.
func (s *Store) ArchiveHeads(ctx context.Context) (map[string]compliance.Head, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT stream, seq, hash FROM archive_heads`)
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

// VerifyArchive walks every stream of the archive in sequence order and checks its hash chain
// against the recorded heads. It returns the number of records checked and, on the first problem,
// a *compliance.ChainError naming the record.
func (s *Store) VerifyArchive(ctx context.Context) (int64, error) {
	heads, err := s.ArchiveHeads(ctx)
	if err != nil {
		return 0, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+recordColumns+` FROM archive ORDER BY stream, seq, id`)
	if err != nil {
		return 0, fmt.Errorf("read archive: %w", s.wrap(err))
	}
	defer rows.Close()
	var (
		n    int64
		v    *compliance.ChainVerifier
		seen = map[string]bool{}
	)
	finish := func() error {
		if v == nil {
			return nil
		}
		return v.Finish(heads[v.Stream()])
	}
	for rows.Next() {
		r, plaintext, err := scanRecord(rows)
		if err != nil {
			return n, fmt.Errorf("read archive: %w", s.wrap(err))
		}
		if v == nil || v.Stream() != r.Stream {
			if err := finish(); err != nil {
				return n, err
			}
			v = compliance.NewChainVerifier(r.Stream)
			seen[r.Stream] = true
		}
		if err := v.Add(&r, plaintext); err != nil {
			return n, err
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
		if !seen[stream] && h.Seq > 0 {
			return n, compliance.NewChainVerifier(stream).Finish(h)
		}
	}
	return n, nil
}

// scanRecord reads one archive row; plaintext reports whether its body is unencrypted.
func scanRecord(row interface{ Scan(...any) error }) (compliance.Record, bool, error) {
	var (
		r                              compliance.Record
		at                             int64
		kind, bodyKey                  string
		bodyHash, prevHash, recordHash []byte
	)
	if err := row.Scan(&r.ID, &r.Stream, &r.Seq, &r.Tenant, &at, &kind, &r.Actor, &r.ChatID, &r.Meta, &r.Body,
		&bodyKey, &bodyHash, &prevHash, &recordHash); err != nil {
		return r, false, err
	}
	r.At, r.Kind = fromUS(at), compliance.Kind(kind)
	copy(r.BodyHash[:], bodyHash)
	copy(r.PrevHash[:], prevHash)
	copy(r.Hash[:], recordHash)
	return r, bodyKey == "", nil
}
