package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/internal/scrub"
)

// This file delivers the outbox, fires the chat timers, and applies what the channels answer.

// Run delivers the outbox and fires timers until ctx is cancelled, then waits for deliveries in
// flight to be recorded. Several processes may Run on one store.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); e.dispatch(ctx) }()
	go func() { defer wg.Done(); e.fireTimers(ctx) }()
	wg.Wait()
	e.inflight.Wait()
	return nil
}

// dispatch claims due deliveries while it has free workers. It sleeps until a step or a finished
// delivery wakes it, the next delivery falls due on the engine's clock, or the poll interval passes
// in real time (for work other processes created).
func (e *Engine) dispatch(ctx context.Context) {
	ctx = OutboxWork(ctx)
	slots := make(chan struct{}, e.workers)
	for ctx.Err() == nil {
		claimed, full := 0, false
		if free := cap(slots) - len(slots); free > 0 {
			items, err := e.claim(ctx, free)
			if err != nil && ctx.Err() == nil {
				e.log.Warn("claim outbox", zap.Error(err))
			}
			for _, it := range items {
				slots <- struct{}{}
				e.inflight.Add(1)
				go func() {
					more := true
					defer func() {
						// The dispatcher needs waking if it waits for a free worker, if this
						// item's lane has another item to claim, or if this was the last delivery
						// in flight (it then sets its timer for the next delayed one).
						full, last := len(slots) == cap(slots), len(slots) == 1
						<-slots
						e.inflight.Done()
						if more || full || last {
							e.poke()
						}
					}()
					more = e.deliver(context.WithoutCancel(ctx), it)
				}()
			}
			claimed, full = len(items), len(items) == free
		}
		if full {
			continue // more may be due
		}
		var due <-chan time.Time // a delayed retry falling due, on the engine's clock
		if claimed == 0 && len(slots) == 0 {
			if next, _, err := e.store.NextDue(ctx); err == nil && !next.IsZero() {
				due = e.clock.After(max(next.Sub(e.clock.Now()), time.Millisecond))
			}
		}
		select {
		case <-ctx.Done():
		case <-e.wake:
		case <-due:
		case <-time.After(e.pollInterval): // work other processes created
		}
	}
}

// Housekeeping: idempotency keys outlive every retry WeChat and Teams make (seconds to minutes) by
// far, and finished outbox rows are kept a while for operators; both are then pruned.
const (
	keepSeen      = 7 * 24 * time.Hour
	pruneInterval = time.Hour
)

// KeepOutbox is how long finished deliveries stay in the outbox before they are pruned (the
// completeness report finds late deliveries there, so it says when it may have missed some).
const KeepOutbox = 7 * 24 * time.Hour

// fireTimers fires due chat timers, sleeping until the next one or the poll interval. It also
// prunes old idempotency keys and finished outbox rows every hour.
func (e *Engine) fireTimers(ctx context.Context) {
	var lastPrune time.Time
	for ctx.Err() == nil {
		if _, err := e.FireDueTimers(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("fire timers", zap.Error(err))
		}
		if now := e.clock.Now(); now.Sub(lastPrune) >= pruneInterval {
			lastPrune = now
			if n, err := e.store.Prune(ctx, now.Add(-keepSeen), now.Add(-KeepOutbox)); err != nil && ctx.Err() == nil {
				e.log.Warn("prune", zap.Error(err))
			} else if n > 0 {
				e.log.Info("pruned idempotency keys and finished deliveries", zap.Int64("rows", n))
			}
		}
		var due <-chan time.Time
		if _, next, err := e.store.NextDue(ctx); err == nil && !next.IsZero() {
			due = e.clock.After(max(next.Sub(e.clock.Now()), time.Millisecond))
		}
		select {
		case <-ctx.Done():
		case <-due:
		case <-time.After(e.pollInterval): // timers other processes set, or a clock that jumped
		}
	}
}

// Drain delivers everything due and fires every due timer, one at a time, until nothing is left.
// Tests and one-shot tools use it in place of Run.
func (e *Engine) Drain(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := e.DeliverDue(ctx, 1)
		if err != nil {
			return total, err
		}
		fired, err := e.FireDueTimers(ctx)
		if err != nil {
			return total, err
		}
		if n == 0 && fired == 0 {
			return total, nil
		}
		total += n + fired
	}
}

// DeliverDue delivers up to limit deliveries that are due, one at a time, and returns how many it
// delivered. It fires no timers. Tests that interleave deliveries with other events use it.
func (e *Engine) DeliverDue(ctx context.Context, limit int) (int, error) {
	done := 0
	for done < limit {
		items, err := e.claim(ctx, 1)
		if err != nil || len(items) == 0 {
			return done, err
		}
		e.deliver(ctx, items[0])
		done++
	}
	return done, nil
}

func (e *Engine) claim(ctx context.Context, n int) ([]*OutboxItem, error) {
	now := e.clock.Now()
	// The lease outlives the send timeout, so a live sender always records its outcome first.
	lease := now.Add(2*e.Policy().SendTimeout.D() + 5*time.Second)
	return e.store.ClaimOutbox(ctx, now, lease, n, e.channels...)
}

// deliver sends one claimed item and records the outcome. It reports false when it knows the
// item's lane has nothing else to deliver now.
func (e *Engine) deliver(ctx context.Context, it *OutboxItem) (more bool) {
	var (
		d   Delivery
		err error
	)
	switch {
	case it.Expired && it.Channel == ChannelWeChat:
		// A process died, or lost its database, while this was with WeChat. It may have arrived:
		// never send it again.
		err = fmt.Errorf("claim of attempt %d ran out while sending: %w", it.Attempts-1, ErrOutcomeUnknown)
	default:
		d, err = e.send(ctx, it)
	}
	if err == nil && it.Channel == ChannelWeChat {
		// Delivered: until the outcome is recorded, a customer message arriving now must not count
		// this send toward their new streak (it reached them first).
		it.AnsweredAt = e.clock.Now()
		e.delivered.add(it.ID)
		defer e.delivered.remove(it.ID)
	}
	for attempt := 0; ; attempt++ {
		var ferr error
		more = true
		if err == nil {
			more, ferr = e.recordDelivered(ctx, it, d)
		} else {
			ferr = e.finish(ctx, it, d, err)
		}
		if ferr == nil {
			if err == nil && e.observer != nil {
				e.observer.Delivered(it.Channel, e.clock.Now().Sub(it.CreatedAt))
			}
			return more
		}
		if attempt == 4 || ctx.Err() != nil {
			e.log.Error("record delivery outcome; the claim will run out and be resolved then",
				zap.Int64("outbox_id", it.ID), zap.Error(ferr))
			return true
		}
		time.Sleep(time.Duration(100<<attempt) * time.Millisecond)
	}
}

// send hands one item to its channel.
func (e *Engine) send(ctx context.Context, it *OutboxItem) (Delivery, error) {
	timeout := e.Policy().SendTimeout.D()
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		d   Delivery
		err error
	)
	switch it.Channel {
	case ChannelWeChat:
		ct, lerr := it.To, error(nil)
		if ct == nil {
			ct, lerr = e.store.Contact(ctx, it.Contact)
		}
		if lerr != nil {
			return d, fmt.Errorf("load contact: %w", errors.Join(lerr, ErrRetryLater))
		}
		if m := it.WeChat.Media; m != nil && !m.Fetched() {
			if err := e.fetchMedia(sctx, &it.WeChat.Message); err != nil {
				return d, err
			}
			d.Media = it.WeChat.Media
			if d.Media == nil {
				return d, fmt.Errorf("the %s could not be fetched from Teams", it.WeChat.Type)
			}
		}
		var sent Delivery
		sent, err = e.wechat.SendWeChat(sctx, ct, it.WeChat)
		sent.Media = d.Media
		d = sent
	case ChannelTeams:
		emp, lerr := it.ToEmployee, error(nil)
		if emp == nil {
			emp, lerr = e.store.Employee(ctx, it.Employee)
		}
		if lerr != nil {
			return d, fmt.Errorf("load employee: %w", errors.Join(lerr, ErrRetryLater))
		}
		if m := it.Teams.Message.Media; m != nil && !m.Fetched() {
			if err := e.fetchMedia(sctx, &it.Teams.Message); err != nil {
				return d, err
			}
			d.Media = it.Teams.Message.Media
		}
		var sent Delivery
		sent, err = e.teams.SendTeams(sctx, emp, it.Teams)
		sent.Media = d.Media
		d = sent
	default:
		return d, fmt.Errorf("unknown channel %q", it.Channel)
	}
	if err != nil && sctx.Err() != nil && !isClassified(err) {
		// The deadline passed with the request possibly on the wire.
		err = fmt.Errorf("no answer within %s: %w", timeout, errors.Join(err, ErrOutcomeUnknown))
	}
	return d, err
}

// fetchMedia fetches a customer's media from its channel (once: it is stored by SHA-256 and found by
// its source after that) and puts the stored media in the message. Media the channel no longer
// has (WeChat keeps it three days) is replaced by a note, so the message still goes out.
func (e *Engine) fetchMedia(ctx context.Context, m *Message) error {
	source := m.Media.Source
	if stored, err := e.store.MediaBySource(ctx, source); err == nil {
		m.Media = stored
		return nil
	} else if !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("look up media: %w", errors.Join(err, ErrRetryLater))
	}
	scheme, _, _ := strings.Cut(source, ":")
	fetcher := e.media[scheme]
	if fetcher == nil {
		return fmt.Errorf("no media fetcher for %s: %w", source, ErrRetryLater)
	}
	data, contentType, err := fetcher.FetchMedia(ctx, source)
	if errors.Is(err, ErrRetryLater) || ctx.Err() != nil {
		return fmt.Errorf("fetch media: %w", errors.Join(err, ErrRetryLater))
	}
	if err != nil {
		e.log.Warn("customer media could not be fetched", zap.String("source", scrub.Text(source)), zap.Error(err))
		m.Text = joinText(m.Text, "["+m.Type+" no longer available from the channel: "+err.Error()+"]")
		m.Media = nil
		return nil
	}
	sum := sha256.Sum256(data)
	media := &Media{SHA256: hex.EncodeToString(sum[:]), ContentType: contentType, Size: int64(len(data)), Name: m.Media.Name, Source: source}
	if err := e.store.InTx(ctx, func(tx Tx) error { return tx.PutMedia(ctx, media, data, e.clock.Now()) }); err != nil {
		return fmt.Errorf("store media: %w", errors.Join(err, ErrRetryLater))
	}
	m.Media = media
	return nil
}

func isClassified(err error) bool {
	for _, k := range []error{ErrWindowClosed, ErrQuotaUsed, ErrNotFollower, ErrRecipientGone, ErrRetryLater, ErrOutcomeUnknown, ErrDeferred} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// finish records a delivery's outcome and applies it to the chat (DESIGN §2, delivery results):
// 45015 → inactive, message back to the head of the queue; 45047 → capped, back to the queue;
// 43004/40003/48002 → closed; -1/45011 → retried with backoff; outcome unknown → archived as such,
// never resent.
func (e *Engine) finish(ctx context.Context, claimed *OutboxItem, d Delivery, sendErr error) error {
	return e.do(ctx, "", func(s *step) error {
		// A delivery that succeeded changes no chat state: it needs no chat lock, only its place in
		// the chat's archive chain. Anything else may change the chat, so the chat is locked first,
		// as every step does.
		var c *Chat
		if claimed.ChatID != 0 && sendErr != nil && !errors.Is(sendErr, ErrDeferred) {
			// (A deferred send changes nothing but its own place in line: no chat lock either.)
			var err error
			if c, err = s.lock(claimed.ChatID); err != nil {
				return err
			}
		}
		it, err := s.tx.LockOutbox(s.ctx, claimed.ID)
		if err != nil {
			return err
		}
		if it.State != OutboxSending || it.Attempts != claimed.Attempts {
			return nil // another claim took it over after ours ran out; its outcome is theirs to record
		}
		meta := compliance.Meta{
			MessageID: it.MessageID, Channel: string(it.Channel), Contact: string(it.Contact),
			Employee: string(it.Employee), Attempt: it.Attempts, ErrCode: channelCode(sendErr),
		}
		if sendErr != nil {
			meta.Error = scrub.Text(sendErr.Error()) // senders tell errors in our words; this is the last defence
		}
		stream := compliance.ContactStream(string(it.Contact))
		if it.Channel == ChannelTeams {
			stream = employeeStream(it.Employee)
		}
		if it.ChatID != 0 {
			stream = compliance.ChatStream(int64(it.ChatID))
		}
		record := func(kind compliance.Kind, content compliance.Content) {
			s.events = append(s.events, compliance.Event{Stream: stream, ChatID: int64(it.ChatID), Tenant: it.Tenant,
				At: s.now, Kind: kind, Actor: actorSystem, Meta: meta, Content: content})
		}
		var withdrawn string
		if sendErr != nil && it.Channel == ChannelWeChat {
			if withdrawn, err = s.withdrawnBecause(c, it); err != nil {
				return err
			}
		}
		switch {
		case errors.Is(sendErr, ErrDeferred):
			// Not sent: back in line, the attempt not counted, nothing to archive.
			it.State, it.Attempts = OutboxPending, max(it.Attempts-1, 0)
			it.NotBefore = s.now.Add(max(s.backoff(1, sendErr), 10*time.Millisecond))
			return s.tx.UpdateOutbox(s.ctx, it)
		case sendErr == nil:
			it.State, it.AnsweredAt = OutboxDone, claimed.AnsweredAt
			meta.ExternalID = d.ID
			mediaMeta(&meta, d.Media)
			record(compliance.KindDelivered, compliance.Content{Payload: d.Payload})
			s.deliveredLate(it)
		case withdrawn != "" && (errors.Is(sendErr, ErrRetryLater) || errors.Is(sendErr, ErrWindowClosed) || errors.Is(sendErr, ErrQuotaUsed)):
			// It did not arrive, and the chat no longer wants it: cancelled, never retried or requeued.
			it.State = OutboxCancelled
			meta.Reason = withdrawn
			record(compliance.KindCancelled, compliance.Content{})
			if err := s.tx.UpdateOutbox(s.ctx, it); err != nil {
				return err
			}
			if c == nil {
				return nil
			}
			if !it.Auto {
				s.noticeAbout(c, it.Employee, "employee.cancelled", s.employeeText(c, s.policy.Employee.Cancelled, "{n}", "1", "{reason}", withdrawn), []string{it.MessageID})
			}
			return s.uncount(c, it)
		case errors.Is(sendErr, ErrRetryLater) && s.mayRetry(it):
			it.State = OutboxPending
			it.NotBefore = s.now.Add(s.backoff(it.Attempts, sendErr))
			meta.Reason = "retry at " + it.NotBefore.UTC().Format(time.RFC3339)
			record(compliance.KindDeliveryRetry, compliance.Content{})
		case errors.Is(sendErr, ErrOutcomeUnknown):
			it.State = OutboxUnknown
			record(compliance.KindOutcomeUnknown, compliance.Content{})
			if !it.Auto && c != nil {
				s.noticeAbout(c, it.Employee, "employee.outcome_unknown", s.employeeText(c, s.policy.Employee.OutcomeUnknown), []string{it.MessageID})
			}
		case c != nil && it.Channel == ChannelWeChat && (errors.Is(sendErr, ErrWindowClosed) || errors.Is(sendErr, ErrQuotaUsed)):
			return s.requeue(c, it, sendErr, meta)
		case c != nil && it.Channel == ChannelWeChat && errors.Is(sendErr, ErrNotFollower):
			it.State = OutboxFailed
			record(compliance.KindDeliveryFailed, compliance.Content{})
			if err := s.tx.UpdateOutbox(s.ctx, it); err != nil {
				return err
			}
			if !it.Auto {
				s.noticeAbout(c, it.Employee, "employee.delivery_failed",
					s.employeeText(c, s.policy.Employee.DeliveryFailed, "{code}", strconv.Itoa(meta.ErrCode)), []string{it.MessageID})
			}
			if ct, err := s.contact(c.Contact); err == nil && ct.Following {
				ct.Following = false
				if err := s.tx.PutContact(s.ctx, ct); err != nil {
					return err
				}
			}
			if c.Status.Live() {
				return s.close(c, "WeChat cannot deliver to the customer", "employee.not_follower", s.policy.Employee.NotFollower, meta.ErrCode)
			}
			return nil
		default:
			it.State = OutboxFailed
			record(compliance.KindDeliveryFailed, compliance.Content{})
			if it.Channel == ChannelTeams && errors.Is(sendErr, ErrRecipientGone) {
				if err := s.unreachable(it.Employee, meta.ErrCode); err != nil {
					return err
				}
			}
			if it.Channel == ChannelWeChat && c != nil {
				if err := s.tx.UpdateOutbox(s.ctx, it); err != nil {
					return err
				}
				if !it.Auto {
					s.noticeAbout(c, it.Employee, "employee.delivery_failed", s.deliveryFailed(c, meta), []string{it.MessageID})
				}
				// It never reached the customer: it does not count toward the limit.
				return s.uncount(c, it)
			}
		}
		return s.tx.UpdateOutbox(s.ctx, it)
	})
}

// deliveryFailed tells an author why their message failed: WeChat's errcode, or when WeChat never
// had it (the attachment could not be fetched), the reason in our words.
func (s *step) deliveryFailed(c *Chat, meta compliance.Meta) string {
	if meta.ErrCode != 0 || meta.Error == "" {
		return s.employeeText(c, s.policy.Employee.DeliveryFailed, "{code}", strconv.Itoa(meta.ErrCode))
	}
	return s.employeeText(c, s.policy.Employee.NotSent, "{reason}", meta.Error)
}

// withdrawnBecause says why a WeChat send that did not arrive must not be tried again: its chat
// withdrew it while it was being sent, the chat is no longer live, or its author is no longer in
// the chat or may no longer use WeChat (DESIGN §2, delivery results). "" means it may be.
func (s *step) withdrawnBecause(c *Chat, it *OutboxItem) (string, error) {
	if it.CancelReason != "" {
		return it.CancelReason, nil
	}
	if c == nil || c.ID != it.ChatID {
		return "", nil
	}
	switch {
	case c.Status == StatusLeft && !toCustomerOutsideChat(it.Template):
		return reasonLeft, nil
	case c.Status == StatusClosed && !toCustomerOutsideChat(it.Template):
		return "the chat is closed: the customer unfollowed or cannot receive messages", nil
	case it.Auto:
		return "", nil
	case !c.HasMember(it.Employee):
		return reasonRemoved, nil
	}
	emp, err := s.employee(it.Employee)
	if err != nil {
		return "", err
	}
	if !emp.Enabled {
		return reasonDisabled, nil
	}
	return "", nil
}

// uncount takes a WeChat send that did not reach the customer off the chat's counters, and
// reopens the chat if it had been capped by it.
func (s *step) uncount(c *Chat, it *OutboxItem) error {
	if !c.Status.Live() {
		return nil
	}
	c.SentSinceInbound = max(c.SentSinceInbound-1, 0)
	if !it.Auto {
		c.EmployeeStreak = max(c.EmployeeStreak-1, 0)
	}
	return s.reopen(c, "a message counted toward the limit was not delivered")
}

// deliveredSends are this process's WeChat sends that WeChat accepted and whose outcome is not
// recorded yet, by outbox id.
type deliveredSends struct {
	mu  sync.Mutex
	ids map[int64]bool
}

func (d *deliveredSends) add(id int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ids == nil {
		d.ids = map[int64]bool{}
	}
	d.ids[id] = true
}

func (d *deliveredSends) remove(id int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.ids, id)
}

// has reports whether WeChat accepted the send of item id, as far as this process knows.
func (d *deliveredSends) has(id int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ids[id]
}

// mayRetry: WeChat deliveries get RetryAttempts tries; Teams, whose 429 storms can last, keeps
// trying for TeamsRetryFor, so a throttled employee loses nothing.
func (s *step) mayRetry(it *OutboxItem) bool {
	if it.Channel == ChannelTeams {
		return s.now.Sub(it.CreatedAt) < s.policy.TeamsRetryFor.D()
	}
	return it.Attempts < s.policy.RetryAttempts
}

// backoff is the delay before retry number attempts: the channel's Retry-After if it gave one,
// else RetryBackoff doubled per attempt.
func (s *step) backoff(attempts int, err error) time.Duration {
	var ra RetryAfter
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		return ra.RetryAfter()
	}
	return s.policy.RetryBackoff.D() << min(max(attempts-1, 0), 10)
}

// requeue puts an employee message WeChat refused for window (45015) or quota (45047) back at the
// head of the queue, with the chat's later undelivered messages behind it in order, and moves the
// chat to inactive or capped. Auto-messages are not requeued: they were about a moment now gone.
func (s *step) requeue(c *Chat, it *OutboxItem, sendErr error, meta compliance.Meta) error {
	later, err := s.tx.ChatOutbox(s.ctx, c.ID, ChannelWeChat)
	if err != nil {
		return err
	}
	items := []*OutboxItem{it}
	for _, o := range later {
		if o.ID != it.ID && o.State == OutboxPending {
			items = append(items, o)
		}
	}
	reason := "WeChat 45015: outside the window"
	if errors.Is(sendErr, ErrQuotaUsed) {
		reason = "WeChat 45047: quota used up"
	}
	var back []*OutboxItem
	for _, o := range items {
		m := meta
		m.MessageID, m.Employee, m.Attempt = o.MessageID, string(o.Employee), o.Attempts
		if o.ID != it.ID {
			m.ErrCode, m.Error = 0, ""
		}
		m.Reason = reason
		if c.SentSinceInbound > 0 {
			c.SentSinceInbound--
		}
		if o.Auto {
			o.State = OutboxCancelled
			s.archiveChat(c, compliance.KindCancelled, actorSystem, m, compliance.Content{})
		} else {
			o.State = OutboxRequeued
			if c.EmployeeStreak > 0 {
				c.EmployeeStreak--
			}
			s.archiveChat(c, compliance.KindRequeued, actorSystem, m, compliance.Content{})
			back = append(back, o)
		}
		if err := s.tx.UpdateOutbox(s.ctx, o); err != nil {
			return err
		}
	}
	// Push to the front in reverse, so the refused message ends up first.
	for _, o := range slices.Backward(back) {
		q := &QueuedMessage{ChatID: c.ID, Employee: o.Employee, MessageID: o.MessageID, Message: o.WeChat.Message, QueuedAt: s.now}
		if err := s.tx.PushQueue(s.ctx, q, true); err != nil {
			return err
		}
		c.QueueLen++
	}
	byAuthor := cancelled{}
	for _, o := range back {
		byAuthor[o.Employee] = append(byAuthor[o.Employee], o.MessageID)
	}
	template, text := "employee.requeued_window", s.policy.Employee.RequeuedWindow
	if errors.Is(sendErr, ErrQuotaUsed) {
		template, text = "employee.requeued_quota", s.policy.Employee.RequeuedQuota
		c.SentSinceInbound = s.policy.Quota // WeChat says so: no prompt can go out either
		if c.Status == StatusActive {
			s.setStatus(c, StatusCapped, reason)
		}
	} else if c.Status == StatusActive || c.Status == StatusCapped {
		s.setStatus(c, StatusInactive, reason)
		if err := s.tx.ClearTimers(s.ctx, c.ID, TimerInactive); err != nil {
			return err
		}
	}
	for _, emp := range slices.Sorted(maps.Keys(byAuthor)) {
		s.noticeAbout(c, emp, template, s.employeeText(c, text), byAuthor[emp])
	}
	return nil
}

// unreachable marks an employee Teams can no longer reach (app uninstalled, bot blocked).
func (s *step) unreachable(id EmployeeID, code int) error {
	emp, err := s.employee(id)
	if err != nil || !emp.Reachable {
		return err
	}
	emp.Reachable = false
	emp.UpdatedAt = s.now
	if err := s.tx.PutEmployee(s.ctx, emp); err != nil {
		return err
	}
	s.archive(nil, employeeStream(id), compliance.KindEmployeeUpdated, actorSystem,
		compliance.Meta{Employee: string(id), Reason: "unreachable in Teams", ErrCode: code}, compliance.Content{})
	return nil
}

// FireDueTimers fires every chat deadline that is due and returns how many fired. Each timer fires
// in the same transaction that removes it, so it fires exactly once, whichever process gets it.
func (e *Engine) FireDueTimers(ctx context.Context) (int, error) {
	total := 0
	for {
		n := 0
		err := e.do(ctx, "", func(s *step) error {
			timers, err := s.tx.ClaimDueTimers(s.ctx, s.now, 16)
			if err != nil {
				return err
			}
			n = len(timers)
			for _, t := range timers {
				if err := s.fire(t); err != nil {
					return fmt.Errorf("timer %s of chat %d: %w", t.Kind, t.ChatID, err)
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if n == 0 {
			return total, nil
		}
	}
}

// fire applies one due timer: the 24 h notice, or the 48 h inactivity.
func (s *step) fire(t Timer) error {
	c, err := s.lock(t.ChatID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.Status != StatusActive && c.Status != StatusCapped {
		return nil
	}
	switch t.Kind {
	case TimerNotice:
		if !c.Notified24h && s.pausedPastNotice(c) {
			c.Notified24h = true
			if err := s.noticeMembers(c, "employee.notice_24h", s.employeeText(c, s.policy.Employee.Notice24h)); err != nil {
				return err
			}
			return s.promptCustomer(c)
		}
	case TimerInactive:
		if !s.windowOpen(c) {
			return s.goInactive(c)
		}
	}
	return nil
}
