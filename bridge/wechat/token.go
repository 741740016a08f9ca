package wechat

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wxteams/wxteams/bridge"
)

// TokenStore keeps the account's access token where every replica sees it, with a lease so only
// one replica refreshes at a time (bridge/sqlstore implements it). Each refresh of WeChat's classic
// token invalidates the previous one within minutes, so independent refreshers make each other fail
// with 40001 — the most reported WeChat integration bug.
type TokenStore interface {
	// LoadWeChatToken returns the stored token and when it expires; "" if there is none.
	LoadWeChatToken(ctx context.Context, appID string) (value string, expires time.Time, err error)
	// LeaseWeChatToken gives owner the right to refresh until `until`, unless another owner holds an
	// unexpired lease; it reports whether owner has the lease.
	LeaseWeChatToken(ctx context.Context, appID, owner string, now, until time.Time) (bool, error)
	// StoreWeChatToken saves a new token and ends owner's lease.
	StoreWeChatToken(ctx context.Context, appID, owner, value string, expires time.Time) error
	// ReleaseWeChatTokenLease ends owner's lease without a new token (the refresh failed).
	ReleaseWeChatTokenLease(ctx context.Context, appID, owner string) error
}

// tokenFetcher asks WeChat for a token; force asks stable_token for a new one.
type tokenFetcher func(ctx context.Context, force bool) (value string, expiresIn time.Duration, err error)

// tokens is the token authority of one process: an in-memory copy of the shared token, refreshed
// through the store's lease.
type tokens struct {
	appID, owner string
	store        TokenStore
	fetch        tokenFetcher
	clock        bridge.Clock
	log          *zap.Logger
	// margin: refresh this long before expiry.
	margin time.Duration
	// leaseFor: how long a refresher may hold the lease.
	leaseFor time.Duration

	mu      sync.Mutex
	value   string
	expires time.Time
}

// errLeaseWait means another replica is refreshing and the new token did not appear in time.
var errLeaseWait = errors.New("wechat: waiting for another replica to refresh the access token")

// get returns a valid token, from memory, from the store, or by refreshing it.
func (t *tokens) get(ctx context.Context) (string, error) {
	t.mu.Lock()
	value, expires := t.value, t.expires
	t.mu.Unlock()
	if value != "" && t.clock.Now().Before(expires.Add(-t.margin)) {
		return value, nil
	}
	return t.refresh(ctx, value)
}

// invalidate is called with a token WeChat refused (40001/40014/42001). If another replica has
// already replaced it, the replacement is used; otherwise it is refreshed. This is the
// compare-and-swap: only the holder of the current token's failure refreshes.
func (t *tokens) invalidate(ctx context.Context, stale string) (string, error) {
	t.mu.Lock()
	if t.value == stale {
		t.value, t.expires = "", time.Time{}
	}
	t.mu.Unlock()
	return t.refreshFrom(ctx, stale, true)
}

// refresh finds a newer token than stale: in the store if a replica stored one, else by fetching
// it under the lease.
func (t *tokens) refresh(ctx context.Context, stale string) (string, error) {
	return t.refreshFrom(ctx, stale, false)
}

func (t *tokens) refreshFrom(ctx context.Context, stale string, refused bool) (string, error) {
	deadline := t.clock.Now().Add(t.leaseFor)
	for {
		now := t.clock.Now()
		value, expires, err := t.store.LoadWeChatToken(ctx, t.appID)
		if err != nil {
			return "", fmt.Errorf("load access token: %w", err)
		}
		if value != "" && value != stale && now.Before(expires.Add(-t.margin)) {
			t.remember(value, expires)
			return value, nil
		}
		ok, err := t.store.LeaseWeChatToken(ctx, t.appID, t.owner, now, now.Add(t.leaseFor))
		if err != nil {
			return "", fmt.Errorf("lease access token refresh: %w", err)
		}
		if ok {
			// Another replica may have stored a token between our look and our lease.
			value, expires, err := t.store.LoadWeChatToken(ctx, t.appID)
			if err == nil && value != "" && value != stale && now.Before(expires.Add(-t.margin)) {
				if err := t.store.ReleaseWeChatTokenLease(ctx, t.appID, t.owner); err != nil {
					t.log.Warn("release access token lease", zap.Error(err))
				}
				t.remember(value, expires)
				return value, nil
			}
			return t.fetchAndStore(ctx, stale, refused)
		}
		if !now.Before(deadline) {
			return "", errLeaseWait
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// fetchAndStore fetches a token while holding the lease and shares it. A token WeChat refused is
// not accepted back: stable_token, which hands out the same token until it nears expiry, is then
// asked to force a new one.
func (t *tokens) fetchAndStore(ctx context.Context, stale string, refused bool) (string, error) {
	value, expiresIn, err := t.fetch(ctx, false)
	forced := false
	if err == nil && refused && value == stale {
		value, expiresIn, err = t.fetch(ctx, true)
		forced = true
	}
	if err != nil {
		if rerr := t.store.ReleaseWeChatTokenLease(ctx, t.appID, t.owner); rerr != nil {
			t.log.Warn("release access token lease", zap.Error(rerr))
		}
		return "", fmt.Errorf("fetch access token: %w", err)
	}
	expires := t.clock.Now().Add(expiresIn)
	if err := t.store.StoreWeChatToken(ctx, t.appID, t.owner, value, expires); err != nil {
		return "", fmt.Errorf("store access token: %w", err)
	}
	t.log.Info("access token refreshed", zap.Time("expires", expires), zap.Bool("forced", forced))
	t.remember(value, expires)
	return value, nil
}

func (t *tokens) remember(value string, expires time.Time) {
	t.mu.Lock()
	t.value, t.expires = value, expires
	t.mu.Unlock()
}
