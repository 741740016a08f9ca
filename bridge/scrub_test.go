package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/bridgetest"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
)

const canary = "CANARYcredential0123456789"

// The engine's last defence, behind the senders' own scrubbing: a send error that still carries a
// URL with a query string (WeChat's access token, a file's download authorization) is archived —
// for ever — without the query.
func TestArchivedSendErrorsHoldNoURLQueries(t *testing.T) {
	scenario(t, func(w *world) {
		w.enable("emp-ann", "Ann Lee")
		chat := w.scan("o-ming", "emp-ann")
		w.customerSays("o-ming", "Hello")
		w.wechat.FailNext("o-ming", fmt.Errorf(`wechat: Post "https://api.weixin.qq.com/cgi-bin/message/custom/send?access_token=%s": EOF: %w`, canary, bridge.ErrRetryLater))
		w.employeeSays("emp-ann", chat, "Hi Ming")
		recs, err := w.store.ArchiveStream(w.ctx, compliance.ChatStream(int64(chat)))
		if err != nil {
			t.Fatal(err)
		}
		retried := false
		for _, r := range recs {
			if strings.Contains(string(r.Meta), canary) {
				t.Errorf("archived %s holds the credential: %s", r.Kind, r.Meta)
			}
			m, _ := compliance.DecodeMeta(r.Meta)
			retried = retried || (r.Kind == compliance.KindDeliveryRetry && strings.Contains(m.Error, `Post "https://api.weixin.qq.com/cgi-bin/message/custom/send": EOF`))
		}
		if !retried {
			t.Error("no retry archived with the failed request's host and path")
		}
	})
}

// failingFetcher refuses every download, as SharePoint does once a file's link has expired.
type failingFetcher struct{}

func (failingFetcher) FetchMedia(context.Context, string) ([]byte, string, error) {
	return nil, "", errors.New("bot: attachment download: HTTP 403")
}

// A file an employee sends is named in the log by its host and path only: its download URL carries
// its authorization in the query string.
func TestMediaSourcesAreLoggedWithoutQueries(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	store := sqlstoretest.SQLite(t)
	wx, teams := &bridgetest.WeChat{}, &bridgetest.Teams{}
	engine, err := bridge.NewEngine(bridge.Config{Store: store, WeChat: wx, Teams: teams, Clock: clock.NewFake(start), Policy: bridge.DefaultPolicy(),
		Logger: zap.New(core), Media: map[string]bridge.MediaFetcher{"teams": failingFetcher{}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := engine.EnableEmployee(ctx, bridge.EmployeeProfile{ID: "emp-ann", Name: "Ann Lee"}, "admin:test"); err != nil {
		t.Fatal(err)
	}
	res, err := engine.Connect(ctx, bridge.Connect{Contact: "o-ming", Scene: bridge.SceneFor("emp-ann"), Event: "subscribe"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.CustomerWrites(ctx, bridge.Inbound{Contact: "o-ming", Message: bridge.TextMessage("Hello")}); err != nil {
		t.Fatal(err)
	}
	source := "teams:https://contoso.sharepoint.com/sites/x/_layouts/15/download.aspx?UniqueId=1&tempauth=" + canary
	if _, err := engine.EmployeeWrites(ctx, bridge.EmployeeMessage{Employee: "emp-ann", Chat: res.Chat,
		Message: bridge.Message{Type: "image", Media: &bridge.Media{Source: source, Name: "chart.png"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	logged := logs.FilterMessage("customer media could not be fetched").All()
	if len(logged) == 0 {
		t.Fatal("the failed download was not logged: the test proves nothing")
	}
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			if strings.Contains(fmt.Sprint(v), canary) {
				t.Errorf("log %q: %s holds the credential: %v", e.Message, k, v)
			}
		}
	}
	if got := logged[0].ContextMap()["source"]; got != "teams:https://contoso.sharepoint.com/sites/x/_layouts/15/download.aspx" {
		t.Errorf("source logged as %q", got)
	}
}
