package bridge

import (
	"context"
	"strconv"
	"sync"

	"github.com/wxteams/wxteams/compliance"
)

// This file records the outcomes of successful deliveries in batches: deliveries that finish
// while another batch is being written wait for it and then go together, in one transaction
// (group commit). A delivery that failed changes its chat and is recorded on its own (finish).

// outcomeBatches is the queue of successful deliveries waiting to be recorded.
type outcomeBatches struct {
	mu      sync.Mutex
	queue   []*deliveredOutcome
	leading bool // a delivery is recording a batch; the next one it hands the queue to leads next
}

// deliveredOutcome is one successful delivery waiting to be recorded.
type deliveredOutcome struct {
	it   *OutboxItem
	d    Delivery
	done chan outcomeResult
	lead chan struct{} // this delivery records the next batch
}

// outcomeResult is what recording a batch came to for one of its deliveries: more when its lane
// may have another item to deliver now.
type outcomeResult struct {
	more bool
	err  error
}

// recordDelivered records a successful delivery with whatever others are waiting, and returns
// once its batch has committed (or failed); more is false when the item's lane has nothing else
// due. The first delivery to arrive records a batch; those
// arriving meanwhile queue, and the first of them records the next batch, so one batch is being
// written at a time and each holds everything that finished during the one before.
func (e *Engine) recordDelivered(ctx context.Context, it *OutboxItem, d Delivery) (more bool, err error) {
	o := &deliveredOutcome{it: it, d: d, done: make(chan outcomeResult, 1), lead: make(chan struct{}, 1)}
	b := &e.outcomes
	b.mu.Lock()
	b.queue = append(b.queue, o)
	if !b.leading {
		b.leading = true
		o.lead <- struct{}{}
	}
	b.mu.Unlock()
	for {
		select {
		case r := <-o.done:
			return r.more, r.err
		case <-o.lead:
			e.recordBatch(ctx)
		}
	}
}

// recordBatch records the queued deliveries and hands the queue on to the next delivery waiting,
// if any.
func (e *Engine) recordBatch(ctx context.Context) {
	b := &e.outcomes
	b.mu.Lock()
	batch := b.queue
	b.queue = nil
	b.mu.Unlock()
	more, err := e.finishDelivered(ctx, batch)
	if err != nil && len(batch) > 1 {
		// Whatever failed the batch, each delivery is tried on its own (finish), so one cannot
		// hold the others back.
		for _, o := range batch {
			o.done <- outcomeResult{more: true, err: e.finish(ctx, o.it, o.d, nil)}
		}
	} else {
		for _, o := range batch {
			o.done <- outcomeResult{more: err != nil || more[o.it.Lane], err: err}
		}
	}
	b.mu.Lock()
	if len(b.queue) > 0 {
		b.queue[0].lead <- struct{}{}
	} else {
		b.leading = false
	}
	b.mu.Unlock()
}

// finishDelivered records successful deliveries in one step: each item still sent under its claim
// becomes done, its lane moves on, and its delivery is archived in its chain. A delivery that
// succeeded changes no chat state: it needs no chat lock, only its place in the chat's archive
// chain (as finish does for one).
// It returns the lanes that have another item due.
func (e *Engine) finishDelivered(ctx context.Context, batch []*deliveredOutcome) (more map[string]bool, err error) {
	return more, e.do(ctx, "", func(s *step) error {
		ids := make([]int64, len(batch))
		for i, o := range batch {
			ids[i] = o.it.ID
		}
		sending, err := s.tx.LockSending(s.ctx, ids...)
		if err != nil {
			return err
		}
		var done []*OutboxItem
		for _, o := range batch {
			claimed := o.it
			if attempts, ok := sending[claimed.ID]; !ok || attempts != claimed.Attempts {
				continue // another claim took it over after ours ran out; its outcome is theirs to record
			}
			it := *claimed
			it.State, it.AnsweredAt = OutboxDone, claimed.AnsweredAt
			meta := compliance.Meta{
				MessageID: it.MessageID, Channel: string(it.Channel), Contact: string(it.Contact),
				Employee: string(it.Employee), Attempt: it.Attempts, ExternalID: o.d.ID,
			}
			mediaMeta(&meta, o.d.Media)
			s.events = append(s.events, compliance.Event{Stream: outcomeStream(&it), ChatID: int64(it.ChatID), Tenant: it.Tenant,
				At: s.now, Kind: compliance.KindDelivered, Actor: actorSystem, Meta: meta, Content: compliance.Content{Payload: o.d.Payload}})
			s.deliveredLate(&it)
			done = append(done, &it)
		}
		more, err = s.tx.MarkDone(s.ctx, s.now, done...)
		return err
	})
}

// outcomeStream is the archive stream of a delivery's outcome: its chat's, or without a chat its
// recipient's (the customer's, or the employee's).
func outcomeStream(it *OutboxItem) string {
	switch {
	case it.ChatID != 0:
		return compliance.ChatStream(int64(it.ChatID))
	case it.Channel == ChannelTeams:
		return employeeStream(it.Employee)
	}
	return compliance.ContactStream(string(it.Contact))
}

// deliveredLate tells the author of a message WeChat accepted only after retries that it arrived:
// they were not told of the retries, but it did not go out when they wrote it. (A message that
// goes out at once needs no word: Teams marked it sent; one from the queue was told when released.)
func (s *step) deliveredLate(it *OutboxItem) {
	if it.Channel != ChannelWeChat || it.Auto || it.Attempts < 2 || it.ChatID == 0 {
		return
	}
	c := &Chat{ID: it.ChatID, Tenant: it.Tenant, Contact: it.Contact} // for the notice's place; no state changes
	s.noticeAbout(c, it.Employee, "employee.delivered_late",
		s.employeeText(c, s.policy.Employee.DeliveredLate, "{n}", strconv.Itoa(it.Attempts)), []string{it.MessageID})
}
