package compliance

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A checkpoint is a signed Merkle root over the heads of every stream: it fixes, at one time, how
// long each chain was and how it ended. A chain can then be neither cut short nor rewritten (even with
// every hash recomputed) without the Ed25519 signing key (WXTEAMS_SIGNING_KEY). The tree is
// RFC 6962's (leaf and node hashes domain-separated, unbalanced right edge), over the leaves in
// stream order, so an inclusion proof shows one stream's head is under a signed root.

// Leaf is one stream's head in a checkpoint.
type Leaf struct {
	Stream string `json:"stream"`
	Seq    int64  `json:"seq"`
	Hash   Hash   `json:"hash"`
}

// LeafHash is RFC 6962's leaf hash over the leaf's canonical bytes.
func (l Leaf) LeafHash() Hash {
	h := sha256.New()
	h.Write([]byte{0})
	var n [8]byte
	binary.BigEndian.PutUint32(n[:4], uint32(len(l.Stream))) // #nosec G115 -- a stream name is far shorter than 4 GiB
	h.Write(n[:4])
	h.Write([]byte(l.Stream))
	binary.BigEndian.PutUint64(n[:], uint64(l.Seq)) // #nosec G115 -- sequence numbers start at 1
	h.Write(n[:])
	h.Write(l.Hash[:])
	var out Hash
	h.Sum(out[:0])
	return out
}

func nodeHash(l, r Hash) Hash {
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(l[:])
	h.Write(r[:])
	var out Hash
	h.Sum(out[:0])
	return out
}

// SortLeaves puts leaves in tree order (by stream).
func SortLeaves(leaves []Leaf) {
	sort.Slice(leaves, func(i, j int) bool { return leaves[i].Stream < leaves[j].Stream })
}

// MerkleRoot is the root over leaves in the order given (SortLeaves first); the empty tree's root
// is SHA-256 of nothing.
func MerkleRoot(leaves []Leaf) Hash {
	if len(leaves) == 0 {
		return sha256.Sum256(nil)
	}
	level := make([]Hash, len(leaves))
	for i, l := range leaves {
		level[i] = l.LeafHash()
	}
	for len(level) > 1 {
		next := level[:0:0]
		for i := 0; i < len(level); i += 2 {
			if i+1 == len(level) {
				next = append(next, level[i]) // RFC 6962: an odd node is promoted
			} else {
				next = append(next, nodeHash(level[i], level[i+1]))
			}
		}
		level = next
	}
	return level[0]
}

// InclusionProof is the audit path for leaf index in a tree of leaves (RFC 6962 §2.1.1). To prove
// many leaves of one tree, build a MerkleTree once.
func InclusionProof(leaves []Leaf, index int) []Hash { return NewMerkleTree(leaves).Proof(index) }

// MerkleTree keeps every level of a tree, so each inclusion proof costs a walk up, not a rebuild.
// Pairing each level left to right and promoting an odd last node gives RFC 6962's tree.
type MerkleTree struct{ levels [][]Hash }

// NewMerkleTree builds the tree over leaves (in tree order).
func NewMerkleTree(leaves []Leaf) *MerkleTree {
	level := make([]Hash, len(leaves))
	for i, l := range leaves {
		level[i] = l.LeafHash()
	}
	t := &MerkleTree{levels: [][]Hash{level}}
	for len(level) > 1 {
		next := make([]Hash, 0, (len(level)+1)/2)
		for i := 0; i < len(level); i += 2 {
			if i+1 == len(level) {
				next = append(next, level[i])
			} else {
				next = append(next, nodeHash(level[i], level[i+1]))
			}
		}
		t.levels = append(t.levels, next)
		level = next
	}
	return t
}

// Root is the tree's root (SHA-256 of nothing for no leaves).
func (t *MerkleTree) Root() Hash {
	top := t.levels[len(t.levels)-1]
	if len(top) == 0 {
		return sha256.Sum256(nil)
	}
	return top[0]
}

// Proof is the audit path of leaf index, bottom up.
func (t *MerkleTree) Proof(index int) []Hash {
	var proof []Hash
	for _, level := range t.levels[:len(t.levels)-1] {
		if sibling := index ^ 1; sibling < len(level) {
			proof = append(proof, level[sibling])
		}
		index >>= 1
	}
	return proof
}

// VerifyInclusion checks an audit path for leaf at index in a tree of size n with the given root
// (RFC 9162 §2.1.3.2).
func VerifyInclusion(leaf Leaf, index, n int, proof []Hash, root Hash) bool {
	if index < 0 || index >= n {
		return false
	}
	fn, sn := index, n-1
	r := leaf.LeafHash()
	for _, p := range proof {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = nodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	return sn == 0 && r == root
}

// Checkpoint is a signed statement of the archive's heads at a time.
type Checkpoint struct {
	ID        int64     `json:"id,omitempty"`
	At        time.Time `json:"at"`
	Streams   int64     `json:"streams"` // leaves
	Records   int64     `json:"records"` // sum of the leaves' sequence numbers
	Root      Hash      `json:"root"`
	KeyID     string    `json:"key_id"`
	Signature []byte    `json:"signature"`
}

// SignedText is what the signature covers: a versioned, line-based statement.
func (c *Checkpoint) SignedText() []byte {
	return fmt.Appendf(nil, "wxteams archive checkpoint v1\n%s\n%d\n%d\n%s\n",
		c.At.UTC().Format(time.RFC3339Nano), c.Streams, c.Records, base64.StdEncoding.EncodeToString(c.Root[:]))
}

// SigningKeyID names a signing key by its public key.
func SigningKeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519-" + hex.EncodeToString(sum[:8])
}

// NewCheckpoint builds and signs the checkpoint over leaves (in tree order).
func NewCheckpoint(leaves []Leaf, at time.Time, key ed25519.PrivateKey) *Checkpoint {
	c := &Checkpoint{At: at.UTC().Truncate(time.Microsecond), Streams: int64(len(leaves)), Root: MerkleRoot(leaves)}
	for _, l := range leaves {
		c.Records += l.Seq
	}
	pub := key.Public().(ed25519.PublicKey)
	c.KeyID = SigningKeyID(pub)
	c.Signature = ed25519.Sign(key, c.SignedText())
	return c
}

// ErrBadSignature means a checkpoint or manifest is not signed by the key given.
var ErrBadSignature = errors.New("signature does not verify")

// VerifySignature checks the checkpoint's signature with pub.
func (c *Checkpoint) VerifySignature(pub ed25519.PublicKey) error {
	if c.KeyID != SigningKeyID(pub) {
		return fmt.Errorf("%w: signed by %s, the key given is %s", ErrBadSignature, c.KeyID, SigningKeyID(pub))
	}
	if !ed25519.Verify(pub, c.SignedText(), c.Signature) {
		return ErrBadSignature
	}
	return nil
}

// EncodeLeaves is the compact text form of leaves stored with a checkpoint: one per line,
// "<hash hex> <seq> <stream>".
func EncodeLeaves(leaves []Leaf) []byte {
	var b bytes.Buffer
	for _, l := range leaves {
		b.WriteString(l.Hash.String())
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(l.Seq, 10))
		b.WriteByte(' ')
		b.WriteString(l.Stream)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// DecodeLeaves reverses EncodeLeaves.
func DecodeLeaves(b []byte) ([]Leaf, error) {
	var out []Leaf
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		hashHex, rest, ok1 := strings.Cut(line, " ")
		seqText, stream, ok2 := strings.Cut(rest, " ")
		raw, err := hex.DecodeString(hashHex)
		seq, err2 := strconv.ParseInt(seqText, 10, 64)
		if !ok1 || !ok2 || err != nil || len(raw) != sha256.Size || err2 != nil {
			return nil, fmt.Errorf("checkpoint leaves: line %d is malformed", i+1)
		}
		var l Leaf
		l.Stream, l.Seq = stream, seq
		copy(l.Hash[:], raw)
		out = append(out, l)
	}
	return out, nil
}

// SigningKeyFromSeed returns the Ed25519 key for a 32-byte seed (WXTEAMS_SIGNING_KEY).
func SigningKeyFromSeed(seed []byte) (ed25519.PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("an Ed25519 seed is %d bytes, got %d", ed25519.SeedSize, len(seed))
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
