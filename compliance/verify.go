package compliance

import (
	"crypto/sha256"
	"fmt"
)

// ChainError names the first record of a stream that does not verify, and why.
type ChainError struct {
	Stream  string
	Seq     int64 // sequence number expected or found at the break
	ID      int64 // database id of the offending record, 0 when the record is missing
	Problem string
}

func (e *ChainError) Error() string {
	if e.ID != 0 {
		return fmt.Sprintf("archive stream %s: record %d (seq %d): %s", e.Stream, e.ID, e.Seq, e.Problem)
	}
	return fmt.Sprintf("archive stream %s: seq %d: %s", e.Stream, e.Seq, e.Problem)
}

// ChainVerifier checks one stream's records, fed in sequence order. It keeps only the running head,
// so it verifies streams of any length in constant memory.
type ChainVerifier struct {
	stream string
	head   Head
	err    error
}

// NewChainVerifier starts verifying stream from its beginning.
func NewChainVerifier(stream string) *ChainVerifier { return &ChainVerifier{stream: stream} }

// NewChainVerifierFrom starts verifying stream after from: the last record disposed of under
// retention, or the record before the first one an export holds.
func NewChainVerifierFrom(stream string, from Head) *ChainVerifier {
	return &ChainVerifier{stream: stream, head: from}
}

// Add checks the next record. It returns the first error found; after an error every call returns it.
// plaintextBody says whether r.Body holds the plaintext encoded Content (so its hash can be checked);
// an encrypted body is checked by whoever can decrypt it.
func (v *ChainVerifier) Add(r *Record, plaintextBody bool) error {
	if v.err != nil {
		return v.err
	}
	fail := func(seq int64, id int64, format string, args ...any) error {
		v.err = &ChainError{Stream: v.stream, Seq: seq, ID: id, Problem: fmt.Sprintf(format, args...)}
		return v.err
	}
	want := v.head.Seq + 1
	switch {
	case r.Stream != v.stream:
		return fail(want, r.ID, "belongs to stream %q", r.Stream)
	case r.Seq < want:
		return fail(r.Seq, r.ID, "sequence number repeats or goes back (want %d)", want)
	case r.Seq > want:
		return fail(want, 0, "missing (next record found is seq %d, id %d)", r.Seq, r.ID)
	case r.PrevHash != v.head.Hash:
		return fail(r.Seq, r.ID, "previous-hash link broken: record says %s, chain has %s", r.PrevHash, v.head.Hash)
	}
	if plaintextBody && Hash(sha256.Sum256(r.Body)) != r.BodyHash {
		return fail(r.Seq, r.ID, "content does not match its hash")
	}
	if got := r.ComputeHash(); got != r.Hash {
		return fail(r.Seq, r.ID, "record altered: hash is %s, contents hash to %s", r.Hash, got)
	}
	v.head = Head{Seq: r.Seq, Hash: r.Hash}
	return nil
}

// Stream is the stream being verified.
func (v *ChainVerifier) Stream() string { return v.stream }

// Head is the verified end of the chain so far.
func (v *ChainVerifier) Head() Head { return v.head }

// Finish checks that the verified chain ends where the stored head says it does, which catches
// records removed from the end of a stream.
func (v *ChainVerifier) Finish(stored Head) error {
	if v.err != nil {
		return v.err
	}
	if stored != v.head {
		v.err = &ChainError{Stream: v.stream, Seq: v.head.Seq + 1,
			Problem: fmt.Sprintf("chain ends at seq %d but its recorded head is seq %d (%s): records missing at the end", v.head.Seq, stored.Seq, stored.Hash)}
	}
	return v.err
}
