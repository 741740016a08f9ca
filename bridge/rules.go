package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/wxteams/wxteams/compliance"
	"github.com/wxteams/wxteams/compliance/supervision"
)

// This file is the conversation policy of DESIGN §2, one function per thing that can happen.

// Connect is a customer scanning an employee's QR code: a subscribe event with EventKey
// qrscene_<scene>, or a SCAN event from a follower.
type Connect struct {
	Contact   OpenID
	Scene     string
	Event     string // "subscribe" or "SCAN", for the archive
	Language  string // the customer's WeChat language, if known
	DedupeKey string
}

// Connect binds the customer to the employee the scene names. WeChat resets its window on a scan
// (3 messages within a minute, no longer the 48 h window), so the chat becomes pending until the
// customer writes: queued messages wait, and they flush when the customer writes.
func (e *Engine) Connect(ctx context.Context, in Connect) (Result, error) {
	var res Result
	if in.Contact == "" || in.Scene == "" {
		return res, fmt.Errorf("connect: %w: contact and scene are required", ErrInvalid)
	}
	err := e.do(ctx, in.DedupeKey, func(s *step) error {
		// Every step locks the chat before it touches the customer's record.
		chat, err := s.lockByContact(in.Contact)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		ct, err := s.contact(in.Contact)
		if err != nil {
			return err
		}
		ct.Following, ct.UpdatedAt = true, s.now
		if in.Language != "" {
			ct.Language = in.Language
		}
		if err := s.tx.PutContact(s.ctx, ct); err != nil {
			return err
		}
		routing := compliance.Meta{Contact: string(in.Contact), Scene: in.Scene, Reason: in.Event}
		emp, err := s.tx.EmployeeByScene(s.ctx, in.Scene)
		if errors.Is(err, ErrNotFound) || (err == nil && !emp.Enabled) {
			// Nobody to connect to: the customer's live chat, if any, stays as it was (DESIGN §2).
			routing.Reason = in.Event + ": no enabled employee has this scene"
			if err == nil {
				routing.Employee = string(emp.ID)
			}
			s.archive(chat, compliance.ContactStream(string(in.Contact)), compliance.KindRouting, actorCustomer(in.Contact), routing, compliance.Content{})
			texts, _ := s.customerTexts(ct)
			s.autoCustomer(chat, ct, "customer.unavailable", texts.Unavailable)
			res.Outcome, res.Reason = OutcomeRefused, "unknown_scene"
			return nil
		}
		if err != nil {
			return err
		}
		if chat != nil && chat.Status.Live() {
			// WeChat replaced the customer's window with the 3-in-a-minute window of a scan.
			if err := s.scanned(chat, in.Event); err != nil {
				return err
			}
		}
		s.employees[emp.ID] = emp
		routing.Employee = string(emp.ID)

		greetEmployee := true
		switch {
		case chat == nil:
			chat = &Chat{Tenant: emp.Tenant, Contact: in.Contact, Members: []EmployeeID{emp.ID}, Status: StatusPending, CreatedAt: s.now}
			if err := s.tx.CreateChat(s.ctx, chat); err != nil {
				return err // ErrConflict: a concurrent connect created it; the caller retries
			}
			s.chats = append(s.chats, chat)
			s.archiveChat(chat, compliance.KindStatus, actorSystem, compliance.Meta{To: string(StatusPending), Reason: "created"}, compliance.Content{})
		case !chat.Status.Live():
			// A customer who left or unfollowed starts afresh with this employee.
			if err := s.replaceMembers(chat, []EmployeeID{emp.ID}, "", "customer reconnected by QR"); err != nil {
				return err
			}
			if err := s.scanned(chat, in.Event); err != nil {
				return err
			}
		case !chat.HasMember(emp.ID):
			// The customer chose another employee: the chat is re-bound to them.
			if err := s.replaceMembers(chat, []EmployeeID{emp.ID}, "employee.rebind_other_member", "customer scanned another employee's QR code"); err != nil {
				return err
			}
		default:
			greetEmployee = false
		}
		s.archiveChat(chat, compliance.KindRouting, actorCustomer(in.Contact), routing, compliance.Content{})
		chat.ConnectedAt = s.now

		texts, _ := s.customerTexts(ct)
		s.autoCustomer(chat, ct, "customer.initial", joinText(texts.Initial, fill(texts.RecordingNotice, "{firm}", s.policy.FirmName)))
		if greetEmployee {
			s.notice(chat, []EmployeeID{emp.ID}, "employee.initial", s.policy.Employee.Initial)
		}
		res = Result{Chat: chat.ID, Outcome: OutcomeSent}
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("connect %s: %w", in.Contact, err)
	}
	return res, nil
}

// scanned resets a chat after a QR scan: WeChat's window is now the scan's (a few messages within a
// minute), so the chat waits, pending, for the customer to write; queued messages stay queued.
func (s *step) scanned(c *Chat, event string) error {
	s.setStatus(c, StatusPending, "QR "+event)
	c.SentSinceInbound, c.EmployeeStreak = 0, 0
	c.OnHoldPrompted, c.Notified24h, c.ReinstateSent, c.MembersChanged = false, false, false, false
	return s.tx.ClearTimers(s.ctx, c.ID)
}

// replaceMembers sets a chat's members, archives the change, cancels the messages of those who
// were removed and tells them.
func (s *step) replaceMembers(c *Chat, members []EmployeeID, removedNotice, reason string) error {
	var removed []EmployeeID
	for _, m := range c.Members {
		if !contains(members, m) {
			removed = append(removed, m)
		}
	}
	var added []EmployeeID
	for _, m := range members {
		if !c.HasMember(m) {
			added = append(added, m)
		}
	}
	if len(added)+len(removed) == 0 {
		return nil
	}
	s.archiveChat(c, compliance.KindMembers, actorSystem, compliance.Meta{Added: ids(added), Removed: ids(removed), Reason: reason}, compliance.Content{})
	c.Members = append([]EmployeeID(nil), members...)
	if removedNotice != "" && len(removed) > 0 {
		s.notice(c, removed, removedNotice, s.employeeText(c, s.policy.Employee.RebindOtherMember))
	}
	return s.cancelOf(c, removed, reasonRebound)
}

// Inbound is a message from a WeChat customer.
type Inbound struct {
	Contact    OpenID
	Message    Message
	ExternalID string // WeChat MsgId
	Language   string
	DedupeKey  string
}

// CustomerWrites handles a customer's message: archive it; reset the window, counters and
// prompts; make the chat active; deliver it to the chat's employees; flush the queue FIFO while
// under the cap; and schedule the 24 h and 48 h timers afresh. "#LEAVE" leaves the chat.
func (e *Engine) CustomerWrites(ctx context.Context, in Inbound) (Result, error) {
	var res Result
	if in.Contact == "" {
		return res, fmt.Errorf("customer message: %w: contact is required", ErrInvalid)
	}
	err := e.do(ctx, in.DedupeKey, func(s *step) error {
		chat, err := s.lockByContact(in.Contact)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		// Messages still on their way to WeChat reach the customer after this message: they count
		// toward the new streak and quota. Those waiting in the outbox do for sure; a send under way
		// may land before or after, so it counts too, unless this process already has WeChat's
		// acceptance of it, and is marked so that employeeSends can take it off again once it is
		// known to have landed first. They are counted with the chat locked (no new ones can be
		// added) and the step's time is taken again afterwards, so a message WeChat accepted after
		// that time is one counted here. A prompt still waiting lost its point: it is cancelled
		// below and not counted.
		var openEmployee, openAll int
		var crossing []int64
		var prompts []OpenSend
		if chat != nil && chat.Status.Live() {
			open, err := s.tx.OpenSends(s.ctx, chat.ID, ChannelWeChat)
			if err != nil {
				return err
			}
			for _, o := range open {
				if o.Auto && isPrompt(o.Template) && o.CancelReason == "" {
					prompts = append(prompts, o)
					if !o.Sending {
						continue
					}
				}
				if o.Sending && s.e.delivered.has(o.ID) {
					continue
				}
				if o.Sending {
					crossing = append(crossing, o.ID)
				}
				openAll++
				if !o.Auto {
					openEmployee++
				}
			}
			if now := s.e.clock.Now(); now.After(s.now) {
				s.now = now
			}
			if err := s.tx.MarkCrossing(s.ctx, s.now, crossing...); err != nil {
				return err
			}
		}
		ct, err := s.contact(in.Contact)
		if err != nil {
			return err
		}
		if in.Language != "" && in.Language != ct.Language {
			ct.Language, ct.UpdatedAt = in.Language, s.now
			if err := s.tx.PutContact(s.ctx, ct); err != nil {
				return err
			}
		}
		meta := compliance.Meta{
			MessageID: newMessageID(), Channel: string(ChannelWeChat), Direction: "to_employee",
			Contact: string(in.Contact), ExternalID: in.ExternalID, MsgType: in.Message.Type,
		}
		mediaMeta(&meta, in.Message.Media)
		var members []EmployeeID
		if chat != nil && chat.Status.Live() {
			members = chat.Members
		}
		screened := s.screen(&meta, in.Message.Text, supervision.ToEmployee, members)
		s.archive(chat, compliance.ContactStream(string(in.Contact)), compliance.KindCustomerMessage, actorCustomer(in.Contact), meta, compliance.Content{Text: in.Message.Text})
		texts, _ := s.customerTexts(ct)

		if chat == nil || !chat.Status.Live() {
			// Not in a live chat: nobody to deliver to. The message is archived; tell the customer how to connect.
			if chat != nil {
				chat.LastInboundAt, chat.SentSinceInbound = s.now, 0
			}
			s.autoCustomer(chat, ct, "customer.not_connected", texts.NotConnected)
			res.Outcome, res.Reason = OutcomeRefused, "not_connected"
			if chat != nil {
				res.Chat = chat.ID
				return s.flag(chat, meta.MessageID, "", screened) // nobody read it, but a flag asks for review
			}
			return nil
		}
		res.Chat, res.MessageID, res.Outcome = chat.ID, meta.MessageID, OutcomeSent
		if err := s.withdraw(chat, prompts, reasonCustomerWrote, cancelled{}); err != nil {
			return err
		}

		// The customer wrote: the window and the counters start again, from what is still on its way.
		chat.LastInboundAt = s.now
		chat.SentSinceInbound, chat.EmployeeStreak = openAll, openEmployee
		chat.OnHoldPrompted, chat.Notified24h, chat.ReinstateSent, chat.MembersChanged = false, false, false, false

		if IsLeave(in.Message.Text) {
			return s.leave(chat, ct)
		}
		s.setStatus(chat, StatusActive, "customer wrote")

		recipients, err := s.enabledMembers(chat)
		if err != nil {
			return err
		}
		if len(recipients) == 0 {
			// Everyone in the chat was disabled: nobody can read or answer this. Tell the customer.
			s.autoCustomer(chat, ct, "customer.unavailable", texts.Unavailable)
			res.Outcome, res.Reason = OutcomeRefused, "no_enabled_member"
		}
		if err := s.flag(chat, meta.MessageID, "", screened); err != nil {
			return err
		}
		msg := in.Message
		switch screened.Action {
		case supervision.ActionBlock:
			s.withholdCustomerMessage(chat, meta.MessageID, recipients, screened)
			recipients = nil
		case supervision.ActionRedact:
			msg = s.redacted(chat, meta.MessageID, "", "to_employee", msg, screened)
		}
		for _, emp := range recipients {
			s.outbox = append(s.outbox, &OutboxItem{
				ChatID: chat.ID, Tenant: chat.Tenant, Channel: ChannelTeams, Lane: teamsLane(emp), Employee: emp, Contact: chat.Contact,
				MessageID: meta.MessageID, State: OutboxPending, NotBefore: s.now, CreatedAt: s.now,
				Teams: &TeamsMessage{Kind: TeamsCustomerMessage, ChatID: chat.ID, Contact: chat.Contact,
					ContactName: ct.DisplayName(), Message: msg, SentAt: s.now},
			})
		}
		if err := s.flushQueue(chat, "employee.flushed", s.policy.Employee.Flushed, "customer wrote"); err != nil {
			return err
		}
		if err := s.capIfReached(chat); err != nil { // messages still on their way may have used the new streak up
			return err
		}
		if err := s.tx.SetTimer(s.ctx, chat.ID, TimerNotice, s.now.Add(s.policy.NoticeAfter.D())); err != nil {
			return err
		}
		return s.tx.SetTimer(s.ctx, chat.ID, TimerInactive, s.now.Add(s.policy.Window.D()))
	})
	if err != nil {
		return Result{}, fmt.Errorf("customer message from %s: %w", in.Contact, err)
	}
	return res, nil
}

// hasRoom reports whether the cap and the quota allow one more employee message.
func (s *step) hasRoom(c *Chat) bool {
	return c.EmployeeStreak < s.policy.Cap && c.SentSinceInbound < s.policy.Quota
}

// flushQueue sends queued messages, oldest first, while the cap and the quota allow, and tells the
// chat's members how many went out with the notice given (or, when some stay queued, the
// flushed_remaining notice). Flushing to a chat whose customer is in no live window makes no sense;
// callers flush only active chats.
func (s *step) flushQueue(c *Chat, template, text, reason string) error {
	if c.QueueLen == 0 {
		return nil
	}
	queue, err := s.tx.Queue(s.ctx, c.ID)
	if err != nil {
		return err
	}
	var released []int64
	var about []string
	for _, q := range queue {
		if !s.hasRoom(c) {
			break
		}
		s.archiveChat(c, compliance.KindReleased, actorSystem, compliance.Meta{MessageID: q.MessageID, Employee: string(q.Employee), Reason: reason}, compliance.Content{})
		s.sendEmployeeMessage(c, q.Employee, q.MessageID, q.Message)
		released = append(released, q.ID)
		about = append(about, q.MessageID)
	}
	if len(released) == 0 {
		return nil
	}
	if err := s.tx.RemoveQueued(s.ctx, released...); err != nil {
		return err
	}
	c.QueueLen -= len(released)
	n := strconv.Itoa(len(released))
	if c.QueueLen > 0 {
		template, text = "employee.flushed_remaining", s.policy.Employee.FlushedRemaining
	}
	if err := s.noticeMembers(c, template, s.employeeText(c, text, "{n}", n, "{remaining}", strconv.Itoa(c.QueueLen), "{reason}", reason), about...); err != nil {
		return err
	}
	return s.capIfReached(c)
}

// sendEmployeeMessage hands an employee message to WeChat delivery and counts it.
func (s *step) sendEmployeeMessage(c *Chat, author EmployeeID, messageID string, m Message) {
	c.EmployeeStreak++
	s.queueWeChat(c, c.Contact, author, messageID, "", &WeChatMessage{Message: m}, false)
}

// capIfReached caps the chat when the streak reached the cap (or the quota ran out) and gives the
// employees the limit notice at once — the quota's own notice when the quota, not the cap,
// stopped the chat.
func (s *step) capIfReached(c *Chat) error {
	if c.Status != StatusActive || s.hasRoom(c) {
		return nil
	}
	if c.EmployeeStreak >= s.policy.Cap {
		s.setStatus(c, StatusCapped, "cap of consecutive messages reached")
		return s.noticeMembers(c, "employee.limit", s.employeeText(c, s.policy.Employee.Limit))
	}
	s.setStatus(c, StatusCapped, "WeChat's message quota for the window used up")
	return s.noticeMembers(c, "employee.limit_quota", s.employeeText(c, s.policy.Employee.LimitQuota))
}

// reopen makes a capped chat that has room again active (a message counted toward the limit was
// not delivered after all, or had reached the customer before their message), sending what the
// queue holds first, within the limit.
func (s *step) reopen(c *Chat, reason string) error {
	if c.Status != StatusCapped || !s.hasRoom(c) {
		return nil
	}
	s.setStatus(c, StatusActive, reason)
	return s.flushQueue(c, "employee.released", s.policy.Employee.Released, reason)
}

// leave handles #LEAVE: the chat is left, the queue and every send still waiting cancelled, the
// customer gets a confirmation and the employees are told. Scanning a QR code again reconnects.
func (s *step) leave(c *Chat, ct *Contact) error {
	s.archiveChat(c, compliance.KindLeave, actorCustomer(c.Contact), compliance.Meta{Contact: string(c.Contact)}, compliance.Content{})
	s.setStatus(c, StatusLeft, "customer sent #LEAVE")
	w, err := s.cancelAll(c, reasonLeft)
	if err != nil {
		return err
	}
	texts, _ := s.customerTexts(ct)
	s.autoCustomer(c, ct, "customer.leave_confirm", texts.LeaveConfirm)
	return s.noticeMembers(c, "employee.customer_left", s.employeeText(c, s.policy.Employee.CustomerLeft, "{n}", strconv.Itoa(w.count())), w.all()...)
}

// cancelAll cancels everything the chat still has for the customer, and its timers, as it stops
// being live.
func (s *step) cancelAll(c *Chat, reason string) (cancelled, error) {
	w, err := s.cancel(c, reason, func(OpenSend) bool { return true })
	if err != nil {
		return nil, err
	}
	return w, s.tx.ClearTimers(s.ctx, c.ID)
}

// Unsubscribe closes the customer's chat: they unfollowed the Official Account. The archive keeps
// everything (regulatory retention outranks WeChat's advice to delete the user's data).
func (e *Engine) Unsubscribe(ctx context.Context, contact OpenID, dedupeKey string) error {
	err := e.do(ctx, dedupeKey, func(s *step) error {
		chat, err := s.lockByContact(contact)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		ct, err := s.contact(contact)
		if err != nil {
			return err
		}
		ct.Following, ct.UpdatedAt = false, s.now
		if err := s.tx.PutContact(s.ctx, ct); err != nil {
			return err
		}
		s.archive(chat, compliance.ContactStream(string(contact)), compliance.KindUnsubscribe, actorCustomer(contact), compliance.Meta{Contact: string(contact)}, compliance.Content{})
		const reason = "the customer unfollowed the WeChat account"
		switch {
		case chat == nil:
			return nil
		case !chat.Status.Live():
			// What still waits for them (the confirmation of their #LEAVE) would reach them only
			// if they followed again, out of the blue: it goes no further.
			_, err := s.cancel(chat, reason, func(OpenSend) bool { return true })
			return err
		}
		return s.close(chat, reason, "employee.unsubscribed", s.policy.Employee.Unsubscribed, 0)
	})
	if err != nil {
		return fmt.Errorf("unsubscribe %s: %w", contact, err)
	}
	return nil
}

// CustomerEvent is a WeChat event that changes nothing in the conversation but belongs in the
// record: a follow without a QR scene, a reported location, a menu click, a template receipt.
type CustomerEvent struct {
	Contact   OpenID
	Event     string // WeChat's Event, e.g. subscribe, LOCATION, TEMPLATESENDJOBFINISH
	Detail    string // e.g. the EventKey, a location, a receipt status; never message content
	Following *bool  // set when the event says whether the customer follows the account
	DedupeKey string
}

// RecordCustomerEvent archives a customer event in the customer's chat (or, with no chat, in their
// own stream).
func (e *Engine) RecordCustomerEvent(ctx context.Context, in CustomerEvent) error {
	if in.Contact == "" || in.Event == "" {
		return fmt.Errorf("customer event: %w: contact and event are required", ErrInvalid)
	}
	err := e.do(ctx, in.DedupeKey, func(s *step) error {
		chat, err := s.lockByContact(in.Contact)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		ct, err := s.contact(in.Contact)
		if err != nil {
			return err
		}
		if in.Following != nil && ct.Following != *in.Following {
			ct.Following = *in.Following
			ct.UpdatedAt = s.now
			if err := s.tx.PutContact(s.ctx, ct); err != nil {
				return err
			}
		}
		s.archive(chat, compliance.ContactStream(string(in.Contact)), compliance.KindCustomerEvent, actorCustomer(in.Contact),
			compliance.Meta{Contact: string(in.Contact), MsgType: in.Event, Reason: in.Detail}, compliance.Content{})
		return nil
	})
	if err != nil {
		return fmt.Errorf("customer event from %s: %w", in.Contact, err)
	}
	return nil
}

// close closes a chat: queue cancelled, timers gone, employees told.
func (s *step) close(c *Chat, reason, template, text string, code int) error {
	s.setStatus(c, StatusClosed, reason)
	w, err := s.cancelAll(c, reason)
	if err != nil {
		return err
	}
	return s.noticeMembers(c, template, s.employeeText(c, text, "{n}", strconv.Itoa(w.count()), "{code}", strconv.Itoa(code)), w.all()...)
}

// EmployeeMessage is a message an employee wrote in Teams for a chat.
type EmployeeMessage struct {
	Employee EmployeeID
	Chat     ChatID
	Message  Message
	// Caption is the text sent together with an image (Teams sends both in one activity; the
	// bridge relays them as separate messages): a firm's rule that blocks it blocks the image too.
	Caption    string
	ExternalID string // Teams activity id
	DedupeKey  string
}

// EmployeeWrites handles an employee's message: refused when they are not enabled, not in the chat,
// the message is empty or too long, or the chat is left or closed; queued while the chat is pending,
// inactive or capped (with the on-hold prompt to the customer once per pause); otherwise handed to
// WeChat, and when that reaches the cap the employee gets the limit notice at once.
func (e *Engine) EmployeeWrites(ctx context.Context, in EmployeeMessage) (Result, error) {
	var res Result
	err := e.do(ctx, in.DedupeKey, func(s *step) error {
		emp, err := s.employee(in.Employee)
		if err != nil {
			return err
		}
		res.MessageID = newMessageID()
		meta := compliance.Meta{
			MessageID: res.MessageID, Channel: string(ChannelTeams), Direction: "to_customer", Employee: string(emp.ID),
			ExternalID: in.ExternalID, MsgType: in.Message.Type,
		}
		mediaMeta(&meta, in.Message.Media)
		content := compliance.Content{Text: in.Message.Text}
		actor := actorEmployee(emp.ID)
		screened := s.screen(&meta, in.Message.Text, supervision.ToCustomer, []EmployeeID{emp.ID})
		if in.Message.Text == "" && in.Caption != "" {
			caption := meta
			if c := s.screen(&caption, in.Caption, supervision.ToCustomer, []EmployeeID{emp.ID}); c.Action == supervision.ActionBlock {
				screened, meta = c, caption // the image does not go without the words it came with
			}
		}

		chat, err := s.lock(in.Chat)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		member := chat != nil && chat.HasMember(emp.ID)
		if member {
			meta.Contact = string(chat.Contact)
			res.Chat = chat.ID
			s.archiveChat(chat, compliance.KindEmployeeMessage, actor, meta, content)
		} else {
			s.archive(nil, employeeStream(emp.ID), compliance.KindEmployeeMessage, actor, meta, content)
		}
		switch {
		case !emp.Enabled:
			res = s.refuse(chatIf(member, chat), emp.ID, res.MessageID, "not_enabled", "employee.not_enabled", s.policy.Employee.NotEnabled)
			if member { // refused, but what they wrote is in the chat's record: a flag still asks for review
				return s.flag(chat, res.MessageID, emp.ID, screened)
			}
			return nil
		case in.Chat == 0:
			res = s.refuse(nil, emp.ID, res.MessageID, "no_current_chat", "employee.no_current_chat", s.policy.Employee.NoCurrentChat)
			return nil
		case chat == nil:
			res = s.refuse(nil, emp.ID, res.MessageID, "unknown_chat", "employee.not_member", s.policy.Employee.NotMember)
			return nil
		case !member:
			res = s.refuse(nil, emp.ID, res.MessageID, "not_member", "employee.not_member", s.policy.Employee.NotMember)
			return nil
		}
		switch p := s.policy; {
		case IsBlank(in.Message.Text) && in.Message.Media == nil:
			res = s.refuse(chat, emp.ID, res.MessageID, "empty", "employee.empty", p.Employee.Empty)
		case len(in.Message.Text) > p.MaxTextBytes:
			res = s.refuse(chat, emp.ID, res.MessageID, "too_long", "employee.too_long", s.employeeText(chat, p.Employee.TooLong,
				"{size}", strconv.Itoa(len(in.Message.Text)), "{max}", strconv.Itoa(p.MaxTextBytes)))
		case chat.Status == StatusLeft:
			res = s.refuse(chat, emp.ID, res.MessageID, "left", "employee.refused_left", s.employeeText(chat, p.Employee.RefusedLeft))
		case chat.Status == StatusClosed:
			res = s.refuse(chat, emp.ID, res.MessageID, "closed", "employee.refused_closed", s.employeeText(chat, p.Employee.RefusedClosed))
		case screened.Action == supervision.ActionBlock:
			res = s.blockEmployeeMessage(chat, emp.ID, res.MessageID, screened)
		case screened.Action == supervision.ActionRedact:
			m := s.redacted(chat, res.MessageID, emp.ID, "to_customer", in.Message, screened)
			if len(m.Text) > p.MaxTextBytes { // the replacements made it longer than WeChat takes
				res = s.refuse(chat, emp.ID, res.MessageID, "too_long", "employee.too_long", s.employeeText(chat, p.Employee.TooLong,
					"{size}", strconv.Itoa(len(m.Text)), "{max}", strconv.Itoa(p.MaxTextBytes)))
				break
			}
			if res, err = s.employeeSends(chat, emp.ID, res.MessageID, m); err == nil && res.Outcome != OutcomeRefused {
				s.noticeAbout(chat, emp.ID, "employee.redacted", s.employeeText(chat, p.Employee.Redacted,
					"{n}", strconv.Itoa(screened.Spans(supervision.ActionRedact)), "{rules}", s.ruleWords(screened, supervision.ActionRedact), "{text}", m.Text), []string{res.MessageID})
			}
		default:
			res, err = s.employeeSends(chat, emp.ID, res.MessageID, in.Message)
		}
		if err != nil {
			return err
		}
		return s.flag(chat, res.MessageID, emp.ID, screened)
	})
	if err != nil {
		return Result{}, fmt.Errorf("message from employee %s: %w", in.Employee, err)
	}
	return res, nil
}

// employeeSends delivers, or queues, an accepted employee message for a live chat, and shows it
// to the author's colleagues in a team chat.
func (s *step) employeeSends(c *Chat, emp EmployeeID, messageID string, m Message) (Result, error) {
	res, err := s.sendOrQueue(c, emp, messageID, m)
	if err != nil || res.Outcome == OutcomeRefused {
		return res, err
	}
	return res, s.showColleagues(c, emp, messageID, m, res.Outcome)
}

func (s *step) sendOrQueue(c *Chat, emp EmployeeID, messageID string, m Message) (Result, error) {
	if c.Status == StatusActive && !s.windowOpen(c) {
		// The 48 h timer has not fired yet, but the window is gone.
		if err := s.goInactive(c); err != nil {
			return Result{}, err
		}
	}
	if err := s.settleCrossing(c); err != nil {
		return Result{}, err
	}
	if c.Status == StatusActive && (c.QueueLen > 0 || !s.hasRoom(c)) {
		s.setStatus(c, StatusCapped, "cap of consecutive messages reached")
	}
	switch c.Status {
	case StatusPending:
		return s.enqueue(c, emp, messageID, m, "pending", "employee.queued_pending", s.policy.Employee.QueuedPending)
	case StatusInactive:
		return s.enqueue(c, emp, messageID, m, "inactive", "employee.queued_inactive", s.policy.Employee.QueuedInactive)
	case StatusCapped:
		reason, template, text := "capped", "employee.queued_capped", s.policy.Employee.QueuedCapped
		if c.EmployeeStreak < s.policy.Cap && c.SentSinceInbound >= s.policy.Quota {
			reason, template, text = "quota", "employee.queued_quota", s.policy.Employee.QueuedQuota
		}
		res, err := s.enqueue(c, emp, messageID, m, reason, template, text)
		if err == nil && res.Outcome == OutcomeQueued && s.policy.OnHoldPrompt == OnHoldAtQueue {
			err = s.onHoldPrompt(c)
		}
		return res, err
	}
	s.sendEmployeeMessage(c, emp, messageID, m)
	if err := s.capIfReached(c); err != nil {
		return Result{}, err
	}
	return Result{Chat: c.ID, MessageID: messageID, Outcome: OutcomeSent, Window: s.window(c)}, nil
}

// onHoldPrompt sends the customer the on-hold prompt, once per pause, quota permitting.
func (s *step) onHoldPrompt(c *Chat) error {
	if c.OnHoldPrompted || !s.quotaAllows(c) {
		return nil
	}
	ct, err := s.contact(c.Contact)
	if err != nil {
		return err
	}
	texts, _ := s.customerTexts(ct)
	s.autoCustomer(c, ct, "customer.on_hold", texts.OnHold)
	c.OnHoldPrompted = true
	return s.capIfReached(c)
}

// showColleagues shows an employee's message to the chat's other members (a team chat), with
// who wrote it and whether it went out or was queued.
func (s *step) showColleagues(c *Chat, author EmployeeID, messageID string, m Message, outcome Outcome) error {
	others, err := s.enabledMembers(c)
	if err != nil || len(others) < 2 {
		return err
	}
	who, err := s.names([]EmployeeID{author})
	if err != nil {
		return err
	}
	ct, err := s.contact(c.Contact)
	if err != nil {
		return err
	}
	for _, emp := range others {
		if emp == author {
			continue
		}
		s.outbox = append(s.outbox, &OutboxItem{
			ChatID: c.ID, Tenant: c.Tenant, Channel: ChannelTeams, Lane: teamsLane(emp), Employee: emp, Contact: c.Contact,
			MessageID: messageID, Auto: true, State: OutboxPending, NotBefore: s.now, CreatedAt: s.now,
			Teams: &TeamsMessage{Kind: TeamsColleagueMessage, ChatID: c.ID, Contact: c.Contact, ContactName: ct.DisplayName(),
				Author: author, AuthorName: who, Outcome: outcome, Message: m, SentAt: s.now},
		})
	}
	return nil
}

// settleCrossing takes off the streak the sends that were under way when the customer last wrote
// and that WeChat, it turned out, had accepted before their message (CustomerWrites counted them,
// not knowing yet: another process was sending them). It runs only where the count decides
// something: a chat this message would bring to its cap, or one already there. A chat capped by
// them alone is active again, its queue flushed first. The quota count is left alone when it is
// used up: WeChat may have said so itself (45047).
func (s *step) settleCrossing(c *Chat) error {
	if (c.Status != StatusActive && c.Status != StatusCapped) || c.LastInboundAt.IsZero() ||
		(c.EmployeeStreak+1 < s.policy.Cap && c.SentSinceInbound+1 < s.policy.Quota) {
		return nil
	}
	employee, all, err := s.tx.SettleCrossing(s.ctx, c.ID, c.LastInboundAt)
	if err != nil || all == 0 {
		return err
	}
	c.EmployeeStreak = max(c.EmployeeStreak-employee, 0)
	if c.SentSinceInbound < s.policy.Quota {
		c.SentSinceInbound = max(c.SentSinceInbound-all, 0)
	}
	return s.reopen(c, "messages counted toward the limit had reached the customer before their message")
}

// enqueue puts an employee message in the chat's queue, or refuses it when the queue is full.
func (s *step) enqueue(c *Chat, emp EmployeeID, messageID string, m Message, reason, template, text string) (Result, error) {
	limit := strconv.Itoa(s.policy.QueueLimit)
	if c.QueueLen >= s.policy.QueueLimit {
		return s.refuse(c, emp, messageID, "queue_full", "employee.queue_full", s.employeeText(c, s.policy.Employee.QueueFull, "{limit}", limit)), nil
	}
	q := &QueuedMessage{ChatID: c.ID, Employee: emp, MessageID: messageID, Message: m, QueuedAt: s.now}
	if err := s.tx.PushQueue(s.ctx, q, false); err != nil {
		return Result{}, err
	}
	c.QueueLen++
	s.archiveChat(c, compliance.KindQueued, actorSystem, compliance.Meta{MessageID: messageID, Employee: string(emp), Reason: reason, QueueLength: c.QueueLen}, compliance.Content{})
	s.noticeAbout(c, emp, template, s.employeeText(c, text, "{n}", strconv.Itoa(c.QueueLen), "{limit}", limit), []string{messageID})
	return Result{Chat: c.ID, MessageID: messageID, Outcome: OutcomeQueued, Reason: reason, Window: s.window(c)}, nil
}

// refuse archives a refused employee message and tells the employee why.
func (s *step) refuse(c *Chat, emp EmployeeID, messageID, reason, template, text string) Result {
	s.archive(c, employeeStream(emp), compliance.KindRefused, actorSystem, compliance.Meta{MessageID: messageID, Employee: string(emp), Reason: reason}, compliance.Content{})
	s.noticeAbout(c, emp, template, text, []string{messageID})
	r := Result{MessageID: messageID, Outcome: OutcomeRefused, Reason: reason}
	if c != nil {
		r.Chat, r.Window = c.ID, s.window(c)
	}
	return r
}

// goInactive makes a chat inactive after 48 h without a customer message, tells the employees, and
// sends the firm's reinstate template once, if it has one.
func (s *step) goInactive(c *Chat) error {
	s.setStatus(c, StatusInactive, "no customer message within the window")
	limit := strconv.Itoa(s.policy.QueueLimit)
	if err := s.noticeMembers(c, "employee.inactive", s.employeeText(c, s.policy.Employee.Inactive, "{limit}", limit)); err != nil {
		return err
	}
	ct, err := s.contact(c.Contact)
	if err != nil {
		return err
	}
	if s.policy.Reinstate == nil || c.ReinstateSent || !ct.Following {
		return nil
	}
	t := s.policy.Reinstate
	send := &TemplateSend{ID: t.ID, URL: t.URL, Data: map[string]string{}}
	for k, v := range t.Data {
		send.Data[k] = fill(v, "{firm}", s.policy.FirmName, "{contact}", ct.DisplayName())
	}
	id := newMessageID()
	template := "customer.reinstate:" + t.ID
	s.archiveChat(c, compliance.KindAutoMessage, actorSystem, compliance.Meta{
		MessageID: id, Channel: string(ChannelWeChat), Direction: "to_customer", Contact: string(c.Contact),
		Template: template, Version: s.policy.version, MsgType: "template",
	}, compliance.Content{Text: templateText(send)})
	s.outbox = append(s.outbox, &OutboxItem{
		ChatID: c.ID, Tenant: c.Tenant, Channel: ChannelWeChat, Lane: wechatLane(c.Contact), Contact: c.Contact, MessageID: id, Auto: true,
		Template: template, WeChat: &WeChatMessage{Message: Message{Type: "template"}, Template: send},
		State: OutboxPending, NotBefore: s.now, CreatedAt: s.now,
	})
	c.ReinstateSent = true
	return s.noticeMembers(c, "employee.reinstate_sent", s.employeeText(c, s.policy.Employee.ReinstateSent))
}

// MembersChange adds employees to a chat or removes them.
type MembersChange struct {
	Chat   ChatID
	Add    []EmployeeID
	Remove []EmployeeID
	// By is the employee who made the change from Teams: they must be a member of the chat who
	// may use WeChat. Empty for administrators.
	By EmployeeID
	// Actor is who did it, for the archive: "admin:<upn>" or "cli:<user>"; for a change By an
	// employee, "employee:<id>".
	Actor string
	// ActorName is who did it in words, for the employees' notices ("an administrator"); for a
	// change By an employee, their name.
	ActorName string
}

// ChangeMembers changes a live chat's employees (a team chat). Those added see the customer's
// messages from now on; those removed stop, and their queued and waiting messages are cancelled.
// Employees are told at once; the customer learns of it with the 24 h prompt, or at once (quota
// permitting) when the customer has already been silent that long.
func (e *Engine) ChangeMembers(ctx context.Context, in MembersChange) error {
	if in.By != "" {
		in.Actor = actorEmployee(in.By)
	}
	if in.Actor == "" || len(in.Add)+len(in.Remove) == 0 {
		return fmt.Errorf("change members: %w: an actor and someone to add or remove are required", ErrInvalid)
	}
	err := e.do(ctx, "", func(s *step) error {
		c, err := s.lock(in.Chat)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("chat %d: %w", in.Chat, ErrUnknownChat)
		}
		if err != nil {
			return err
		}
		if in.By != "" {
			by, err := s.employee(in.By)
			if err != nil {
				return err
			}
			if !by.Enabled || !c.HasMember(in.By) {
				return fmt.Errorf("%w: only a member of the chat who may use WeChat can change its members", ErrInvalid)
			}
			in.ActorName = by.DisplayName()
		}
		if !c.Status.Live() {
			return fmt.Errorf("%w: the chat is %s; the customer must scan a QR code again first", ErrInvalid, c.Status)
		}
		var added, removed []EmployeeID
		for _, id := range in.Add {
			emp, err := s.employee(id)
			if err != nil {
				return err
			}
			if !emp.Enabled {
				return fmt.Errorf("%w: %s is not enabled for WeChat", ErrInvalid, emp.DisplayName())
			}
			if !c.HasMember(id) && !contains(added, id) {
				added = append(added, id)
			}
		}
		for _, id := range in.Remove {
			if c.HasMember(id) && !contains(removed, id) && !contains(added, id) {
				removed = append(removed, id)
			}
		}
		if len(added)+len(removed) == 0 {
			return nil
		}
		var members []EmployeeID
		for _, m := range c.Members {
			if !contains(removed, m) {
				members = append(members, m)
			}
		}
		members = append(members, added...)
		if len(members) == 0 {
			return fmt.Errorf("%w: a chat must keep at least one employee", ErrInvalid)
		}
		s.archiveChat(c, compliance.KindMembers, in.Actor, compliance.Meta{Added: ids(added), Removed: ids(removed)}, compliance.Content{})
		staying := make([]EmployeeID, 0, len(members))
		for _, m := range members {
			if !contains(added, m) {
				staying = append(staying, m)
			}
		}
		c.Members = members
		by := in.ActorName
		if by == "" {
			by = in.Actor
		}
		names, err := s.names(added)
		if err != nil {
			return err
		}
		gone, err := s.names(removed)
		if err != nil {
			return err
		}
		enabled, err := s.enabledMembers(c)
		if err != nil {
			return err
		}
		for _, emp := range staying {
			if contains(enabled, emp) {
				s.notice(c, []EmployeeID{emp}, "employee.members_changed", s.employeeText(c, s.policy.Employee.MembersChanged, "{added}", names, "{removed}", gone, "{by}", by))
			}
		}
		s.notice(c, added, "employee.added", s.employeeText(c, s.policy.Employee.Added, "{by}", by))
		s.notice(c, removed, "employee.removed", s.employeeText(c, s.policy.Employee.Removed, "{by}", by))
		if err := s.cancelOf(c, removed, reasonRemoved); err != nil {
			return err
		}
		c.MembersChanged = true
		if s.pausedPastNotice(c) {
			return s.promptCustomer(c)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("change members of chat %d: %w", in.Chat, err)
	}
	return nil
}

// pausedPastNotice reports whether the customer of a chat in their window has been silent for the
// notice time (24 h).
func (s *step) pausedPastNotice(c *Chat) bool {
	return (c.Status == StatusActive || c.Status == StatusCapped) && !c.LastInboundAt.IsZero() &&
		!s.now.Before(c.LastInboundAt.Add(s.policy.NoticeAfter.D()))
}

// promptCustomer sends the customer, silent for 24 h, the one prompt this pause calls for, quota
// permitting: the members-changed text if employees were added or removed, else the on-hold text
// if the limit was reached (unless the firm has it sent when a message is first queued), else
// nothing (DESIGN §2).
func (s *step) promptCustomer(c *Chat) error {
	onHold := c.Status == StatusCapped && !c.OnHoldPrompted && s.policy.OnHoldPrompt == OnHoldAtNotice
	if !c.MembersChanged && !onHold {
		return nil
	}
	if !s.quotaAllows(c) {
		return nil
	}
	ct, err := s.contact(c.Contact)
	if err != nil {
		return err
	}
	texts, _ := s.customerTexts(ct)
	if c.MembersChanged {
		s.autoCustomer(c, ct, "customer.members_changed", texts.MembersChanged)
		c.MembersChanged = false
	} else {
		s.autoCustomer(c, ct, "customer.on_hold", texts.OnHold)
	}
	c.OnHoldPrompted = true
	return s.capIfReached(c)
}

// enabledMembers are the chat's employees who may use WeChat: customer messages go to them.
func (s *step) enabledMembers(c *Chat) ([]EmployeeID, error) {
	out := make([]EmployeeID, 0, len(c.Members))
	for _, id := range c.Members {
		emp, err := s.employee(id)
		if err != nil {
			return nil, err
		}
		if emp.Enabled {
			out = append(out, id)
		}
	}
	return out, nil
}

// names lists employees by display name for a notice.
func (s *step) names(list []EmployeeID) (string, error) {
	if len(list) == 0 {
		return "nobody", nil
	}
	out := make([]string, 0, len(list))
	for _, id := range list {
		emp, err := s.employee(id)
		if err != nil {
			return "", err
		}
		out = append(out, emp.DisplayName())
	}
	return strings.Join(out, ", "), nil
}

// employeeText fills an employee notice for a chat: {contact} and any further pairs.
func (s *step) employeeText(c *Chat, text string, pairs ...string) string {
	name := ""
	if c != nil {
		if ct, err := s.contact(c.Contact); err == nil {
			name = ct.DisplayName()
		}
	}
	return fill(text, append([]string{"{contact}", name, "{quota}", strconv.Itoa(s.policy.Quota)}, pairs...)...)
}

// IsLeave reports whether a customer's text is the #LEAVE command: trimmed, in any case, with the
// full-width ＃ (and full-width letters) accepted.
func IsLeave(text string) bool {
	text = strings.TrimSpace(text)
	if len(text) > 32 {
		return false
	}
	var b strings.Builder
	for _, r := range text {
		if r >= 0xFF01 && r <= 0xFF5E { // full-width ASCII forms
			r -= 0xFEE0
		}
		b.WriteRune(r)
	}
	return strings.EqualFold(b.String(), "#leave")
}

// chatIf returns c when ok, else nil.
func chatIf(ok bool, c *Chat) *Chat {
	if ok {
		return c
	}
	return nil
}

// mediaMeta records attached media in an event's meta.
func mediaMeta(m *compliance.Meta, media *Media) {
	if media == nil {
		return
	}
	m.MediaSHA256, m.MediaType, m.MediaSize, m.MediaName = media.SHA256, media.ContentType, media.Size, media.Name
}

// templateText is a readable rendering of a template message for the archive.
func templateText(t *TemplateSend) string {
	keys := make([]string, 0, len(t.Data))
	for k := range t.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("template " + t.ID)
	for _, k := range keys {
		b.WriteString("\n" + k + ": " + t.Data[k])
	}
	return b.String()
}

func joinText(a, b string) string {
	switch {
	case b == "":
		return a
	case a == "":
		return b
	}
	return a + "\n\n" + b
}

func contains(list []EmployeeID, id EmployeeID) bool {
	for _, x := range list {
		if x == id {
			return true
		}
	}
	return false
}

func ids(list []EmployeeID) []string {
	out := make([]string, len(list))
	for i, id := range list {
		out[i] = string(id)
	}
	return out
}
