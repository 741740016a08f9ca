package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wxteams/wxteams/compliance"
)

// Encryption at rest (compliance/crypto.go): with a keyring, archived bodies, queued and outgoing
// messages and media are sealed with the tenant's current data key before they reach the database,
// and opened when read. Without one (tests) they are stored as plaintext, and marked so.
//
// The data keys live in one place, the keys cache below, as ciphers only: a raw data key is
// zeroed as soon as its cipher is made, and rotating the data keys empties the cache. (Go cannot
// wipe the expanded key a cipher keeps inside crypto/aes; dropping the cipher leaves it to the
// garbage collector. serve also disables core dumps.)

// keys caches data keys. Keys created inside a transaction are cached only once it commits, so a
// rolled-back key is never used.
type keys struct {
	ring    *compliance.Keyring
	mu      sync.Mutex
	byID    map[string]*compliance.DataKey
	current map[string]currentKey // tenant → its current key, re-read after currentTTL
}

type currentKey struct {
	id      string
	checked time.Time
}

// currentTTL bounds how long a replica keeps sealing with a key another replica has retired.
const currentTTL = time.Minute

// UseKeyring turns encryption at rest on (nil turns it off). Call it before the store is used.
func (s *Store) UseKeyring(ring *compliance.Keyring) {
	if ring == nil {
		s.keys = nil
		return
	}
	s.keys = &keys{ring: ring, byID: map[string]*compliance.DataKey{}, current: map[string]currentKey{}}
}

// Encrypted reports whether the store seals content.
func (s *Store) Encrypted() bool { return s.keys != nil }

// ErrNoKeyring means sealed content was read by a store without the archive key.
var ErrNoKeyring = errors.New("the content is encrypted and no archive key is configured (WXTEAMS_ARCHIVE_KEY)")

// sealer returns the data key to seal tenant's new values with, creating the tenant's first key if
// needed (in this transaction; cached after commit). It returns nil when encryption is off.
func (t *tx) sealer(ctx context.Context, tenant string) (*compliance.DataKey, error) {
	k := t.s.keys
	if k == nil {
		return nil, nil
	}
	if dk := t.pendingKeys[tenant]; dk != nil {
		return dk, nil
	}
	now := time.Now()
	k.mu.Lock()
	cur, ok := k.current[tenant]
	var dk *compliance.DataKey
	if ok && now.Sub(cur.checked) < currentTTL {
		dk = k.byID[cur.id]
	}
	k.mu.Unlock()
	if dk != nil {
		return dk, nil
	}
	id, err := t.currentKeyID(ctx, tenant)
	if errors.Is(err, errNoCurrentKey) {
		id, err = t.createKey(ctx, tenant)
	}
	if err != nil {
		return nil, err
	}
	dk, err = t.s.dataKey(ctx, t.conn, id)
	if err != nil {
		return nil, err
	}
	if t.pendingKeys == nil {
		t.pendingKeys = map[string]*compliance.DataKey{}
	}
	t.pendingKeys[tenant] = dk
	return dk, nil
}

var errNoCurrentKey = errors.New("no current data key")

func (t *tx) currentKeyID(ctx context.Context, tenant string) (string, error) {
	var id string
	err := t.queryRow(ctx, `SELECT id FROM data_keys WHERE tenant = $1 AND retired_us = 0`, tenant).Scan(&id)
	if err != nil {
		if isNoRows(err) {
			return "", errNoCurrentKey
		}
		return "", fmt.Errorf("current data key of tenant %q: %w", tenant, t.s.wrap(err))
	}
	return id, nil
}

// createKey makes the tenant's current key. If another transaction makes one first, its key wins.
func (t *tx) createKey(ctx context.Context, tenant string) (string, error) {
	dek, wrapped, err := t.s.keys.ring.NewDataKey(tenant)
	clear(dek) // made for the database; read back through dataKey like any other
	if err != nil {
		return "", err
	}
	id := newKeyID()
	_, err = t.exec(ctx, `INSERT INTO data_keys (id, tenant, kek_id, wrapped, created_us) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (tenant) WHERE retired_us = 0 DO NOTHING`, id, tenant, t.s.keys.ring.Current(), wrapped, us(time.Now()))
	if err != nil {
		return "", fmt.Errorf("create data key for tenant %q: %w", tenant, err)
	}
	return t.currentKeyID(ctx, tenant)
}

func newKeyID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "dek-" + hex.EncodeToString(b)
}

// committed caches a transaction's keys once it has committed.
func (t *tx) committed() {
	k := t.s.keys
	if k == nil || len(t.pendingKeys) == 0 {
		return
	}
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	for tenant, dk := range t.pendingKeys {
		k.byID[dk.ID] = dk
		k.current[tenant] = currentKey{id: dk.ID, checked: now}
	}
}

// dataKey returns the cipher of key id, unwrapping it with the keyring. Keys that exist in the
// database are immutable, so once unwrapped they are cached for good — except that a key read
// inside a transaction is not cached until commit (the caller does that).
func (s *Store) dataKey(ctx context.Context, c conn, id string) (*compliance.DataKey, error) {
	k := s.keys
	if k == nil {
		return nil, ErrNoKeyring
	}
	k.mu.Lock()
	dk := k.byID[id]
	k.mu.Unlock()
	if dk != nil {
		return dk, nil
	}
	var (
		tenant, kekID string
		wrapped       []byte
	)
	err := c.queryRow(ctx, `SELECT tenant, kek_id, wrapped FROM data_keys WHERE id = $1`, id).Scan(&tenant, &kekID, &wrapped)
	if err != nil {
		if isNoRows(err) {
			return nil, fmt.Errorf("data key %s is missing from the database", id)
		}
		return nil, fmt.Errorf("read data key %s: %w", id, s.wrap(err))
	}
	dek, err := k.ring.Unwrap(kekID, tenant, wrapped)
	if err != nil {
		return nil, fmt.Errorf("data key %s: %w", id, err)
	}
	defer clear(dek)
	return compliance.NewDataKeyCipher(id, dek)
}

// openWith decrypts a sealed value; key "" means it was stored as plaintext.
func (s *Store) openWith(ctx context.Context, c conn, keyID string, sealed, aad []byte) ([]byte, error) {
	if keyID == "" || sealed == nil {
		return sealed, nil
	}
	dk, err := s.dataKey(ctx, c, keyID)
	if err != nil {
		return nil, err
	}
	if !c.inTx() {
		s.cacheKey(dk)
	}
	plain, err := dk.Open(sealed, aad)
	if err != nil {
		return nil, fmt.Errorf("open content sealed with %s: %w", keyID, err)
	}
	return plain, nil
}

func (s *Store) cacheKey(dk *compliance.DataKey) {
	s.keys.mu.Lock()
	s.keys.byID[dk.ID] = dk
	s.keys.mu.Unlock()
}

// sealFor seals plaintext with tenant's current key; encryption off returns it unchanged and "".
func (t *tx) sealFor(ctx context.Context, tenant string, plaintext, aad []byte) (sealed []byte, keyID string, err error) {
	dk, err := t.sealer(ctx, tenant)
	if err != nil || dk == nil {
		return plaintext, "", err
	}
	return dk.Seal(plaintext, aad), dk.ID, nil
}

// DataKeyInfo describes a data key, for operators.
type DataKeyInfo struct {
	ID, Tenant, KEK string
	Created         time.Time
	Retired         time.Time // zero while current
}

// DataKeys lists the data keys.
func (s *Store) DataKeys(ctx context.Context) ([]DataKeyInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, tenant, kek_id, created_us, retired_us FROM data_keys ORDER BY created_us, id`)
	if err != nil {
		return nil, fmt.Errorf("list data keys: %w", s.wrap(err))
	}
	defer rows.Close()
	var out []DataKeyInfo
	for rows.Next() {
		var (
			k                DataKeyInfo
			created, retired int64
		)
		if err := rows.Scan(&k.ID, &k.Tenant, &k.KEK, &created, &retired); err != nil {
			return nil, s.wrap(err)
		}
		k.Created = fromUS(created)
		if retired != 0 {
			k.Retired = fromUS(retired)
		}
		out = append(out, k)
	}
	return out, s.wrap(rows.Err())
}

// RotateDataKeys retires every current data key: new values are sealed with fresh keys (made on
// first use), old values keep opening with the keys that sealed them. It empties this store's cache
// of data keys (retired ones are unwrapped again only when old content is read). It returns how
// many it retired.
func (s *Store) RotateDataKeys(ctx context.Context, now time.Time) (int64, error) {
	r, err := conn{s, s.db}.exec(ctx, `UPDATE data_keys SET retired_us = $1 WHERE retired_us = 0`, us(now))
	if err != nil {
		return 0, fmt.Errorf("rotate data keys: %w", err)
	}
	if k := s.keys; k != nil {
		k.mu.Lock()
		k.current = map[string]currentKey{}
		k.byID = map[string]*compliance.DataKey{}
		k.mu.Unlock()
	}
	return r.RowsAffected()
}

// RewrapDataKeys wraps every data key not yet under the keyring's current KEK with it (after a KEK
// rotation, with the old KEK still configured as previous). No sealed value is rewritten.
func (s *Store) RewrapDataKeys(ctx context.Context) (int, error) {
	if s.keys == nil {
		return 0, ErrNoKeyring
	}
	ring := s.keys.ring
	rows, err := s.db.QueryContext(ctx, `SELECT id, tenant, kek_id, wrapped FROM data_keys WHERE kek_id <> $1`, ring.Current())
	if err != nil {
		return 0, fmt.Errorf("read data keys: %w", s.wrap(err))
	}
	type old struct {
		id, tenant, kek string
		wrapped         []byte
	}
	var todo []old
	for rows.Next() {
		var o old
		if err := rows.Scan(&o.id, &o.tenant, &o.kek, &o.wrapped); err != nil {
			rows.Close()
			return 0, s.wrap(err)
		}
		todo = append(todo, o)
	}
	rows.Close()
	for i, o := range todo {
		wrapped, err := ring.Rewrap(o.kek, o.tenant, o.wrapped)
		if err != nil {
			return i, fmt.Errorf("data key %s: %w", o.id, err)
		}
		if _, err := (conn{s, s.db}).exec(ctx, `UPDATE data_keys SET kek_id = $2, wrapped = $3 WHERE id = $1 AND kek_id = $4`, o.id, ring.Current(), wrapped, o.kek); err != nil {
			return i, fmt.Errorf("rewrap data key %s: %w", o.id, err)
		}
	}
	return len(todo), nil
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
