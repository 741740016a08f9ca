package bridge_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
)

// What WeChat and Teams answer decides what happens next (DESIGN §2, delivery results).

// activeChat connects ming to ann and has ming write, so Ann may send.
func activeChat(w *world) bridge.ChatID {
	w.enable(ann, "Ann Lee")
	chat := w.scan(ming, ann)
	w.customerSays(ming, "hello")
	w.seenWeChat[ming] = len(w.wechat.Texts(ming))
	w.seenTeams[ann] = len(w.teams.Texts(ann))
	return chat
}

func TestWeChat45015PutsTheMessageBackAtTheHeadOfTheQueue(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		w.wechat.FailNext(ming, wechatError(bridge.ErrWindowClosed, 45015, "response out of time limit or subscription is canceled"))
		res := w.employeeSays(ann, chat, "first")
		if res.Outcome != bridge.OutcomeSent {
			t.Fatalf("result = %+v; want sent (WeChat refuses it later)", res)
		}
		w.customerGets(ming)
		w.employeeGets(ann, "WeChat reports the chat with WeChat customer 1 is outside its 48-hour window. Your message is queued and will be sent when they reply.")
		if got := w.status(chat); got != bridge.StatusInactive {
			t.Errorf("status = %s; want inactive", got)
		}
		w.employeeSays(ann, chat, "second")
		w.customerSays(ming, "I'm here")
		w.customerGets(ming, "first", "second")
		assertArchived(t, w.archived(chat), "delivery.requeued(45015)", "chat.status(active→inactive)", "message.queued(inactive)",
			"customer.message", "message.released", "message.released")
	})
}

func TestWeChat45015RequeuesLaterMessagesInOrder(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		// Hold the first send in flight while two more are accepted behind it.
		w.wechat.FailNext(ming, wechatError(bridge.ErrWindowClosed, 45015, "response out of time limit"))
		for _, m := range []string{"a", "b", "c"} {
			if _, err := w.engine.EmployeeWrites(w.ctx, bridge.EmployeeMessage{Employee: ann, Chat: chat, Message: bridge.TextMessage(m)}); err != nil {
				t.Fatal(err)
			}
		}
		w.drain()
		w.customerGets(ming)
		w.customerSays(ming, "back")
		w.customerGets(ming, "a", "b", "c")
	})
}

func TestWeChat45047CapsTheChatAndRequeues(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		w.wechat.FailNext(ming, wechatError(bridge.ErrQuotaUsed, 45047, "out of response count limit"))
		w.employeeSays(ann, chat, "one")
		w.employeeGets(ann, "WeChat's reply quota for WeChat customer 1 is used up. Your message is queued and will be sent when they reply.")
		if got := w.status(chat); got != bridge.StatusCapped {
			t.Errorf("status = %s; want capped", got)
		}
		w.employeeSays(ann, chat, "two")
		w.customerGets(ming) // no on-hold prompt: WeChat said the quota is gone
		w.customerSays(ming, "ok")
		w.customerGets(ming, "one", "two")
	})
}

func TestWeChatNotFollowerClosesTheChat(t *testing.T) {
	for _, tc := range []struct {
		code int
		msg  string
	}{{43004, "require subscribe"}, {40003, "invalid openid"}, {48002, "api forbidden for user"}} {
		scenario(t, func(w *world) {
			chat := activeChat(w)
			w.wechat.FailNext(ming, wechatError(bridge.ErrNotFollower, tc.code, tc.msg))
			w.employeeSays(ann, chat, "hello")
			if got := w.status(chat); got != bridge.StatusClosed {
				t.Errorf("errcode %d: status = %s; want closed", tc.code, got)
			}
			texts := w.teams.Texts(ann)
			want := "WeChat cannot deliver to WeChat customer 1 any more (error " + itoa(tc.code) + ": not a follower, or they refuse messages); the chat is closed. 0 queued message(s) cancelled."
			if texts[len(texts)-1] != want {
				t.Errorf("errcode %d: employee told %q", tc.code, texts[len(texts)-1])
			}
			assertArchived(t, w.archived(chat), "delivery.failed("+itoa(tc.code)+")", "chat.status(active→closed)")
		})
	}
}

func TestWeChatSystemBusyIsRetriedWithBackoff(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		busy := wechatError(bridge.ErrRetryLater, -1, "system error")
		w.wechat.FailNext(ming, busy, busy)
		w.employeeSays(ann, chat, "hello")
		w.customerGets(ming)
		w.after(2 * time.Second) // first retry after the backoff
		w.customerGets(ming)
		w.after(4 * time.Second) // second retry, backoff doubled
		w.customerGets(ming, "hello")
		// Ann was not told of the retries, but is told it arrived late.
		w.employeeGets(ann, "Your message to WeChat customer 1 was delivered after WeChat was busy (3 attempts).")
		if last := w.lastTeams(ann); len(last.About) != 1 || last.Notice != "employee.delivered_late" {
			t.Errorf("the notice = %+v; want it about her message", last)
		}
		got := w.archived(chat)
		if n := count(got, "delivery.retry(wechat)"); n != 2 {
			t.Errorf("retries archived = %d; want 2", n)
		}
		if n := count(got, "delivery.delivered(wechat)"); n != 2 { // the initial message and "hello"
			t.Errorf("deliveries archived = %d; want 2", n)
		}
	})
}

func TestRetriesRunOutIntoAFailure(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		busy := wechatError(bridge.ErrRetryLater, 45011, "api minute-quota reach limit")
		w.wechat.FailNext(ming, busy, busy, busy)
		res := w.employeeSays(ann, chat, "hello")
		w.after(2 * time.Second)
		w.after(4 * time.Second)
		w.after(time.Hour)
		w.customerGets(ming)
		w.employeeGets(ann, "Your message to WeChat customer 1 could not be delivered (WeChat error 45011).")
		assertArchived(t, w.archived(chat), "delivery.retry(wechat)", "delivery.retry(wechat)", "delivery.failed(45011)")
		// The failed message does not count against the cap.
		w.employeeSays(ann, chat, "2")
		w.employeeSays(ann, chat, "3")
		if r := w.employeeSays(ann, chat, "4"); r.Outcome != bridge.OutcomeSent {
			t.Errorf("third delivered message after a failure (%s) = %+v; want sent", res.MessageID, r)
		}
	}, func(p *bridge.Policy) { p.RetryAttempts = 3 })
}

func TestOutcomeUnknownIsNeverResent(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		w.wechat.FailNext(ming, wechatError(bridge.ErrOutcomeUnknown, 0, "read tcp: i/o timeout after the request was sent"))
		w.employeeSays(ann, chat, "did this arrive?")
		w.after(time.Hour)
		w.customerGets(ming) // the recording sender saw no success; the engine must not try again
		w.employeeGets(ann, "WeChat did not confirm your message to WeChat customer 1; it may or may not have arrived. It will not be resent automatically.")
		assertArchived(t, w.archived(chat), "employee.message", "delivery.unknown(wechat)", "auto.message(employee.outcome_unknown)")
	})
}

func TestSendThatOutlivesItsTimeoutIsOutcomeUnknown(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		w.wechat.Block = func(ctx context.Context) error {
			<-ctx.Done() // WeChat never answers
			return ctx.Err()
		}
		w.employeeSays(ann, chat, "slow")
		w.wechat.Block = nil
		w.after(time.Hour)
		w.customerGets(ming)
		assertArchived(t, w.archived(chat), "delivery.unknown(wechat)")
		if n := count(w.archived(chat), "delivery.unknown(wechat)"); n != 1 {
			t.Errorf("outcome-unknown records = %d; want 1", n)
		}
	}, func(p *bridge.Policy) { p.SendTimeout = bridge.Duration(20 * time.Millisecond) })
}

func TestTeamsRecipientGoneMarksTheEmployeeUnreachable(t *testing.T) {
	scenario(t, func(w *world) {
		activeChat(w)
		w.teams.FailNext(ann, &bridge.DeliveryError{Kind: bridge.ErrRecipientGone, Status: 403, Message: "ConversationBlockedByUser"})
		w.customerSays(ming, "are you there?")
		emp, err := w.engine.Employee(w.ctx, ann)
		if err != nil {
			t.Fatal(err)
		}
		if emp.Reachable {
			t.Error("employee still reachable after Teams answered 403 ConversationBlockedByUser")
		}
	})
}

func TestTeams429IsRetriedAfterRetryAfter(t *testing.T) {
	scenario(t, func(w *world) {
		activeChat(w)
		w.teams.FailNext(ann, &bridge.DeliveryError{Kind: bridge.ErrRetryLater, Status: 429, Message: "Throttled", Delay: 7 * time.Second})
		w.customerSays(ming, "one")
		w.customerSays(ming, "two")
		w.employeeGets(ann)
		w.after(6 * time.Second)
		w.employeeGets(ann)
		w.after(time.Second)
		w.employeeGets(ann, "one", "two") // in order, nothing lost
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

// A message still on its way when the customer writes reaches them after their message, so it
// counts toward the new streak: the customer never sees more than three in a row.
func TestMessagesStillOnTheirWayCountTowardTheNextStreak(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		busy := wechatError(bridge.ErrRetryLater, -1, "system error")
		w.wechat.FailNext(ming, busy)
		w.employeeSays(ann, chat, "one") // WeChat is busy: retried in 2 s
		w.customerGets(ming)
		w.customerSays(ming, "are you there?")
		for _, m := range []string{"two", "three"} {
			if res := w.employeeSays(ann, chat, m); res.Outcome != bridge.OutcomeSent {
				t.Fatalf("%s: %+v; want sent", m, res)
			}
		}
		if res := w.employeeSays(ann, chat, "four"); res.Outcome != bridge.OutcomeQueued {
			t.Fatalf("four: %+v; want queued (one, two and three make three after the customer's message)", res)
		}
		w.after(2 * time.Second)
		w.customerGets(ming, "one", "two", "three")
		w.customerSays(ming, "ok")
		w.customerGets(ming, "four")
	})
}
