package bot

import (
	"context"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wxteams/wxteams/compliance"
)

// Activities refused for their tenant are archived in the admin stream as message.refused, with
// ids only (the tenant, the activity, the sender's Entra object id; never names or text). Another
// tenant's users can write to the bot as often as they like, so what that costs the archive is
// bounded: one record per tenant per minute, counting (Meta.Count) the refusals since the last one,
// and refusalsPerMinute records a minute in all; beyond that they are only logged.
const (
	refusalWindow     = time.Minute
	refusalsPerMinute = 60
	refusalTenants    = 1024 // tenants tracked at once
)

type refusals struct {
	mu          sync.Mutex
	tenants     map[string]*tenantRefusals
	windowStart time.Time
	inWindow    int
}

type tenantRefusals struct {
	last    time.Time // when a record was last archived for the tenant
	pending int       // refusals not yet counted in a record
}

func newRefusals() *refusals { return &refusals{tenants: map[string]*tenantRefusals{}} }

// archive records that a was refused because it names tenant (or none), when the bounds allow.
func (r *refusals) archive(ctx context.Context, e *Endpoint, a *Activity, tenant string) {
	if e.cfg.Archive == nil {
		return
	}
	now := e.cfg.Clock.Now()
	tenant = compliance.StorableText(truncate(strings.ToLower(tenant), 64))
	r.mu.Lock()
	t := r.tenants[tenant]
	if t == nil {
		if len(r.tenants) >= refusalTenants {
			for k, old := range r.tenants {
				if now.Sub(old.last) >= refusalWindow {
					delete(r.tenants, k)
				}
			}
		}
		if len(r.tenants) >= refusalTenants {
			r.mu.Unlock()
			return
		}
		t = &tenantRefusals{}
		r.tenants[tenant] = t
	}
	t.pending++
	if !t.last.IsZero() && now.Sub(t.last) < refusalWindow {
		r.mu.Unlock()
		return
	}
	if now.Sub(r.windowStart) >= refusalWindow {
		r.windowStart, r.inWindow = now, 0
	}
	if r.inWindow >= refusalsPerMinute {
		r.mu.Unlock()
		return
	}
	r.inWindow++
	count := t.pending
	t.pending, t.last = 0, now
	r.mu.Unlock()

	reason := "other_tenant"
	if tenant == "" {
		reason = "no_tenant"
	}
	sender := a.From.AADObjectID
	if sender == "" {
		sender = a.From.ID
	}
	ev := compliance.Event{Stream: compliance.AdminStream, At: now, Kind: compliance.KindRefused,
		Actor: "teams:" + compliance.StorableText(truncate(sender, 100)),
		Meta: compliance.Meta{Channel: "teams", Reason: reason, Scope: "tenant", Subject: tenant, Count: count,
			ExternalID: compliance.StorableText(truncate(a.ID, 100)), MsgType: compliance.StorableText(truncate(a.Type, 40))}}
	if err := e.cfg.Archive.Archive(context.WithoutCancel(ctx), ev); err != nil {
		e.log.Error("refused Teams activity not archived", zap.String("tenant", tenant), zap.Error(err))
		r.mu.Lock()
		t.pending += count
		t.last = time.Time{}
		r.mu.Unlock()
	}
}
