package sqlstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/wxteams/wxteams/compliance"
)

// Data keys live in one place, the store's cache, and rotating them empties it: retired keys are
// unwrapped again only when old content is read. (The cache is in-process, the same on both
// databases; this test uses SQLite.)
func TestRotatingDataKeysEmptiesTheCache(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	kek := make([]byte, compliance.KeySize)
	kek[0] = 1
	ring, err := compliance.NewKeyring(kek)
	if err != nil {
		t.Fatal(err)
	}
	s.UseKeyring(ring)
	archive := func(text string) {
		if err := s.Archive(ctx, compliance.Event{Stream: "chat:1", Tenant: "acme", At: time.Now(), Kind: compliance.KindCustomerMessage,
			Actor: "customer:o1", Content: compliance.Content{Text: text}}); err != nil {
			t.Fatal(err)
		}
	}
	cached := func() int {
		s.keys.mu.Lock()
		defer s.keys.mu.Unlock()
		return len(s.keys.byID)
	}
	archive("before the rotation")
	if cached() == 0 {
		t.Fatal("no data key cached: the test would prove nothing")
	}
	if n, err := s.RotateDataKeys(ctx, time.Now()); err != nil || n != 1 {
		t.Fatalf("rotate = %d, %v", n, err)
	}
	if n := cached(); n != 0 {
		t.Errorf("%d data keys still cached after the rotation", n)
	}
	archive("after the rotation")
	recs, err := s.RecentRecords(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, r := range recs {
		c, err := compliance.DecodeContent(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, c.Text)
	}
	if len(texts) != 2 || texts[0] != "before the rotation" || texts[1] != "after the rotation" {
		t.Errorf("content after the rotation = %q; want both messages", texts)
	}
	if keys, _ := s.DataKeys(ctx); len(keys) != 2 {
		t.Errorf("%d data keys; want the retired one and a new one", len(keys))
	}
}
