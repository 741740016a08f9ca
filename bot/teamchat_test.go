package bot_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/compliance"
)

const (
	alexID = "bd1f3c55-1b4e-4d2c-9a5f-6d8e7c9b0a11"
	leeID  = "0c6e2a84-7b3d-4f0e-8c1a-2e9d5b7f4a33"
)

// received is everything a Teams user read since from.
func received(r *rig, aadID string, from int) string {
	return strings.Join(r.teams.Texts(aadID)[from:], "\n---\n")
}

// A team chat as the seed describes it: employees add, remove and hand over colleagues from Teams,
// administrators through the admin API; every member sees the customer's messages and their
// colleagues' messages to the customer, labelled; those who leave stop receiving.
func TestTeamChatsFromTeamsAndTheAdminAPI(t *testing.T) {
	eachStore(t, func(t *testing.T, store *sqlstore.Store) {
		r := newRig(t, store)
		r.enable(meganID, "Megan Bowen")
		r.enable(alexID, "Alex Wilber")
		r.teams.AddUser(leeID, "Lee Gu", tenant) // in Teams, WeChat not enabled
		const ming = "o-ming-team"
		r.wechat.ScanScene(r.ctx, ming, bridge.SceneFor(meganID))
		r.drain()
		r.wechat.Send(r.ctx, ming, "hello Megan")
		r.drain()
		chat := chatOf(t, r, ming)

		r.say(meganID, "add Lee")
		if got := r.lastTeams(meganID); !strings.Contains(got, `No colleague with WeChat enabled matches "Lee"`) {
			t.Errorf("add a colleague without WeChat = %q", got)
		}
		alexFrom := len(r.teams.Texts(alexID))
		r.say(meganID, "add alex")
		if got := r.lastTeams(meganID); !strings.Contains(got, "changed (Megan Bowen): added Alex Wilber; removed nobody") {
			t.Errorf("Megan after add = %q", got)
		}
		if got := received(r, alexID, alexFrom); !strings.Contains(got, "You were added to the chat with WeChat customer 1 (Megan Bowen)") {
			t.Errorf("Alex after add = %q", got)
		}

		// Both see the customer; each sees the other's messages to the customer, labelled.
		alexFrom, meganFrom := len(r.teams.Texts(alexID)), len(r.teams.Texts(meganID))
		r.wechat.Send(r.ctx, ming, "thanks, both of you")
		r.drain()
		r.say(meganID, "Alex will look at your portfolio")
		for who, from := range map[string]int{alexID: alexFrom, meganID: meganFrom} {
			if got := received(r, who, from); !strings.Contains(got, "thanks, both of you") {
				t.Errorf("%s did not see the customer's message: %q", who, got)
			}
		}
		if got := received(r, alexID, alexFrom); !strings.Contains(got, "Megan Bowen → WeChat customer 1") ||
			!strings.Contains(got, "Alex will look at your portfolio") || !strings.Contains(got, "Sent by your colleague") {
			t.Errorf("Alex did not see Megan's message labelled: %q", got)
		}
		r.say(alexID, "to 1")
		r.say(alexID, "Hello, this is Alex")
		if got := r.wechat.Texts(ming); got[len(got)-1] != "Hello, this is Alex" {
			t.Errorf("customer received %q; want Alex's message", got)
		}

		// Megan hands the customer over: she leaves and stops receiving.
		r.say(meganID, "transfer Alex Wilber")
		meganFrom = len(r.teams.Texts(meganID))
		r.wechat.Send(r.ctx, ming, "are you still there?")
		r.drain()
		if got := received(r, meganID, meganFrom); strings.Contains(got, "are you still there?") {
			t.Errorf("Megan still receives after the transfer: %q", got)
		}
		r.say(meganID, "one more thing")
		if got := r.lastTeams(meganID); !strings.Contains(got, "no current WeChat contact") {
			t.Errorf("Megan writing after the transfer = %q", got)
		}

		// The administrator puts Megan back, and takes her off again.
		status, body := r.admin(http.MethodPut, "/admin/v1/chats/"+chat.String()+"/members/"+meganID, "", bot.AdminRole)
		if status != http.StatusNoContent {
			t.Fatalf("admin add = %d %s", status, body)
		}
		status, body = r.admin(http.MethodGet, "/admin/v1/users/"+alexID+"/chats", "", bot.AdminRole)
		if status != http.StatusOK || !strings.Contains(string(body), `"name":"Megan Bowen"`) || !strings.Contains(string(body), `"name":"Alex Wilber"`) {
			t.Errorf("admin chats = %d %s; want the chat with both members", status, body)
		}
		for _, bad := range []struct {
			method, path string
			want         int
		}{
			{http.MethodPut, "/admin/v1/chats/999999/members/" + meganID, http.StatusNotFound},
			{http.MethodPut, "/admin/v1/chats/" + chat.String() + "/members/" + leeID, http.StatusNotFound},
			{http.MethodDelete, "/admin/v1/chats/" + chat.String() + "/members/" + alexID, http.StatusNoContent},
			{http.MethodDelete, "/admin/v1/chats/" + chat.String() + "/members/" + meganID, http.StatusConflict}, // the last one
		} {
			if status, body := r.admin(bad.method, bad.path, "", bot.AdminRole); status != bad.want {
				t.Errorf("%s %s = %d %s; want %d", bad.method, bad.path, status, body, bad.want)
			}
		}
		if status, _ := r.admin(http.MethodPut, "/admin/v1/chats/"+chat.String()+"/members/"+alexID, ""); status != http.StatusUnauthorized {
			t.Errorf("member change without a token = %d; want 401", status)
		}

		// Every change is in the chat's record with who made it.
		recs, err := r.store.ArchiveStream(r.ctx, compliance.ChatStream(int64(chat)))
		if err != nil {
			t.Fatal(err)
		}
		var actors []string
		for _, rec := range recs {
			if rec.Kind == compliance.KindMembers {
				actors = append(actors, rec.Actor)
			}
		}
		want := []string{"employee:" + meganID, "employee:" + meganID, "admin:it@acme.example", "admin:it@acme.example"}
		if !slices.Equal(actors, want) {
			t.Errorf("member changes archived by %q; want %q", actors, want)
		}
	})
}
