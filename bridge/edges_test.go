package bridge_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
)

// The edges of the policy reviewers found broken (issue 12), each as the story they told. Ann and
// Bob are employees; ming is a WeChat customer.

// duringNextSend runs fn while the next send to the customer is with WeChat (it has not arrived
// yet), then answers that send with answer (nil lets it arrive).
func duringNextSend(w *world, fn func(ctx context.Context), answer error) {
	var once sync.Once
	w.wechat.Block = func(ctx context.Context) error {
		var err error
		once.Do(func() {
			fn(ctx)
			err = answer
		})
		return err
	}
}

// cancelledFor is the notice telling an author that n of their messages to ming were cancelled.
func cancelledFor(n, reason string) string {
	return "Not delivered: " + n + " of your message(s) to WeChat customer 1 cancelled: " + reason + "."
}

func TestADisabledEmployeesQueuedMessagesNeverGoOut(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		chat := w.scan(ming, ann)
		w.customerGets(ming, w.initialToCustomer())
		res := w.employeeSays(ann, chat, "Hello from Ann")
		if res.Outcome != bridge.OutcomeQueued {
			t.Fatalf("Ann's message = %+v; want queued (the customer has not written)", res)
		}
		w.seenTeams[ann] = len(w.teams.Texts(ann))
		if err := w.engine.DisableEmployee(w.ctx, ann, "admin:it@acme.example"); err != nil {
			t.Fatal(err)
		}
		w.drain()
		w.employeeGets(ann, cancelledFor("1", "WeChat was disabled for your account"))

		res = w.customerSays(ming, "Hi, anyone there?")
		if res.Outcome != bridge.OutcomeRefused || res.Reason != "no_enabled_member" {
			t.Errorf("customer message = %+v; want refused: nobody in the chat may use WeChat", res)
		}
		w.customerGets(ming, w.en().Unavailable) // told, not left talking to nobody; Ann's message never
		w.after(25 * time.Hour)
		w.after(24 * time.Hour)
		w.employeeGets(ann) // disabled: no customer message, no 24 h notice, nothing
		assertArchived(t, w.archived(chat), "message.queued(pending)", "message.cancelled(WeChat was disabled for your account)",
			"customer.message", "auto.message(customer.unavailable)")
	})
}

func TestADisabledColleagueGetsNoChatNotices(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		w.enable(bob, "Bob Chan")
		if err := w.engine.ChangeMembers(w.ctx, bridge.MembersChange{Chat: chat, Add: []bridge.EmployeeID{bob}, By: ann}); err != nil {
			t.Fatal(err)
		}
		w.drain()
		w.seenTeams[bob] = len(w.teams.Texts(bob))
		w.seenTeams[ann] = len(w.teams.Texts(ann))
		if err := w.engine.DisableEmployee(w.ctx, bob, "admin:it@acme.example"); err != nil {
			t.Fatal(err)
		}
		w.customerSays(ming, "still there?")
		w.after(24 * time.Hour)
		w.employeeGets(ann, "still there?", w.staff().Notice24h)
		w.employeeGets(bob)  // disabled: neither the customer's message nor the 24 h notice
		w.customerGets(ming) // members changed before the customer wrote: nothing to tell them
	})
}

func TestARebindingScanCancelsThePreviousEmployeesQueue(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		w.enable(bob, "Bob Chan")
		chat := w.scan(ming, ann)
		w.employeeSays(ann, chat, "Ann one")
		w.employeeSays(ann, chat, "Ann two")
		w.seenTeams[ann] = len(w.teams.Texts(ann))
		w.seenWeChat[ming] = len(w.wechat.Texts(ming))

		if again := w.scan(ming, bob); again != chat {
			t.Fatalf("rebinding made chat %d; want the same chat %d", again, chat)
		}
		w.customerSays(ming, "Hello Bob")
		w.customerGets(ming, w.initialToCustomer()) // none of Ann's messages
		w.employeeGets(ann, "WeChat customer 1 scanned another employee's QR code and now chats with them.",
			cancelledFor("2", "the customer scanned another employee's QR code and now chats with them"))
		w.employeeGets(bob, w.staff().Initial, "Hello Bob") // not "2 queued message(s) sent"
		assertArchived(t, w.archived(chat), "chat.members", "message.cancelled(the customer scanned another employee's QR code and now chats with them)",
			"message.cancelled(the customer scanned another employee's QR code and now chats with them)")
	})
}

func TestAChatCappedByAMessageThatFailsForGoodOpensAgain(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		w.employeeSays(ann, chat, "one")
		w.employeeSays(ann, chat, "two")
		w.wechat.FailNext(ming, wechatError(nil, 45002, "content size out of limit"))
		w.employeeSays(ann, chat, "three") // reaches the cap, then WeChat refuses it for good
		w.customerGets(ming, "one", "two")
		w.employeeGets(ann, w.staff().Limit, "Your message to WeChat customer 1 could not be delivered (WeChat error 45002).")
		if got := w.status(chat); got != bridge.StatusActive {
			t.Errorf("status = %s; want active: only two of three reached the customer", got)
		}
		res := w.employeeSays(ann, chat, "three, shorter")
		if res.Outcome != bridge.OutcomeSent {
			t.Errorf("next message = %+v; want sent", res)
		}
		w.customerGets(ming, "three, shorter")
		if got := w.status(chat); got != bridge.StatusCapped {
			t.Errorf("status = %s; want capped: three reached the customer", got)
		}
	})
}

func TestAQueuedMessageGoesOutWhenTheMessageThatCappedTheChatRunsOutOfRetries(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		busy := wechatError(bridge.ErrRetryLater, -1, "system error")
		w.employeeSays(ann, chat, "one")
		w.employeeSays(ann, chat, "two")
		w.wechat.FailNext(ming, busy, busy, busy, busy, busy)
		w.employeeSays(ann, chat, "three")
		if res := w.employeeSays(ann, chat, "four"); res.Outcome != bridge.OutcomeQueued {
			t.Fatalf("four = %+v; want queued behind the cap", res)
		}
		w.seenTeams[ann] = len(w.teams.Texts(ann))
		for range 5 {
			w.after(time.Minute) // every retry fails; the fifth attempt is the last
		}
		w.customerGets(ming, "one", "two", "four")
		w.employeeGets(ann, "Your message to WeChat customer 1 could not be delivered (WeChat error -1).",
			"1 queued message(s) sent to WeChat customer 1: a message counted toward the limit was not delivered.", w.staff().Limit)
		if got := w.status(chat); got != bridge.StatusCapped {
			t.Errorf("status = %s; want capped (one, two, four)", got)
		}
		if win := w.lastTeams(ann).Window; win.RepliesLeft != 0 || win.Queued != 0 {
			t.Errorf("window shown = %+v; want 0 replies left, nothing queued", win)
		}
	})
}

func TestARetriedSendNeverReachesACustomerWhoLeft(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		duringNextSend(w, func(ctx context.Context) {
			if _, err := w.engine.CustomerWrites(ctx, bridge.Inbound{Contact: ming, Message: bridge.TextMessage("#LEAVE")}); err != nil {
				t.Error(err)
			}
		}, wechatError(bridge.ErrRetryLater, -1, "system error"))
		w.employeeSays(ann, chat, "Here is the report you asked for")
		w.after(time.Hour)
		w.customerGets(ming, w.en().LeaveConfirm) // and nothing after it
		w.employeeGets(ann, "WeChat customer 1 left the chat (#LEAVE). 0 queued message(s) cancelled.",
			cancelledFor("1", "the customer left the chat (#LEAVE)"))
		assertArchived(t, w.archived(chat), "customer.leave", "message.cancelled(the customer left the chat (#LEAVE))")
	})
}

func TestA45015AfterAnUnsubscribeCancelsTheMessage(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		w.enable(bob, "Bob Chan")
		duringNextSend(w, func(ctx context.Context) {
			if err := w.engine.Unsubscribe(ctx, ming, ""); err != nil {
				t.Error(err)
			}
		}, wechatError(bridge.ErrWindowClosed, 45015, "response out of time limit or subscription is canceled"))
		w.employeeSays(ann, chat, "Stale news")
		if got := w.status(chat); got != bridge.StatusClosed {
			t.Errorf("status = %s; want closed", got)
		}
		w.wechat.Block = nil
		w.after(21 * 24 * time.Hour) // weeks later the customer scans Bob's code
		w.scan(ming, bob)
		w.customerSays(ming, "Hello Bob")
		w.customerGets(ming, w.initialToCustomer())
		w.employeeGets(ann, "WeChat customer 1 unfollowed the WeChat account; the chat is closed. 0 queued message(s) cancelled.",
			cancelledFor("1", "the customer unfollowed the WeChat account"))
		assertArchived(t, w.archived(chat), "customer.unsubscribe", "message.cancelled(the customer unfollowed the WeChat account)")
	})
}

func TestADelayedOnHoldPromptIsCancelledWhenTheCustomerReplies(t *testing.T) {
	dailyQuota := wechatError(bridge.ErrRetryLater, 45009, "reach max api daily quota limit")
	for _, during := range []bool{false, true} {
		name := map[bool]string{false: "waiting to be retried", true: "while being sent"}[during]
		t.Run(name, func(t *testing.T) {
			scenario(t, func(w *world) {
				chat := activeChat(w)
				for _, m := range []string{"1", "2", "3", "4"} {
					w.employeeSays(ann, chat, m)
				}
				w.customerGets(ming, "1", "2", "3")
				if during {
					duringNextSend(w, func(ctx context.Context) {
						if _, err := w.engine.CustomerWrites(ctx, bridge.Inbound{Contact: ming, Message: bridge.TextMessage("sorry, busy day")}); err != nil {
							t.Error(err)
						}
					}, dailyQuota)
					w.after(24 * time.Hour) // the on-hold prompt goes out, the customer writes meanwhile, WeChat says 45009
				} else {
					w.wechat.FailNext(ming, dailyQuota)
					w.after(24 * time.Hour) // the on-hold prompt: 45009, to be retried
					w.customerSays(ming, "sorry, busy day")
				}
				w.after(time.Hour)
				w.customerGets(ming, "4") // no prompt after their reply
				for _, m := range []string{"5", "6"} {
					if res := w.employeeSays(ann, chat, m); res.Outcome != bridge.OutcomeSent {
						t.Errorf("%s = %+v; want sent (the cancelled prompt used none of the new window)", m, res)
					}
				}
				assertArchived(t, w.archived(chat), "auto.message(customer.on_hold)", "customer.message", "message.cancelled(the customer wrote before it went out)")
			})
		})
	}
}

func TestARefusedScanLeavesALiveChatAsItWas(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		res, err := w.engine.Connect(w.ctx, bridge.Connect{Contact: ming, Scene: "emp:nobody", Event: "SCAN"})
		if err != nil || res.Outcome != bridge.OutcomeRefused {
			t.Fatalf("scan of an unknown code = %+v, %v; want refused", res, err)
		}
		w.drain()
		w.customerGets(ming, w.en().Unavailable)
		if got := w.status(chat); got != bridge.StatusActive {
			t.Errorf("status = %s; want still active", got)
		}
		if res := w.employeeSays(ann, chat, "Following up"); res.Outcome != bridge.OutcomeSent {
			t.Errorf("Ann's next message = %+v; want sent as before", res)
		}
		w.customerGets(ming, "Following up")
		w.after(24 * time.Hour)
		w.employeeGets(ann, w.staff().Notice24h) // the timers are still there
	})
}

func TestTheLimitNoticeSaysWhenWeChatsQuotaStoppedTheChat(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		w.enable(bob, "Bob Chan")
		w.after(25 * time.Hour) // silent for a day: each change of members is told at once
		w.seenTeams[ann] = len(w.teams.Texts(ann))
		for i := range 3 {
			change := bridge.MembersChange{Chat: chat, By: ann}
			if i%2 == 0 {
				change.Add = []bridge.EmployeeID{bob}
			} else {
				change.Remove = []bridge.EmployeeID{bob}
			}
			if err := w.engine.ChangeMembers(w.ctx, change); err != nil {
				t.Fatal(err)
			}
		}
		w.drain()
		w.employeeSays(ann, chat, "a")
		w.employeeSays(ann, chat, "b") // 3 prompts + 2 = WeChat's 5
		w.customerGets(ming, w.en().MembersChanged, w.en().MembersChanged, w.en().MembersChanged, "a", "b")
		texts := w.teams.Texts(ann)
		want := "WeChat allows 5 messages to WeChat customer 1, including system messages, until they reply, and they have all been used. You cannot send any more messages until your contact replies."
		if !slices.Contains(texts, want) || slices.Contains(texts, w.staff().Limit) {
			t.Errorf("Ann got %q; want the quota's notice, not the cap's", texts)
		}
		res := w.employeeSays(ann, chat, "c")
		if res.Outcome != bridge.OutcomeQueued || res.Reason != "quota" {
			t.Errorf("c = %+v; want queued because of the quota", res)
		}
		if got := w.lastTeams(ann).Message.Text; got != "Queued (1 of 10): WeChat's 5 messages to WeChat customer 1, including system messages, are used up until they reply. It will be sent when they reply." {
			t.Errorf("Ann was told %q", got)
		}
	})
}

func TestATextThatShowsNothingIsEmpty(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		for _, blank := range []string{"\u200b", " \u200b\ufeff\u2060 ", "\u3164", "\u00ad\u200d"} {
			if res := w.employeeSays(ann, chat, blank); res.Outcome != bridge.OutcomeRefused || res.Reason != "empty" {
				t.Errorf("%+q = %+v; want refused as empty", blank, res)
			}
		}
		if res := w.employeeSays(ann, chat, "ok\u200b"); res.Outcome != bridge.OutcomeSent {
			t.Errorf("a text with a zero-width space in it = %+v; want sent", res)
		}
		w.customerGets(ming, "ok\u200b")
	})
}
