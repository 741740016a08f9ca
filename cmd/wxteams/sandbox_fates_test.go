package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/console"
)

// fates are the pane's own messages with their fate marks, one a line.
func fates(items []console.PaneItem) string {
	var b strings.Builder
	for _, it := range items {
		if it.Mine {
			b.WriteString(it.Text + " [" + it.Fate + "] " + it.FateText + "\n")
		}
	}
	return b.String()
}

// waitFates waits until Megan's pane marks her messages so.
func (r *sandboxRun) waitFates(t *testing.T, employee, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		items, err := r.world.TeamsPane(context.Background(), employee)
		if got = fates(items); err == nil && got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the Teams pane marks:\n%s\nwant:\n%s", got, want)
}

// The sandbox names a customer as wxteams does everywhere, marks each of the employee's messages
// with its fate from the archive, groups receipts under their message in the live archive, and
// shows a colleague's message to a team chat's other members with its author.
func TestSandboxNamesFatesAndTeamChats(t *testing.T) {
	r := startSandboxOn(t, filepath.Join(t.TempDir(), "sandbox.db"), "127.0.0.1:0")
	ctx := context.Background()
	customer := r.connect(t, "Hello Megan")
	st, err := r.world.State(ctx)
	if err != nil || len(st.Customers) != 1 || st.Customers[0].Name != "WeChat customer 1" {
		t.Fatalf("customers = %+v, %v; want WeChat customer 1", st, err)
	}

	for _, text := range []string{"One", "Two", "Three", "Four"} {
		if err := r.world.TeamsSay(ctx, megan.id, text); err != nil {
			t.Fatal(err)
		}
	}
	r.waitFates(t, megan.id, "One [delivered] \nTwo [delivered] \nThree [delivered] \n"+
		"Four [queued] the limit of consecutive messages without a reply was reached\n")
	if err := r.world.TeamsSay(ctx, megan.id, "help"); err != nil { // a command has no fate
		t.Fatal(err)
	}
	waitPane(t, "Megan's Teams", r.teams(t, megan.id), "Commands:")
	r.waitFates(t, megan.id, "One [delivered] \nTwo [delivered] \nThree [delivered] \n"+
		"Four [queued] the limit of consecutive messages without a reply was reached\nhelp [] \n")
	if err := r.world.WeChatSay(ctx, customer, "#LEAVE"); err != nil {
		t.Fatal(err)
	}
	r.waitFates(t, megan.id, "One [delivered] \nTwo [delivered] \nThree [delivered] \n"+
		"Four [cancelled] the customer left the chat (#LEAVE)\nhelp [] \n")

	// The live archive: receipts name their message and say what they mean; actors by name.
	items, err := r.world.Timeline(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	four, author := "", ""
	var receipts, named int
	for _, it := range items {
		if it.Kind == "employee.message" && it.Text == "Four" {
			four, author = it.MessageID, it.ActorName
		}
		if it.ActorName == "WeChat customer 1" || it.ActorName == "Megan Bowen" {
			named++
		}
	}
	for _, it := range items {
		if it.Receipt && it.MessageID == four {
			receipts++
			if it.State == "queued" && !strings.Contains(it.Detail, "limit of consecutive messages") {
				t.Errorf("the queued receipt says %q", it.Detail)
			}
		}
	}
	if four == "" || author != "Megan Bowen" || receipts != 2 || named == 0 {
		t.Errorf("the timeline shows Megan's fourth message (%q) by %q with %d receipts (want queued and cancelled), and %d records by name", four, author, receipts, named)
	}

	// A team chat: Alex added; the customer's message reaches both, Megan's shows in Alex's pane
	// with her name.
	other := r.connect(t, "Hi, a second question")
	chats, err := r.srv.engine.Chats(ctx, bridge.EmployeeID(megan.id))
	if err != nil {
		t.Fatal(err)
	}
	var chat bridge.ChatID
	for _, c := range chats {
		if c.Contact == bridge.OpenID(other) {
			chat = c.Chat
		}
	}
	alex := sandboxStaff[1]
	if err := r.srv.engine.ChangeMembers(ctx, bridge.MembersChange{Chat: chat, Add: []bridge.EmployeeID{bridge.EmployeeID(alex.id)}, Actor: "admin:test", ActorName: "an administrator"}); err != nil {
		t.Fatal(err)
	}
	if err := r.world.WeChatSay(ctx, other, "For both of you"); err != nil {
		t.Fatal(err)
	}
	waitPane(t, "Megan's Teams", r.teams(t, megan.id), "For both of you")
	waitPane(t, "Alex's Teams", r.teams(t, alex.id), "For both of you")
	if err := r.world.TeamsSay(ctx, megan.id, "Alex will help you"); err != nil {
		t.Fatal(err)
	}
	for _, it := range waitPane(t, "Alex's Teams", r.teams(t, alex.id), "Alex will help you") {
		if strings.Contains(it.Text, "Alex will help you") && (it.Author != "Megan Bowen" || it.Mine) {
			t.Errorf("Megan's message in Alex's pane = %+v; want it labelled with her name", it)
		}
	}
}
