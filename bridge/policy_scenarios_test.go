package bridge_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
)

// These scenarios follow the MultiLine WeChat page and DESIGN §2, one rule each. Ann is an
// employee; ming is her WeChat customer.

const (
	ann  bridge.EmployeeID = "ann-0001"
	bob  bridge.EmployeeID = "bob-0002"
	ming bridge.OpenID     = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
)

func TestCustomerScansQRAndBothSidesAreGreeted(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		chat := w.scan(ming, ann)

		w.customerGets(ming, w.initialToCustomer())
		w.employeeGets(ann, w.staff().Initial)
		if got := w.status(chat); got != bridge.StatusPending {
			t.Errorf("status after scan = %s; want pending", got)
		}
		assertArchived(t, w.archived(chat),
			"chat.status(→pending)", "chat.routing", "auto.message(customer.initial)", "auto.message(employee.initial)",
			"delivery.delivered(wechat)", "delivery.delivered(teams)")
	})
}

func TestEmployeeMessagesQueueUntilTheCustomerWritesFirst(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		chat := w.scan(ming, ann)
		w.customerGets(ming, w.initialToCustomer())
		w.employeeGets(ann, w.staff().Initial)

		res := w.employeeSays(ann, chat, "Hello Mr Ming, this is Ann from Acme.")
		if res.Outcome != bridge.OutcomeQueued || res.Reason != "pending" {
			t.Errorf("result = %+v; want queued (pending)", res)
		}
		w.customerGets(ming) // nothing: WeChat lets us write only after the customer does
		w.employeeGets(ann, "Queued (1 of 10): WeChat customer 1 has not written yet, and WeChat lets you message a customer only after they write. It will be sent when they do.")

		w.employeeSays(ann, chat, "Are you free to talk tomorrow?")
		w.customerSays(ming, "Hi Ann")
		w.customerGets(ming, "Hello Mr Ming, this is Ann from Acme.", "Are you free to talk tomorrow?")
		w.employeeGets(ann, "Queued (2 of 10): WeChat customer 1 has not written yet, and WeChat lets you message a customer only after they write. It will be sent when they do.",
			"Hi Ann", "WeChat customer 1 replied: 2 queued message(s) sent.")
		card := w.teams.Messages(ann)[3]
		if card.Kind != bridge.TeamsCustomerMessage || card.Window.RepliesLeft != 1 || card.Window.Status != bridge.StatusActive {
			t.Errorf("card for the customer's message = %+v; want a customer message showing 1 reply left", card)
		}
		assertArchived(t, w.archived(chat), "employee.message", "message.queued(pending)", "customer.message",
			"chat.status(pending→active)", "message.released", "message.released")
	})
}

func TestTheCapOfThreeConsecutiveMessages(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		chat := w.scan(ming, ann)
		w.customerSays(ming, "Hello, I'd like to ask about my account.")
		w.customerGets(ming, w.initialToCustomer())
		w.employeeGets(ann, w.staff().Initial, "Hello, I'd like to ask about my account.")

		w.employeeSays(ann, chat, "One")
		w.employeeSays(ann, chat, "Two")
		w.customerGets(ming, "One", "Two")
		w.employeeGets(ann)
		if win := w.lastTeams(ann).Window; win.RepliesLeft != 3 {
			t.Logf("window before the cap = %+v", win)
		}

		res := w.employeeSays(ann, chat, "Three")
		if res.Outcome != bridge.OutcomeSent || res.Window.RepliesLeft != 0 {
			t.Errorf("third message = %+v; want sent with 0 replies left", res)
		}
		w.customerGets(ming, "Three")
		// "Message Limit Reached by Employee (after 3 Messages)": the employee is told at once; the customer is not.
		w.employeeGets(ann, w.staff().Limit)
		if got := w.status(chat); got != bridge.StatusCapped {
			t.Errorf("status = %s; want capped", got)
		}

		res = w.employeeSays(ann, chat, "Four")
		if res.Outcome != bridge.OutcomeQueued || res.Reason != "capped" {
			t.Errorf("fourth message = %+v; want queued (capped)", res)
		}
		// "No auto message will be sent to the customer" when the limit is reached.
		w.customerGets(ming)
		w.employeeGets(ann, "Queued (1 of 10): you have sent the maximum of consecutive messages without a reply from WeChat customer 1. It will be sent when they reply.")
		w.employeeSays(ann, chat, "Five")
		w.customerGets(ming)

		// "If the Message Limit Was Previously Reached": after 24 hours of silence the employee gets
		// the 24 h notice and the customer the on-hold prompt, once.
		w.after(24 * time.Hour)
		w.customerGets(ming, w.en().OnHold)
		w.employeeGets(ann, "Queued (2 of 10): you have sent the maximum of consecutive messages without a reply from WeChat customer 1. It will be sent when they reply.",
			w.staff().Notice24h)
		w.employeeSays(ann, chat, "Six")
		w.after(time.Hour)
		w.customerGets(ming)

		// The customer replies: counters reset, the queue flushes FIFO within the cap.
		w.customerSays(ming, "Sorry, I was away")
		w.customerGets(ming, "Four", "Five", "Six")
		w.employeeGets(ann, "Queued (3 of 10): you have sent the maximum of consecutive messages without a reply from WeChat customer 1. It will be sent when they reply.",
			"Sorry, I was away", "WeChat customer 1 replied: 3 queued message(s) sent.", w.staff().Limit)
		if got := w.status(chat); got != bridge.StatusCapped {
			t.Errorf("status after the reply = %s; want capped again (three went out)", got)
		}
		got := w.archived(chat)
		assertArchived(t, got, "message.queued(capped)", "message.queued(capped)", "auto.message(customer.on_hold)", "message.queued(capped)",
			"customer.message", "chat.status(capped→active)", "message.released", "message.released", "message.released")
		if n := count(got, "auto.message(customer.on_hold)"); n != 1 {
			t.Errorf("on-hold prompts archived = %d; want 1 per pause", n)
		}
	})
}

func TestFlushStopsAtTheCapAndTheRestStaysQueued(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		chat := w.scan(ming, ann)
		for _, m := range []string{"q1", "q2", "q3", "q4", "q5"} {
			w.employeeSays(ann, chat, m)
		}
		w.seenTeams[ann] = len(w.teams.Texts(ann))
		w.seenWeChat[ming] = len(w.wechat.Texts(ming))

		w.customerSays(ming, "Hi")
		w.customerGets(ming, "q1", "q2", "q3")
		w.employeeGets(ann, "Hi", "WeChat customer 1 replied: 3 queued message(s) sent, 2 still queued.", w.staff().Limit)
		if got := w.status(chat); got != bridge.StatusCapped {
			t.Errorf("status = %s; want capped", got)
		}
		w.customerSays(ming, "Go on")
		w.customerGets(ming, "q4", "q5")
	})
}

func TestQueueLimit(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		chat := w.scan(ming, ann)
		w.employeeGets(ann, w.staff().Initial)
		w.employeeSays(ann, chat, "one")
		w.employeeSays(ann, chat, "two")
		res := w.employeeSays(ann, chat, "three")
		if res.Outcome != bridge.OutcomeRefused || res.Reason != "queue_full" {
			t.Errorf("third queued message = %+v; want refused (queue_full)", res)
		}
		texts := w.teams.Texts(ann)
		if last := texts[len(texts)-1]; last != "Not sent: 2 messages are already queued for WeChat customer 1. Wait for them to reply." {
			t.Errorf("employee told %q", last)
		}
		w.customerSays(ming, "hi")
		w.customerGets(ming, w.initialToCustomer(), "one", "two")
		assertArchived(t, w.archived(chat), "message.queued(pending)", "message.queued(pending)", "employee.message", "message.refused(queue_full)")
	}, func(p *bridge.Policy) { p.QueueLimit = 2 })
}

func TestThe24HourNoticeToTheEmployee(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		chat := w.scan(ming, ann)
		w.customerSays(ming, "Thanks, talk soon")
		w.employeeSays(ann, chat, "Speak tomorrow")
		w.customerGets(ming, w.initialToCustomer(), "Speak tomorrow")
		w.employeeGets(ann, w.staff().Initial, "Thanks, talk soon")

		w.after(23*time.Hour + 59*time.Minute)
		w.employeeGets(ann)
		w.after(time.Minute)
		// "After 24 Hours of No Response from Customer": the employee is told; the customer is not.
		w.employeeGets(ann, w.staff().Notice24h)
		w.customerGets(ming)
		w.after(time.Hour)
		w.employeeGets(ann)
		if n := count(w.archived(chat), "auto.message(employee.notice_24h)"); n != 1 {
			t.Errorf("24 h notices archived = %d; want 1", n)
		}
	})
}

func TestInactiveAfter48HoursQueuesUntilTheCustomerWrites(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		chat := w.scan(ming, ann)
		w.customerSays(ming, "Hello")
		w.seenTeams[ann] = len(w.teams.Texts(ann))
		w.seenWeChat[ming] = len(w.wechat.Texts(ming))

		w.after(24 * time.Hour)
		w.employeeGets(ann, w.staff().Notice24h)
		w.after(24 * time.Hour)
		w.employeeGets(ann, "Your chat with WeChat customer 1 is now inactive: they have not replied for 48 hours. Messages you send will be queued (up to 10) and delivered when they reply.")
		w.customerGets(ming) // no reinstate template configured: nothing can reach the customer
		if got := w.status(chat); got != bridge.StatusInactive {
			t.Fatalf("status after 48 h = %s; want inactive", got)
		}
		res := w.employeeSays(ann, chat, "Checking in")
		if res.Outcome != bridge.OutcomeQueued || res.Reason != "inactive" {
			t.Errorf("message to an inactive chat = %+v; want queued (inactive)", res)
		}
		w.customerGets(ming)
		w.after(100 * time.Hour)
		w.customerSays(ming, "I'm back")
		w.customerGets(ming, "Checking in")
		assertArchived(t, w.archived(chat), "chat.status(active→inactive)", "auto.message(employee.inactive)",
			"message.queued(inactive)", "customer.message", "chat.status(inactive→active)", "message.released")
	})
}

func TestReinstateTemplateIsSentOnceWhenTheChatGoesInactive(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		chat := w.scan(ming, ann)
		w.customerSays(ming, "Hello")
		w.seenWeChat[ming] = len(w.wechat.Texts(ming))
		w.seenTeams[ann] = len(w.teams.Texts(ann))

		w.after(48 * time.Hour)
		w.customerGets(ming, "template:TPL-REPLY-1")
		w.employeeGets(ann, w.staff().Notice24h,
			"Your chat with WeChat customer 1 is now inactive: they have not replied for 48 hours. Messages you send will be queued (up to 10) and delivered when they reply.",
			"WeChat customer 1 was sent a WeChat notification asking them to reply.")
		sent := w.wechat.All()
		tpl := sent[len(sent)-1].WeChat.Template
		if tpl.Data["keyword1"] != "Acme Securities" {
			t.Errorf("template data = %v; want {firm} filled in", tpl.Data)
		}
		w.employeeSays(ann, chat, "ping")
		w.after(72 * time.Hour)
		w.customerGets(ming) // once per inactivity
		assertArchived(t, w.archived(chat), "auto.message(customer.reinstate:TPL-REPLY-1)", "delivery.delivered(wechat)")
	}, func(p *bridge.Policy) {
		p.Reinstate = &bridge.Template{ID: "TPL-REPLY-1", Data: map[string]string{"keyword1": "{firm}", "keyword2": "Your adviser has a message for you"}}
	})
}

func TestLeaveInAnyCaseAndFullWidth(t *testing.T) {
	for _, leave := range []string{"#LEAVE", "#leave", "  #Leave\n", "＃LEAVE", "＃ｌｅａｖｅ", "\u3000#LeAvE\u3000"} {
		t.Run(leave, func(t *testing.T) {
			if !bridge.IsLeave(leave) {
				t.Errorf("IsLeave(%q) = false", leave)
			}
		})
	}
	for _, not := range []string{"#LEAVES", "leave", "# LEAVE", "please #LEAVE", ""} {
		if bridge.IsLeave(not) {
			t.Errorf("IsLeave(%q) = true", not)
		}
	}
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		chat := w.scan(ming, ann)
		w.customerSays(ming, "hi")
		for _, m := range []string{"1", "2", "3", "4", "5"} {
			w.employeeSays(ann, chat, m)
		}
		w.seenTeams[ann] = len(w.teams.Texts(ann))
		w.seenWeChat[ming] = len(w.wechat.Texts(ming))

		w.customerSays(ming, " ＃leave ")
		w.customerGets(ming, w.en().LeaveConfirm)
		w.employeeGets(ann, "WeChat customer 1 left the chat (#LEAVE). 2 queued message(s) cancelled.")
		if got := w.status(chat); got != bridge.StatusLeft {
			t.Errorf("status = %s; want left", got)
		}
		res := w.employeeSays(ann, chat, "Are you still there?")
		if res.Outcome != bridge.OutcomeRefused || res.Reason != "left" {
			t.Errorf("message after #LEAVE = %+v; want refused (left)", res)
		}
		w.employeeGets(ann, "Not sent: WeChat customer 1 left the chat with #LEAVE. They can reconnect by scanning your QR code.")
		w.customerSays(ming, "hello?")
		w.customerGets(ming, w.en().NotConnected)
		w.employeeGets(ann)

		// Re-scanning reconnects.
		w.scan(ming, ann)
		w.customerGets(ming, w.initialToCustomer())
		w.employeeGets(ann, w.staff().Initial)
		if got := w.status(chat); got != bridge.StatusPending {
			t.Errorf("status after re-scan = %s; want pending", got)
		}
		assertArchived(t, w.archived(chat), "customer.message", "customer.leave", "chat.status(capped→left)",
			"message.cancelled(the customer left the chat (#LEAVE))", "message.cancelled(the customer left the chat (#LEAVE))",
			"auto.message(customer.leave_confirm)", "auto.message(employee.customer_left)", "message.refused(left)",
			"chat.status(left→pending)", "chat.routing")
	})
}

func TestMembersChangedReachTheCustomerWithThe24HourPrompt(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		w.enable(bob, "Bob Chan")
		chat := w.scan(ming, ann)
		w.customerSays(ming, "hi")
		w.seenWeChat[ming] = len(w.wechat.Texts(ming))
		w.seenTeams[ann] = len(w.teams.Texts(ann))
		change := func(add, remove []bridge.EmployeeID) {
			t.Helper()
			if err := w.engine.ChangeMembers(w.ctx, bridge.MembersChange{Chat: chat, Add: add, Remove: remove,
				Actor: "admin:it@acme.example", ActorName: "an administrator"}); err != nil {
				t.Fatal(err)
			}
			w.drain()
		}

		// The customer wrote a moment ago: employees are told at once, the customer is not (yet).
		change([]bridge.EmployeeID{bob}, nil)
		w.customerGets(ming)
		w.employeeGets(ann, "The chat with WeChat customer 1 changed (an administrator): added Bob Chan; removed nobody.")
		w.employeeGets(bob, "You were added to the chat with WeChat customer 1 (an administrator). You will see their messages and your colleagues' messages to them.")

		// 24 h of silence: the employees get their notice, the customer ONE prompt: members changed.
		w.after(24 * time.Hour)
		w.employeeGets(ann, w.staff().Notice24h)
		w.employeeGets(bob, w.staff().Notice24h)
		w.customerGets(ming, w.en().MembersChanged)

		// Already silent for 24 h: the customer is told at once.
		w.after(time.Hour)
		change(nil, []bridge.EmployeeID{bob})
		w.customerGets(ming, w.en().MembersChanged)
		w.employeeGets(ann, "The chat with WeChat customer 1 changed (an administrator): added nobody; removed Bob Chan.")
		w.employeeGets(bob, "You were removed from the chat with WeChat customer 1 (an administrator).")

		// The limit reached and members changed in the same pause: one prompt, the members-changed one.
		w.customerSays(ming, "back")
		for _, m := range []string{"1", "2", "3", "4"} {
			w.employeeSays(ann, chat, m) // 3 sent, the 4th queued
		}
		change([]bridge.EmployeeID{bob}, nil)
		w.customerGets(ming, "1", "2", "3")
		w.after(24 * time.Hour)
		w.customerGets(ming, w.en().MembersChanged) // 4 of WeChat's 5

		// A further change uses the 5th; after that WeChat takes nothing more until the customer writes.
		change(nil, []bridge.EmployeeID{bob})
		w.customerGets(ming, w.en().MembersChanged)
		change([]bridge.EmployeeID{bob}, nil)
		w.customerGets(ming)
		got := w.archived(chat)
		assertArchived(t, got, "chat.members", "auto.message(employee.notice_24h)", "auto.message(customer.members_changed)",
			"chat.members", "auto.message(customer.members_changed)")
		if n := count(got, "auto.message(customer.on_hold)"); n != 0 {
			t.Errorf("on-hold prompts = %d; want none (the members-changed prompt is the one prompt of each pause)", n)
		}
	})
}

func TestTheOnHoldPromptCanComeWhenTheFirstMessageIsQueued(t *testing.T) {
	scenario(t, func(w *world) {
		chat := activeChat(w)
		for _, m := range []string{"1", "2", "3"} {
			w.employeeSays(ann, chat, m)
		}
		w.customerGets(ming, "1", "2", "3")
		w.employeeSays(ann, chat, "4")
		w.customerGets(ming, w.en().OnHold) // "on_hold_prompt": "queue": at once
		w.employeeSays(ann, chat, "5")
		w.after(24 * time.Hour)
		w.customerGets(ming) // once per pause
		w.customerSays(ming, "ok")
		w.customerGets(ming, "4", "5")
	}, func(p *bridge.Policy) { p.OnHoldPrompt = bridge.OnHoldAtQueue })
}

func TestRescanningAnotherEmployeeRebindsTheChat(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		w.enable(bob, "Bob Chan")
		chat := w.scan(ming, ann)
		w.customerSays(ming, "hi Ann")
		w.seenTeams[ann] = len(w.teams.Texts(ann))

		again := w.scan(ming, bob)
		if again != chat {
			t.Errorf("re-scan made chat %d; want the customer's chat %d", again, chat)
		}
		w.employeeGets(ann, "WeChat customer 1 scanned another employee's QR code and now chats with them.")
		w.employeeGets(bob, w.staff().Initial)
		w.customerSays(ming, "hi Bob")
		w.employeeGets(bob, "hi Bob")
		w.employeeGets(ann)
		if res := w.employeeSays(ann, chat, "still there?"); res.Reason != "not_member" {
			t.Errorf("Ann writing to a chat she left = %+v; want refused (not_member)", res)
		}
	})
}

func TestUnknownOrDisabledSceneIsRefusedPolitely(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		if err := w.engine.DisableEmployee(w.ctx, ann, "admin:it@acme.example"); err != nil {
			t.Fatal(err)
		}
		for _, scene := range []string{"emp:nobody", bridge.SceneFor(ann)} {
			res, err := w.engine.Connect(w.ctx, bridge.Connect{Contact: ming, Scene: scene, Event: "SCAN"})
			if err != nil || res.Outcome != bridge.OutcomeRefused {
				t.Errorf("connect to %s = %+v, %v; want refused", scene, res, err)
			}
		}
		w.drain()
		w.customerGets(ming, w.en().Unavailable, w.en().Unavailable)
	})
}

func TestEmployeeNotEnabledIsRefused(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		chat := w.scan(ming, ann)
		w.customerSays(ming, "hi")
		if err := w.engine.DisableEmployee(w.ctx, ann, "admin:it@acme.example"); err != nil {
			t.Fatal(err)
		}
		w.seenTeams[ann] = len(w.teams.Texts(ann))
		w.seenWeChat[ming] = len(w.wechat.Texts(ming))
		res := w.employeeSays(ann, chat, "hello")
		if res.Outcome != bridge.OutcomeRefused || res.Reason != "not_enabled" {
			t.Errorf("result = %+v; want refused (not_enabled)", res)
		}
		w.employeeGets(ann, w.staff().NotEnabled)
		w.customerGets(ming)
		// Customer messages no longer reach a disabled employee (they are archived all the same).
		w.customerSays(ming, "anyone?")
		w.employeeGets(ann)
		assertArchived(t, w.archived(chat), "employee.message", "message.refused(not_enabled)", "customer.message")
	})
}

func TestUnsubscribeClosesTheChat(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		chat := w.scan(ming, ann)
		w.employeeSays(ann, chat, "queued before they wrote")
		w.seenTeams[ann] = len(w.teams.Texts(ann))
		if err := w.engine.Unsubscribe(w.ctx, ming, ""); err != nil {
			t.Fatal(err)
		}
		w.drain()
		w.employeeGets(ann, "WeChat customer 1 unfollowed the WeChat account; the chat is closed. 1 queued message(s) cancelled.")
		if got := w.status(chat); got != bridge.StatusClosed {
			t.Errorf("status = %s; want closed", got)
		}
		if res := w.employeeSays(ann, chat, "hello?"); res.Reason != "closed" {
			t.Errorf("message to a closed chat = %+v; want refused (closed)", res)
		}
		assertArchived(t, w.archived(chat), "customer.unsubscribe", "chat.status(pending→closed)",
			"message.cancelled(the customer unfollowed the WeChat account)", "auto.message(employee.unsubscribed)", "message.refused(closed)")
	})
}

func TestCustomerTextsInSimplifiedChinese(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		if _, err := w.engine.Connect(w.ctx, bridge.Connect{Contact: ming, Scene: bridge.SceneFor(ann), Event: "subscribe", Language: "zh_CN"}); err != nil {
			t.Fatal(err)
		}
		w.drain()
		zh := w.policy.Customer[bridge.LangChinese]
		w.customerGets(ming, zh.Initial+"\n\n"+strings.ReplaceAll(zh.RecordingNotice, "{firm}", "Acme Securities"))
		w.customerSays(ming, "＃LEAVE")
		w.customerGets(ming, zh.LeaveConfirm)
	})
}

func TestPolicyIsConfigurablePerFirm(t *testing.T) {
	p, err := bridge.ParsePolicy([]byte(`{
		"cap": 2, "quota": 5, "queue_limit": 4, "window": "48h", "notice_after": "12h",
		"employee_texts": {"limit": "Two is the limit."},
		"customer_texts": {"en": {"on_hold": "Please reply to continue."}}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Customer["en"].Initial != bridge.DefaultPolicy().Customer["en"].Initial || p.Customer["zh-CN"].OnHold == "" {
		t.Error("texts left out of the policy file did not keep their defaults")
	}
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		chat := w.scan(ming, ann)
		w.customerSays(ming, "hi")
		w.seenTeams[ann] = len(w.teams.Texts(ann))
		w.seenWeChat[ming] = len(w.wechat.Texts(ming))
		w.employeeSays(ann, chat, "a")
		w.employeeSays(ann, chat, "b")
		w.employeeGets(ann, "Two is the limit.")
		w.employeeSays(ann, chat, "c")
		w.customerGets(ming, "a", "b")
		w.after(12 * time.Hour)
		w.employeeGets(ann, "Queued (1 of 4): you have sent the maximum of consecutive messages without a reply from WeChat customer 1. It will be sent when they reply.",
			w.staff().Notice24h)
		w.customerGets(ming, "Please reply to continue.")
	}, func(pp *bridge.Policy) { *pp = p; pp.FirmName = "Acme Securities" })

	for _, bad := range []string{
		`{"cap": 0}`, `{"quota": 2}`, `{"notice_after": "72h"}`, `{"window": "soon"}`, `{"unknown_field": 1}`,
		`{"default_language": "fr"}`, `{"reinstate_template": {"data": {}}}`, `not json`, `{"on_hold_prompt": "never"}`,
		`{"max_text_bytes": 4096}`, `{"customer_texts": {"en": {"on_hold": "` + strings.Repeat("x", 2049) + `"}}}`,
		`{"firm_name": "` + strings.Repeat("Acme ", 420) + `"}`,
	} {
		if _, err := bridge.ParsePolicy([]byte(bad)); err == nil {
			t.Errorf("ParsePolicy(%s) accepted a bad policy", bad)
		}
	}
}

func TestDuplicateInputsAreHandledOnce(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable(ann, "Ann Lee")
		chat := w.scan(ming, ann)
		for range 3 {
			_, err := w.engine.CustomerWrites(w.ctx, bridge.Inbound{Contact: ming, Message: bridge.TextMessage("hi"), ExternalID: "6054768590064713728", DedupeKey: "wechat:o-ming-7d2f:6054768590064713728"})
			if err != nil && !isErr(err, bridge.ErrDuplicate) {
				t.Fatal(err)
			}
		}
		for range 2 {
			_, err := w.engine.EmployeeWrites(w.ctx, bridge.EmployeeMessage{Employee: ann, Chat: chat, Message: bridge.TextMessage("hello"), DedupeKey: "teams:1485983408511"})
			if err != nil && !isErr(err, bridge.ErrDuplicate) {
				t.Fatal(err)
			}
		}
		w.drain()
		got := w.archived(chat)
		if n := count(got, "customer.message"); n != 1 {
			t.Errorf("customer messages archived = %d; want 1", n)
		}
		if n := count(got, "employee.message"); n != 1 {
			t.Errorf("employee messages archived = %d; want 1", n)
		}
		w.customerGets(ming, w.initialToCustomer(), "hello")
	})
}
