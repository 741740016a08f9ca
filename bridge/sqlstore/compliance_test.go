package sqlstore_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/sqlstore/sqlstoretest"
	"github.com/wxteams/wxteams/compliance"
)

func kek(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func keyring(t testing.TB, current []byte, previous ...[]byte) *compliance.Keyring {
	t.Helper()
	k, err := compliance.NewKeyring(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// dump is everything the database holds, as text: what a stolen backup would show.
func dump(t *testing.T, s *sqlstore.Store) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"archive", "queue", "outbox", "media", "media_sources", "data_keys", "archive_heads", "employees", "contacts", "chats"} {
		rows, err := s.DB().Query(`SELECT * FROM ` + table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if raw, ok := v.([]byte); ok {
					b.Write(raw)
				} else {
					fmt.Fprint(&b, v)
				}
				b.WriteByte(' ')
			}
		}
		rows.Close()
	}
	return b.String()
}

const secret = "the client's account number is 4471-0093"

// writeSensitive puts secret into every place the bridge keeps message content.
func writeSensitive(t *testing.T, s *sqlstore.Store, stream, tenant string) {
	t.Helper()
	ctx := context.Background()
	err := s.InTx(ctx, func(tx bridge.Tx) error {
		if err := tx.Append(ctx, compliance.Event{Stream: stream, Tenant: tenant, At: t0, Kind: compliance.KindEmployeeMessage, Actor: "employee:ann",
			Content: compliance.Content{Text: secret}}); err != nil {
			return err
		}
		contact := bridge.OpenID("o-" + stream)
		if err := tx.PutContact(ctx, &bridge.Contact{OpenID: contact}); err != nil {
			return err
		}
		chat := &bridge.Chat{Tenant: tenant, Contact: contact, Status: bridge.StatusActive}
		if err := tx.CreateChat(ctx, chat); err != nil {
			return err
		}
		if err := tx.PushQueue(ctx, &bridge.QueuedMessage{ChatID: chat.ID, Employee: "ann", MessageID: "m-" + stream, Message: bridge.TextMessage(secret), QueuedAt: t0}, false); err != nil {
			return err
		}
		if err := tx.AddOutbox(ctx, &bridge.OutboxItem{Tenant: tenant, Channel: "wechat", Lane: "wechat:o1", Contact: "o1", MessageID: "o-" + stream,
			WeChat: &bridge.WeChatMessage{Message: bridge.TextMessage(secret)}, State: bridge.OutboxPending, CreatedAt: t0, NotBefore: t0}); err != nil {
			return err
		}
		return tx.PutMedia(ctx, &bridge.Media{SHA256: "sha-" + stream, ContentType: "text/plain", Size: int64(len(secret))}, []byte(secret), t0)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestEncryptionAtRest(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ctx := context.Background()
		s := open(t)
		s.UseKeyring(keyring(t, kek(1)))
		writeSensitive(t, s, "chat:1", "acme")
		writeSensitive(t, s, "chat:2", "globex")
		if strings.Contains(dump(t, s), "4471-0093") {
			t.Fatal("the database holds message text in the clear")
		}
		keys, err := s.DataKeys(ctx)
		if err != nil || len(keys) != 3 { // acme, globex, and "" for the queue and media
			t.Fatalf("data keys = %+v, %v; want one per tenant", keys, err)
		}
		// Everything reads back.
		recs, err := s.ArchiveStream(ctx, "chat:1")
		if err != nil || len(recs) != 1 {
			t.Fatalf("ArchiveStream = %d records, %v", len(recs), err)
		}
		if c, _ := compliance.DecodeContent(recs[0].Body); c.Text != secret {
			t.Errorf("archived text = %q", c.Text)
		}
		_ = s.InTx(ctx, func(tx bridge.Tx) error {
			c, err := tx.LockChatByContact(ctx, "o-chat:1")
			if err != nil {
				t.Fatal(err)
			}
			q, err := tx.Queue(ctx, c.ID)
			if err != nil || len(q) != 1 || q[0].Message.Text != secret {
				t.Errorf("queue = %+v, %v", q, err)
			}
			return nil
		})
		if _, data, err := s.MediaData(ctx, "sha-chat:1"); err != nil || string(data) != secret {
			t.Errorf("media = %q, %v", data, err)
		}
		if n, err := s.VerifyArchive(ctx); err != nil || n != 2 {
			t.Errorf("VerifyArchive = %d, %v", n, err)
		}

		// Data-key rotation: new rows use new keys, old rows still open, nothing old is rewritten.
		before := dump(t, s)
		if n, err := s.RotateDataKeys(ctx, t0); err != nil || n != 3 {
			t.Fatalf("RotateDataKeys = %d, %v", n, err)
		}
		writeSensitive(t, s, "chat:3", "acme")
		keys, _ = s.DataKeys(ctx)
		if len(keys) != 5 {
			t.Errorf("after rotation %d data keys; want 5 (3 retired, 2 new)", len(keys))
		}
		if n, err := s.VerifyArchive(ctx); err != nil || n != 3 {
			t.Errorf("VerifyArchive after rotation = %d, %v", n, err)
		}
		_ = before

		// KEK rotation: rewrap the data keys under a new KEK with the old one as previous; then
		// the new KEK alone opens everything.
		s.UseKeyring(keyring(t, kek(2), kek(1)))
		if n, err := s.RewrapDataKeys(ctx); err != nil || n != 5 {
			t.Fatalf("RewrapDataKeys = %d, %v", n, err)
		}
		s.UseKeyring(keyring(t, kek(2)))
		for _, stream := range []string{"chat:1", "chat:2", "chat:3"} {
			if recs, err := s.ArchiveStream(ctx, stream); err != nil || len(recs) != 1 {
				t.Errorf("after KEK rotation, %s: %v", stream, err)
			}
		}
		// The old KEK alone no longer opens anything; no key at all cannot open content but the
		// chains still verify.
		s.UseKeyring(keyring(t, kek(1)))
		if _, err := s.ArchiveStream(ctx, "chat:1"); err == nil {
			t.Error("the retired KEK still opens the archive")
		}
		s.UseKeyring(nil)
		if _, err := s.ArchiveStream(ctx, "chat:1"); !errors.Is(err, sqlstore.ErrNoKeyring) {
			t.Errorf("without a key: %v; want ErrNoKeyring", err)
		}
		if n, err := s.VerifyArchive(ctx); err != nil || n != 3 {
			t.Errorf("VerifyArchive without the key = %d, %v; want the chains verified", n, err)
		}
		// A sealed body altered in the database does not open: verify names it.
		s.UseKeyring(keyring(t, kek(2)))
		bypass(t, s, `UPDATE archive SET body = body || body WHERE stream = 'chat:2'`)
		if _, err := s.VerifyArchive(ctx); err == nil || !strings.Contains(err.Error(), "chat:2") || !strings.Contains(err.Error(), "cannot be opened") {
			t.Errorf("VerifyArchive after altering a sealed body = %v", err)
		}
	})
}

// events appends n records to stream, one a minute from start, naming employee and contact.
func events(t *testing.T, s *sqlstore.Store, stream string, start time.Time, n int, meta compliance.Meta) {
	t.Helper()
	ctx := context.Background()
	err := s.InTx(ctx, func(tx bridge.Tx) error {
		for i := range n {
			if err := tx.Append(ctx, compliance.Event{Stream: stream, At: start.Add(time.Duration(i) * time.Minute), Kind: compliance.KindCustomerMessage,
				Actor: "customer:" + meta.Contact, Meta: meta, Content: compliance.Content{Text: fmt.Sprintf("%s #%d", stream, i)}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPurgeKeepsHeldRecordsAndVerificationPasses(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ctx := context.Background()
		s := open(t)
		old, recent := t0, t0.Add(400*24*time.Hour)
		cutoff := t0.Add(365 * 24 * time.Hour)
		events(t, s, "chat:1", old, 3, compliance.Meta{Contact: "o1", Employee: "ann"})
		events(t, s, "chat:1", recent, 2, compliance.Meta{Contact: "o1", Employee: "ann"})
		events(t, s, "chat:2", old, 3, compliance.Meta{Contact: "o2", Employee: "bob"}) // bob is on hold
		events(t, s, "chat:3", old, 2, compliance.Meta{Contact: "o3", Employee: "cy"})  // chat 3 is on hold
		events(t, s, "contact:o4", old, 2, compliance.Meta{Contact: "o4"})
		// Old media referred to only by purged records goes; media a kept record refers to stays.
		err := s.InTx(ctx, func(tx bridge.Tx) error {
			_ = tx.PutMedia(ctx, &bridge.Media{SHA256: "aa", ContentType: "image/png", Size: 1}, []byte{1}, old)
			_ = tx.PutMedia(ctx, &bridge.Media{SHA256: "bb", ContentType: "image/png", Size: 1}, []byte{2}, old)
			if err := tx.Append(ctx, compliance.Event{Stream: "contact:o4", At: old.Add(time.Hour), Kind: compliance.KindCustomerMessage, Actor: "customer:o4",
				Meta: compliance.Meta{Contact: "o4", MediaSHA256: "aa"}}); err != nil {
				return err
			}
			return tx.Append(ctx, compliance.Event{Stream: "chat:2", At: old.Add(time.Hour), Kind: compliance.KindCustomerMessage, Actor: "customer:o2",
				Meta: compliance.Meta{Contact: "o2", MediaSHA256: "bb"}})
		})
		if err != nil {
			t.Fatal(err)
		}
		// chat:1 has records old(3), then recent(2): the purge stops at the first recent one.
		for _, h := range []compliance.Hold{{Scope: "employee", Subject: "bob", Reason: "SEC inquiry 2026-114"}, {Scope: "chat", Subject: "3", Reason: "litigation"}} {
			if _, err := s.PlaceHold(ctx, h, "compliance:cco@acme.example", old); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.PlaceHold(ctx, compliance.Hold{Scope: "chat", Subject: "three", Reason: "x"}, "c", old); !errors.Is(err, compliance.ErrBadHold) {
			t.Errorf("a hold on chat \"three\" = %v; want ErrBadHold", err)
		}
		res, err := s.Purge(ctx, cutoff, "system:retention", cutoff)
		if err != nil {
			t.Fatal(err)
		}
		if res.Streams != 2 || res.Records != 6 || res.Held != 2 || res.Media != 1 {
			t.Errorf("purge = %+v; want 2 streams, 6 records removed, 2 held, 1 media", res)
		}
		left := func(stream string) int {
			recs, err := s.ArchiveStream(ctx, stream)
			if err != nil {
				t.Fatal(err)
			}
			return len(recs)
		}
		for stream, want := range map[string]int{"chat:1": 2, "chat:2": 4, "chat:3": 2, "contact:o4": 0} {
			if got := left(stream); got != want {
				t.Errorf("%s keeps %d records; want %d", stream, got, want)
			}
		}
		if _, _, err := s.MediaData(ctx, "aa"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("media only purged records referred to: %v; want removed", err)
		}
		if _, _, err := s.MediaData(ctx, "bb"); err != nil {
			t.Errorf("media a held record refers to: %v; want kept", err)
		}
		if _, err := s.VerifyArchive(ctx); err != nil {
			t.Fatalf("VerifyArchive after the purge: %v", err)
		}
		// Held records cannot be deleted, by the purge or by hand.
		if _, err := s.DB().Exec(`DELETE FROM archive WHERE stream = 'chat:2'`); err == nil {
			t.Error("the database let held records be deleted")
		}
		// Lift the hold on bob: the next purge takes chat:2's old records too.
		holds, _ := s.Holds(ctx, true)
		for _, h := range holds {
			if h.Subject == "bob" {
				if err := s.LiftHold(ctx, h.ID, "compliance:cco@acme.example", "inquiry closed", cutoff); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := s.LiftHold(ctx, 999, "x", "", cutoff); !errors.Is(err, compliance.ErrNoHold) {
			t.Errorf("lifting an unknown hold = %v", err)
		}
		if res, err := s.Purge(ctx, cutoff, "system:retention", cutoff); err != nil || res.Records != 4 {
			t.Errorf("second purge = %+v, %v; want chat:2's 4 records", res, err)
		}
		if _, err := s.VerifyArchive(ctx); err != nil {
			t.Fatalf("VerifyArchive after the second purge: %v", err)
		}
		// New records after a disposal chain on from it.
		events(t, s, "contact:o4", recent, 1, compliance.Meta{Contact: "o4"})
		if _, err := s.VerifyArchive(ctx); err != nil {
			t.Fatalf("VerifyArchive after appending to a disposed stream: %v", err)
		}
		// The admin stream says who placed, lifted and disposed.
		admin, _ := s.ArchiveStream(ctx, compliance.AdminStream)
		kinds := map[compliance.Kind]int{}
		for _, r := range admin {
			kinds[r.Kind]++
		}
		if kinds[compliance.KindHoldPlaced] != 2 || kinds[compliance.KindHoldLifted] != 1 || kinds[compliance.KindDisposed] != 3 {
			t.Errorf("admin stream kinds = %v", kinds)
		}

		// A DBA removing records with a disposal row of their own making is caught.
		bypass(t, s, `INSERT INTO archive_disposals (stream, through_seq, hash, records, disposed_us) SELECT stream, seq, hash, 1, 0 FROM archive WHERE stream = 'chat:3' AND seq = 1`)
		bypass(t, s, `DELETE FROM archive WHERE stream = 'chat:3' AND seq = 1`)
		if _, err := s.VerifyArchive(ctx); err == nil || !strings.Contains(err.Error(), "not in the archive") {
			t.Errorf("VerifyArchive after an unarchived removal = %v", err)
		}
	})
}

func TestCheckpointsCatchTruncationAndRewrites(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ctx := context.Background()
		s := open(t)
		key := ed25519.NewKeyFromSeed(kek(7))
		pub := key.Public().(ed25519.PublicKey)
		events(t, s, "chat:1", t0, 3, compliance.Meta{Contact: "o1"})
		events(t, s, "chat:2", t0, 2, compliance.Meta{Contact: "o2"})
		cp, err := s.MakeCheckpoint(ctx, key, "system:checkpoint", t0.Add(time.Hour))
		if err != nil || cp == nil || cp.Streams != 2 || cp.Records != 5 {
			t.Fatalf("first checkpoint = %+v, %v", cp, err)
		}
		// Nothing changed but the admin stream (which the checkpoint itself moved): the next
		// checkpoint covers only that.
		cp2, err := s.MakeCheckpoint(ctx, key, "system:checkpoint", t0.Add(2*time.Hour))
		if err != nil || cp2 == nil || cp2.Streams != 3 {
			t.Fatalf("second checkpoint = %+v, %v", cp2, err)
		}
		events(t, s, "chat:1", t0.Add(3*time.Hour), 1, compliance.Meta{Contact: "o1"})
		if _, err := s.MakeCheckpoint(ctx, key, "system:checkpoint", t0.Add(4*time.Hour)); err != nil {
			t.Fatal(err)
		}
		n, latest, err := s.VerifyCheckpoints(ctx, pub)
		if err != nil || n != 3 || latest.Records < 6 {
			t.Fatalf("VerifyCheckpoints = %d, %+v, %v", n, latest, err)
		}
		other := ed25519.NewKeyFromSeed(kek(8)).Public().(ed25519.PublicKey)
		if _, _, err := s.VerifyCheckpoints(ctx, other); !errors.Is(err, compliance.ErrBadSignature) {
			t.Errorf("VerifyCheckpoints with another key = %v; want a bad signature", err)
		}

		// A DBA cuts chat:1 short and moves its head back: the chains alone look intact…
		bypass(t, s, `DELETE FROM archive WHERE stream = 'chat:1' AND seq = 4`)
		if _, err := s.DB().Exec(`UPDATE archive_heads SET seq = 3, hash = (SELECT hash FROM archive WHERE stream = 'chat:1' AND seq = 3) WHERE stream = 'chat:1'`); err != nil {
			t.Fatal(err)
		}
		if _, err := s.VerifyArchive(ctx); err != nil {
			t.Fatalf("the truncation should pass the chain check (that is the point): %v", err)
		}
		// …but not the checkpoints.
		_, _, err = s.VerifyCheckpoints(ctx, pub)
		var ce *sqlstore.CheckpointError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "chat:1 seq 4") {
			t.Errorf("VerifyCheckpoints after truncation = %v", err)
		}
	})
}

func TestCheckpointsCatchAChainRewrittenWithValidHashes(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ctx := context.Background()
		s := open(t)
		key := ed25519.NewKeyFromSeed(kek(7))
		events(t, s, "chat:1", t0, 2, compliance.Meta{Contact: "o1"})
		if _, err := s.MakeCheckpoint(ctx, key, "system:checkpoint", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		// Rewrite the whole stream: delete it and its head, and append other records — every hash
		// recomputed, the chain valid.
		bypass(t, s, `DELETE FROM archive WHERE stream = 'chat:1'`)
		if _, err := s.DB().Exec(`DELETE FROM archive_heads WHERE stream = 'chat:1'`); err != nil {
			t.Fatal(err)
		}
		events(t, s, "chat:1", t0, 2, compliance.Meta{Contact: "o1", Reason: "rewritten"})
		if _, err := s.VerifyArchive(ctx); err != nil {
			t.Fatalf("the rewritten chain should be internally valid: %v", err)
		}
		_, _, err := s.VerifyCheckpoints(ctx, key.Public().(ed25519.PublicKey))
		if err == nil || !strings.Contains(err.Error(), "chain was rewritten") {
			t.Errorf("VerifyCheckpoints after a rewrite = %v", err)
		}
	})
}

func TestInsertedRecordIsCaught(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		s := open(t)
		appendEvents(t, s, "chat:1", "one", "two")
		// A forged record copied from seq 2 and appended as seq 3, the head left alone.
		bypass(t, s, `INSERT INTO archive (stream, seq, tenant, at_us, kind, actor, chat_id, meta, body, body_key, body_hash, prev_hash, hash)
			SELECT stream, 3, tenant, at_us, kind, actor, chat_id, meta, body, body_key, body_hash, hash, hash FROM archive WHERE stream = 'chat:1' AND seq = 2`)
		_, err := s.VerifyArchive(context.Background())
		if err == nil || !strings.Contains(err.Error(), "chat:1") {
			t.Errorf("VerifyArchive after an insertion = %v", err)
		}
	})
}

func TestWeChatAccessTokenIsSealed(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ctx := context.Background()
		s := open(t)
		s.UseKeyring(keyring(t, kek(1)))
		const token = "ACCESS_TOKEN_85_chars_of_bearer_credential"
		if ok, err := s.LeaseWeChatToken(ctx, "wx1", "replica-a", t0, t0.Add(time.Minute)); !ok || err != nil {
			t.Fatalf("lease = %v, %v", ok, err)
		}
		if err := s.StoreWeChatToken(ctx, "wx1", "replica-a", token, t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		var raw string
		if err := s.DB().QueryRow(`SELECT token FROM wechat_tokens`).Scan(&raw); err != nil || strings.Contains(raw, "bearer") {
			t.Errorf("stored token %q, %v; want it sealed", raw, err)
		}
		if got, exp, err := s.LoadWeChatToken(ctx, "wx1"); err != nil || got != token || !exp.Equal(t0.Add(2*time.Hour)) {
			t.Errorf("LoadWeChatToken = %q, %v, %v", got, exp, err)
		}
		// Under another key-encryption key the token is as good as none: it will be fetched again.
		s.UseKeyring(keyring(t, kek(2)))
		if got, _, err := s.LoadWeChatToken(ctx, "wx1"); err != nil || got != "" {
			t.Errorf("with another KEK LoadWeChatToken = %q, %v; want none", got, err)
		}
	})
}

// A Teams file's download URL carries its authorization (SharePoint's tempauth): the store keeps
// only a hash of a media source, yet finds the media by it again.
func TestMediaSourcesAreKeptAsHashes(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ctx := context.Background()
		s := open(t)
		s.UseKeyring(keyring(t, kek(1)))
		const source = "teams:https://contoso.sharepoint.com/_layouts/15/download.aspx?UniqueId=1&tempauth=CANARY-tempauth-credential"
		m := &bridge.Media{SHA256: strings.Repeat("ab", 32), ContentType: "image/png", Size: 3, Source: source}
		if err := s.InTx(ctx, func(tx bridge.Tx) error { return tx.PutMedia(ctx, m, []byte("png"), t0) }); err != nil {
			t.Fatal(err)
		}
		if got, err := s.MediaBySource(ctx, source); err != nil || got.SHA256 != m.SHA256 {
			t.Errorf("MediaBySource = %+v, %v; want the stored media", got, err)
		}
		if _, err := s.MediaBySource(ctx, source+"x"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("MediaBySource of another source = %v; want not found", err)
		}
		if d := dump(t, s); strings.Contains(d, "CANARY") || strings.Contains(d, "sharepoint") {
			t.Error("the database holds the media source's URL")
		}
	})
}

// A process that has just started knows no data key yet: reading a chat's sealed queue and outbox
// inside a step looks the keys up while the rows are being read. (On PostgreSQL the lookup used to
// meet "there is already a query being processed on this connection", and the chat was stuck
// until something outside a transaction happened to open the key.)
func TestSealedRowsReadInAStepByAFreshProcess(t *testing.T) {
	sqlstoretest.EachURL(t, func(t *testing.T, url string) {
		ctx := context.Background()
		first := sqlstoretest.Open(t, url)
		first.UseKeyring(keyring(t, kek(1)))
		var chat bridge.ChatID
		err := first.InTx(ctx, func(tx bridge.Tx) error {
			if err := tx.PutContact(ctx, &bridge.Contact{OpenID: "o1"}); err != nil {
				return err
			}
			c := &bridge.Chat{Tenant: "acme", Contact: "o1", Status: bridge.StatusActive}
			if err := tx.CreateChat(ctx, c); err != nil {
				return err
			}
			chat = c.ID
			for _, m := range []string{"one", "two", "three"} {
				if err := tx.PushQueue(ctx, &bridge.QueuedMessage{ChatID: c.ID, Employee: "ann", MessageID: "q-" + m, Message: bridge.TextMessage(m), QueuedAt: t0}, false); err != nil {
					return err
				}
				if err := tx.AddOutbox(ctx, &bridge.OutboxItem{ChatID: c.ID, Tenant: "acme", Channel: bridge.ChannelWeChat, Lane: "wechat:o1", Contact: "o1", MessageID: "o-" + m,
					WeChat: &bridge.WeChatMessage{Message: bridge.TextMessage(m)}, State: bridge.OutboxPending, CreatedAt: t0, NotBefore: t0}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		fresh := sqlstoretest.Open(t, url)
		fresh.UseKeyring(keyring(t, kek(1)))
		err = fresh.InTx(ctx, func(tx bridge.Tx) error {
			if _, err := tx.LockChat(ctx, chat); err != nil {
				return err
			}
			q, err := tx.Queue(ctx, chat)
			if err != nil {
				return err
			}
			out, err := tx.ChatOutbox(ctx, chat, bridge.ChannelWeChat)
			if err != nil {
				return err
			}
			if len(q) != 3 || q[2].Message.Text != "three" || len(out) != 3 || out[2].WeChat.Message.Text != "three" {
				t.Errorf("queue %+v, outbox %+v", q, out)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
