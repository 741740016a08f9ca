package bot_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
)

// receiptLog records what the endpoint tells of its receipts.
type receiptLog struct {
	mu       sync.Mutex
	received []string
	refused  []string
}

func (l *receiptLog) Received(ch bridge.Channel, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.received = append(l.received, string(ch))
}

func (l *receiptLog) Refused(ch bridge.Channel, reason string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused = append(l.refused, string(ch)+" "+reason)
}

func (l *receiptLog) counts() (int, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.received), strings.Join(l.refused, ",")
}

// An authenticated activity from a person is a receipt; one refused after it authenticated is told
// with its reason. Requests that fail authentication are not the channel's and are neither.
func TestEndpointTellsReceiptsAndRefusalsAfterReceipt(t *testing.T) {
	r := newRig(t, sqlstoretest.SQLite(t))
	body, a := golden(t, "message-personal.json")
	good := r.teams.Issuer.BotToken(botAppID, a.ServiceURL)

	if status, resp := r.post(body, good); status != 200 {
		t.Fatalf("a good activity = %d %q", status, resp)
	}
	r.post(body, "")                 // no token: not a receipt
	r.post([]byte(`{"type":`), good) // malformed before authentication: not a receipt
	foreign := bytes.ReplaceAll(body, []byte(tenant), []byte("00000000-0000-0000-0000-0000000000aa"))
	if status, _ := r.post(foreign, good); status != 403 {
		t.Errorf("another tenant's activity = %d; want 403", status)
	}
	evil := bytes.ReplaceAll(body, []byte("https://smba.trafficmanager.net/amer/"), []byte("https://evil.example/"))
	if status, _ := r.post(evil, r.teams.Issuer.BotToken(botAppID, "https://evil.example/")); status != 403 {
		t.Errorf("serviceUrl outside the allowlist = %d; want 403", status)
	}
	// Another tenant's activity from no person (no aadObjectId) is not a receipt, so its refusal
	// is not told either: refusals never outnumber receipts.
	nobody := bytes.ReplaceAll(foreign, []byte(`"aadObjectId": "7faf8ab2-3d56-4244-b585-20c8a42ed2b8"`), []byte(`"aadObjectId": ""`))
	if bytes.Equal(nobody, foreign) {
		t.Fatal("the test did not remove the sender's aadObjectId")
	}
	if status, _ := r.post(nobody, good); status != 403 {
		t.Errorf("another tenant's activity from no person = %d; want 403", status)
	}
	received, refused := r.receipts.counts()
	if received != 3 || refused != "teams not_allowed,teams service_url" {
		t.Errorf("receipts %d, refusals %q; want 3 receipts (the good one and the two refused after authenticating) and 2 refusals: "+
			"another tenant's (archived as refused: policy) and the serviceUrl's (not archived)", received, refused)
	}
}
