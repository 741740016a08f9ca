package sqlstore

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The WeChat access token authority's storage (wechat.TokenStore): one row per AppID holding the
// token every replica uses, and the lease of the one replica allowed to refresh it.

// ErrLeaseLost means a refresher's lease ran out and another replica took it over.
var ErrLeaseLost = errors.New("access token lease lost to another replica")

// LoadWeChatToken returns the stored token and its expiry; "" when there is none.
func (s *Store) LoadWeChatToken(ctx context.Context, appID string) (string, time.Time, error) {
	var (
		value   string
		expires int64
	)
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT token, expires_us FROM wechat_tokens WHERE app_id = $1`), appID).Scan(&value, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("load wechat token: %w", s.wrap(err))
	}
	if sealed, ok := strings.CutPrefix(value, sealedTokenPrefix); ok {
		// A token that does not open (the key-encryption key changed, or none is set) is as
		// good as none: the authority fetches a new one.
		raw, err := base64.StdEncoding.DecodeString(sealed)
		if err != nil || s.keys == nil {
			return "", time.Time{}, nil
		}
		plain, err := s.keys.ring.OpenSecret(raw, tokenAAD(appID))
		if err != nil {
			return "", time.Time{}, nil
		}
		value = string(plain)
	}
	return value, fromUS(expires), nil
}

// With a keyring the access token is stored sealed with the key-encryption key: it is a bearer
// credential for the Official Account.
const sealedTokenPrefix = "sealed:"

func tokenAAD(appID string) []byte { return []byte("wxteams wechat token\x00" + appID) }

// LeaseWeChatToken takes the refresh lease for owner until `until`, unless another owner holds one
// that has not run out.
func (s *Store) LeaseWeChatToken(ctx context.Context, appID, owner string, now, until time.Time) (bool, error) {
	r, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO wechat_tokens (app_id, lease_owner, lease_until_us) VALUES ($1, $2, $4)
		ON CONFLICT (app_id) DO UPDATE SET lease_owner = $2, lease_until_us = $4
		WHERE wechat_tokens.lease_owner = $2 OR wechat_tokens.lease_until_us <= $3`), appID, owner, us(now), us(until))
	if err != nil {
		return false, fmt.Errorf("lease wechat token: %w", s.wrap(err))
	}
	n, err := r.RowsAffected()
	return n == 1, err
}

// StoreWeChatToken saves a new token and ends owner's lease. It refuses (ErrLeaseLost) when owner no
// longer holds the lease: another replica is refreshing, and its token will supersede this one.
func (s *Store) StoreWeChatToken(ctx context.Context, appID, owner, value string, expires time.Time) error {
	if s.keys != nil {
		value = sealedTokenPrefix + base64.StdEncoding.EncodeToString(s.keys.ring.SealSecret([]byte(value), tokenAAD(appID)))
	}
	r, err := s.db.ExecContext(ctx, s.rebind(`UPDATE wechat_tokens SET token = $3, expires_us = $4, lease_owner = '', lease_until_us = 0
		WHERE app_id = $1 AND lease_owner = $2`), appID, owner, value, us(expires))
	if err != nil {
		return fmt.Errorf("store wechat token: %w", s.wrap(err))
	}
	if n, _ := r.RowsAffected(); n != 1 {
		return ErrLeaseLost
	}
	return nil
}

// ReleaseWeChatTokenLease ends owner's lease, if it still holds it.
func (s *Store) ReleaseWeChatTokenLease(ctx context.Context, appID, owner string) error {
	_, err := s.db.ExecContext(ctx, s.rebind(`UPDATE wechat_tokens SET lease_owner = '', lease_until_us = 0
		WHERE app_id = $1 AND lease_owner = $2`), appID, owner)
	if err != nil {
		return fmt.Errorf("release wechat token lease: %w", s.wrap(err))
	}
	return nil
}
