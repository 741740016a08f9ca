package export

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/wxteams/wxteams/compliance"
)

// Report is what Verify checked.
type Report struct {
	Records    int
	Streams    int
	Files      int
	Leaves     int // streams whose head was proven under the signed checkpoint
	Matched    int // of those, leaves whose record is in the export and matched
	Checkpoint *compliance.Checkpoint
	Manifest   *Manifest
}

// VerifyError names what failed: a file, or a record (stream, seq, line of records.jsonl).
type VerifyError struct {
	File    string
	Line    int
	Stream  string
	Seq     int64
	Problem string
}

func (e *VerifyError) Error() string {
	switch {
	case e.Stream != "" && e.Line > 0:
		return fmt.Sprintf("%s line %d (stream %s, seq %d): %s", e.File, e.Line, e.Stream, e.Seq, e.Problem)
	case e.Stream != "":
		return fmt.Sprintf("stream %s, seq %d: %s", e.Stream, e.Seq, e.Problem)
	case e.File != "":
		return fmt.Sprintf("%s: %s", e.File, e.Problem)
	}
	return e.Problem
}

// Verify checks an export folder offline with only the signer's public key: the manifest's
// signature; every file against its SHA-256 (and no file the manifest does not list); every
// record's content and hash and the chain of each segment; the checkpoint's signature and each
// stream head's inclusion proof; and the counts. It returns the first problem as a *VerifyError.
func Verify(dir string, pub ed25519.PublicKey) (*Report, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestName)) // #nosec G304 -- the export the operator asked to verify
	if err != nil {
		return nil, &VerifyError{File: ManifestName, Problem: err.Error()}
	}
	sigText, err := os.ReadFile(filepath.Join(dir, SignatureName)) // #nosec G304 -- the export the operator asked to verify
	if err != nil {
		return nil, &VerifyError{File: SignatureName, Problem: err.Error()}
	}
	keyID, sigB64, _ := strings.Cut(strings.TrimSpace(string(sigText)), " ")
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	switch {
	case err != nil:
		return nil, &VerifyError{File: SignatureName, Problem: "malformed signature"}
	case keyID != compliance.SigningKeyID(pub):
		return nil, &VerifyError{File: SignatureName, Problem: fmt.Sprintf("signed by %s, not by the key given (%s)", keyID, compliance.SigningKeyID(pub))}
	case !ed25519.Verify(pub, data, sig):
		return nil, &VerifyError{File: ManifestName, Problem: "the manifest does not match its signature: it was altered"}
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, &VerifyError{File: ManifestName, Problem: "malformed: " + err.Error()}
	}
	rep := &Report{Manifest: &m, Checkpoint: m.Checkpoint}

	// Files: exactly the listed ones, each with its hash.
	listed := map[string]File{}
	for _, f := range m.Files {
		listed[f.Name] = f
	}
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if rel == ManifestName || rel == SignatureName {
			return nil
		}
		f, ok := listed[rel]
		if !ok {
			return &VerifyError{File: rel, Problem: "not in the manifest: added after the export"}
		}
		sum, size, err := fileHash(path)
		if err != nil {
			return err
		}
		if sum != f.SHA256 || size != f.Size {
			return &VerifyError{File: rel, Problem: "its SHA-256 is not the manifest's: the file was altered"}
		}
		if sha, ok := strings.CutPrefix(rel, "media/"); ok && sha != sum {
			return &VerifyError{File: rel, Problem: "media file whose bytes do not hash to its name"}
		}
		delete(listed, rel)
		rep.Files++
		return nil
	})
	if err != nil {
		return nil, err
	}
	for name := range listed {
		return nil, &VerifyError{File: name, Problem: "listed in the manifest but missing"}
	}

	// The checkpoint and the inclusion proofs.
	if cp := m.Checkpoint; cp != nil {
		if err := cp.VerifySignature(pub); err != nil {
			return nil, &VerifyError{File: ManifestName, Problem: "checkpoint: " + err.Error()}
		}
		for _, s := range m.Streams {
			if s.Leaf == nil {
				continue
			}
			leaf := compliance.Leaf{Stream: s.Stream, Seq: s.Leaf.Seq, Hash: s.Leaf.Hash}
			if !compliance.VerifyInclusion(leaf, s.Leaf.Index, int(cp.Streams), s.Leaf.Proof, cp.Root) {
				return nil, &VerifyError{Stream: s.Stream, Seq: s.Leaf.Seq, Problem: "its head is not under the signed checkpoint root"}
			}
			rep.Leaves++
		}
	}

	// The records.
	if err := verifyRecords(dir, &m, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

func fileHash(path string) (string, int64, error) {
	f, err := os.Open(path) // #nosec G304 -- a file the export's manifest lists, in the export
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// streamState follows one stream through records.jsonl.
type streamState struct {
	s       Stream
	segment int // the segment being read
	v       *compliance.ChainVerifier
	done    bool
}

func verifyRecords(dir string, m *Manifest, rep *Report) error {
	f, err := os.Open(filepath.Join(dir, RecordsName)) // #nosec G304 -- the export the operator asked to verify
	if err != nil {
		return &VerifyError{File: RecordsName, Problem: err.Error()}
	}
	defer f.Close()
	states := map[string]*streamState{}
	for _, s := range m.Streams {
		states[s.Stream] = &streamState{s: s}
	}
	counts := map[string]int{}
	var cur *streamState
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	finishSegment := func(st *streamState) error {
		seg := st.s.Segments[st.segment]
		if err := st.v.Finish(compliance.Head{Seq: seg.LastSeq, Hash: seg.LastHash}); err != nil {
			return chainError(err, line)
		}
		st.segment++
		st.v = nil
		return nil
	}
	for sc.Scan() {
		line++
		var l Line
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return &VerifyError{File: RecordsName, Line: line, Problem: "malformed record: " + err.Error()}
		}
		st := states[l.Stream]
		if st == nil {
			return &VerifyError{File: RecordsName, Line: line, Stream: l.Stream, Seq: l.Seq, Problem: "stream not in the manifest"}
		}
		if cur != st {
			if cur != nil && !cur.done {
				if err := finishSegment(cur); err != nil {
					return err
				}
				if cur.segment < len(cur.s.Segments) {
					return &VerifyError{File: RecordsName, Line: line, Stream: cur.s.Stream, Seq: cur.s.Segments[cur.segment].FirstSeq, Problem: "records of the stream are missing"}
				}
				cur.done = true
			}
			if st.done || st.v != nil {
				return &VerifyError{File: RecordsName, Line: line, Stream: l.Stream, Seq: l.Seq, Problem: "the stream's records are not together: records were moved"}
			}
			cur = st
		}
		if st.segment >= len(st.s.Segments) {
			return &VerifyError{File: RecordsName, Line: line, Stream: l.Stream, Seq: l.Seq, Problem: "record beyond the stream's last segment: inserted"}
		}
		seg := st.s.Segments[st.segment]
		if st.v != nil && l.Seq > seg.LastSeq {
			if err := finishSegment(st); err != nil {
				return err
			}
			if st.segment >= len(st.s.Segments) {
				return &VerifyError{File: RecordsName, Line: line, Stream: l.Stream, Seq: l.Seq, Problem: "record beyond the stream's last segment: inserted"}
			}
			seg = st.s.Segments[st.segment]
		}
		if st.v == nil {
			st.v = compliance.NewChainVerifierFrom(l.Stream, compliance.Head{Seq: seg.FirstSeq - 1, Hash: seg.PrevHash})
		}
		r := l.Record()
		if err := st.v.Add(r, true); err != nil {
			return chainError(err, line)
		}
		if lp := st.s.Leaf; lp != nil && lp.Seq == l.Seq {
			if l.Hash != lp.Hash {
				return &VerifyError{File: RecordsName, Line: line, Stream: l.Stream, Seq: l.Seq, Problem: "not the record the signed checkpoint holds"}
			}
			rep.Matched++
		}
		counts[string(l.Kind)]++
		rep.Records++
	}
	if err := sc.Err(); err != nil {
		return &VerifyError{File: RecordsName, Line: line, Problem: err.Error()}
	}
	if cur != nil && !cur.done {
		if err := finishSegment(cur); err != nil {
			return err
		}
		cur.done = cur.segment == len(cur.s.Segments)
	}
	for _, s := range m.Streams {
		if st := states[s.Stream]; !st.done {
			seq := int64(0)
			if st.segment < len(s.Segments) {
				seq = s.Segments[st.segment].FirstSeq
			}
			return &VerifyError{Stream: s.Stream, Seq: seq, Problem: "records of the stream are missing from " + RecordsName}
		}
	}
	rep.Streams = len(m.Streams)
	if rep.Records != m.Counts.Records {
		return &VerifyError{File: RecordsName, Problem: fmt.Sprintf("%d records, the manifest counts %d", rep.Records, m.Counts.Records)}
	}
	for kind, n := range m.Counts.ByKind {
		if counts[kind] != n {
			return &VerifyError{File: RecordsName, Problem: fmt.Sprintf("%d %s records, the manifest counts %d", counts[kind], kind, n)}
		}
	}
	return nil
}

// chainError turns a chain error into a VerifyError naming the line.
func chainError(err error, line int) error {
	var ce *compliance.ChainError
	if errors.As(err, &ce) {
		return &VerifyError{File: RecordsName, Line: line, Stream: ce.Stream, Seq: ce.Seq, Problem: ce.Problem}
	}
	return err
}
