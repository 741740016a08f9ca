package compliance

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"
)

func leaves(n int) []Leaf {
	out := make([]Leaf, n)
	for i := range out {
		out[i] = Leaf{Stream: fmt.Sprintf("chat:%04d", i), Seq: int64(i + 1), Hash: sha256.Sum256([]byte{byte(i)})}
	}
	return out
}

func TestMerkleInclusionProofs(t *testing.T) {
	for n := 1; n <= 33; n++ {
		ls := leaves(n)
		root := MerkleRoot(ls)
		for i := range ls {
			proof := InclusionProof(ls, i)
			if !VerifyInclusion(ls[i], i, n, proof, root) {
				t.Fatalf("n=%d i=%d: a correct proof does not verify", n, i)
			}
			other := ls[i]
			other.Seq++
			if VerifyInclusion(other, i, n, proof, root) {
				t.Fatalf("n=%d i=%d: a proof verifies for a leaf with another seq", n, i)
			}
			if n > 1 && VerifyInclusion(ls[i], (i+1)%n, n, proof, root) {
				t.Fatalf("n=%d i=%d: a proof verifies at another index", n, i)
			}
		}
	}
	// The root depends on every leaf and on their order.
	ls := leaves(5)
	root := MerkleRoot(ls)
	ls[0], ls[1] = ls[1], ls[0]
	if MerkleRoot(ls) == root {
		t.Error("swapping two leaves keeps the root")
	}
	// Two leaves hash as RFC 6962 says: H(0x01 || H(0x00||a) || H(0x00||b)).
	two := leaves(2)
	if MerkleRoot(two) != nodeHash(two[0].LeafHash(), two[1].LeafHash()) {
		t.Error("two-leaf root is not the node hash of the leaf hashes")
	}
}

func TestCheckpointSignature(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	cp := NewCheckpoint(leaves(3), time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC), key)
	pub := key.Public().(ed25519.PublicKey)
	if err := cp.VerifySignature(pub); err != nil {
		t.Fatal(err)
	}
	if cp.Records != 6 || cp.Streams != 3 {
		t.Errorf("checkpoint counts %d streams, %d records", cp.Streams, cp.Records)
	}
	forged := *cp
	forged.Records++
	if forged.VerifySignature(pub) == nil {
		t.Error("an altered checkpoint verifies")
	}
	other := ed25519.NewKeyFromSeed(append(make([]byte, 31), 1))
	if cp.VerifySignature(other.Public().(ed25519.PublicKey)) == nil {
		t.Error("a checkpoint verifies with another key")
	}
	back, err := DecodeLeaves(EncodeLeaves(leaves(3)))
	if err != nil || MerkleRoot(back) != cp.Root {
		t.Errorf("leaves do not round-trip: %v", err)
	}
}

// BenchmarkSealAndEncrypt is the CPU an archived message costs apart from the database: the
// canonical encoding, SHA-256 of content and record, and AES-256-GCM of the body.
//
//	go test -run '^$' -bench BenchmarkSealAndEncrypt ./compliance/
func BenchmarkSealAndEncrypt(b *testing.B) {
	ring, _ := NewKeyring(make([]byte, 32))
	dek, _, _ := ring.NewDataKey("acme")
	dk, _ := NewDataKeyCipher("dek-1", dek)
	ev := Event{Stream: "chat:1", ChatID: 1, At: time.Now(), Kind: KindCustomerMessage, Actor: "customer:o1",
		Meta: Meta{Contact: "o1", MsgType: "text"}, Content: Content{Text: "Could we talk about the bond fund tomorrow morning?"}}
	b.ReportAllocs()
	for b.Loop() {
		r, err := Seal(Head{Seq: 7}, ev)
		if err != nil {
			b.Fatal(err)
		}
		_ = dk.Seal(r.Body, BodyAAD(r.Stream, r.Seq))
	}
}
