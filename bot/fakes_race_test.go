package bot_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wxteams/wxteams/bot/teamsfake"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
)

// TestTheTeamsFakeTakesAReceiverWhileTheBotSends: a load tool sets the fake's receiver while the
// bot may be sending to it (wxteams loadtest does); SetOnReceive takes the fake's lock, so the
// race detector finds nothing and the receiver set is the one told.
func TestTheTeamsFakeTakesAReceiverWhileTheBotSends(t *testing.T) {
	r := newRig(t, sqlstoretest.SQLite(t))
	r.enable(meganID, "Megan Bowen")
	emp, err := r.store.Employee(r.ctx, meganID)
	if err != nil {
		t.Fatal(err)
	}
	var told atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 3 { // within the bot's limit for one conversation
			if _, err := r.sender.SendTeams(r.ctx, emp, &bridge.TeamsMessage{Kind: bridge.TeamsNotice, Message: bridge.TextMessage("notice")}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 20 {
			r.teams.SetOnReceive(func(teamsfake.Received) { told.Add(1) })
		}
	}()
	wg.Wait()
	if _, err := r.sender.SendTeams(r.ctx, emp, &bridge.TeamsMessage{Kind: bridge.TeamsNotice, Message: bridge.TextMessage("last")}); err != nil {
		t.Fatal(err)
	}
	if told.Load() == 0 {
		t.Error("the receiver set with SetOnReceive was never told of a send")
	}
}
