// Package export writes the compliance record out for the firm's archive, and checks an export
// offline. One canonical model (records as the archive holds them, bodies opened) feeds every
// format: JSONL (canonical; always written, since it is what verification re-checks), CSV, Global
// Relay-style EML (one message per chat per day) and Actiance XML (one conversation per chat per
// day). Each export is a folder with a manifest.json — scope, counts per kind, SHA-256 of every
// file, each stream's chain segments and their link to a signed checkpoint — signed with Ed25519
// in manifest.json.sig. The same records give the same bytes: nothing depends on the time the
// export ran.
//
// It imports compliance only; the store feeds it through Source.
package export

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/wxteams/wxteams/compliance"
)

// Formats an export can be written in.
const (
	JSONL    = "jsonl"
	CSV      = "csv"
	EML      = "eml"
	Actiance = "actiance"
)

// AllFormats are the formats in the order they are written.
var AllFormats = []string{JSONL, CSV, EML, Actiance}

// Scope is what an export covers. Zero values mean unbounded / everyone.
type Scope struct {
	From     time.Time `json:"from,omitzero"` // inclusive
	To       time.Time `json:"to,omitzero"`   // exclusive
	Employee string    `json:"employee,omitempty"`
	Contact  string    `json:"contact,omitempty"`
	// Chat narrows the export to one chat's stream; Records, to those of its records (sequence
	// numbers): what an officer had on screen.
	Chat    int64    `json:"chat,omitempty"`
	Records []int64  `json:"records,omitempty"`
	Formats []string `json:"formats"`
	// Job makes the export incremental: only records after what the scheduled job of that name
	// has exported already (its cursor); Run numbers the job's exports.
	Job string `json:"job,omitempty"`
	Run int64  `json:"run,omitempty"`
	// Stream narrows the export to one stream ("supervision": the rule changes and review steps).
	Stream string `json:"stream,omitempty"`
	// Files are written into the export beside the records — a report drawn from them — and listed
	// in the manifest with their SHA-256 like every file, so the signature covers them.
	Files []Attachment `json:"-"`
}

// Attachment is a file an export carries beside its records.
type Attachment struct {
	Name string // a plain file name: letters, digits, '.', '-', '_'
	Data []byte
}

var attachmentName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// Validate checks the formats and the window.
func (s *Scope) Validate() error {
	if len(s.Formats) == 0 {
		s.Formats = []string{JSONL}
	}
	for _, f := range s.Formats {
		if !slices.Contains(AllFormats, f) {
			return fmt.Errorf("unknown export format %q: want %s", f, strings.Join(AllFormats, ", "))
		}
	}
	if !s.From.IsZero() && !s.To.IsZero() && !s.To.After(s.From) {
		return errors.New("the export window is empty: --to must be after --from")
	}
	if len(s.Records) > 0 && s.Chat <= 0 {
		return errors.New("records are named within a chat: give the chat too")
	}
	if s.Stream != "" && s.Chat != 0 {
		return errors.New("name a chat or a stream, not both")
	}
	for _, f := range s.Files {
		switch {
		case !attachmentName.MatchString(f.Name):
			return fmt.Errorf("attached file %q: use a plain file name (letters, digits, '.', '-', '_')", f.Name)
		case slices.Contains([]string{RecordsName, CSVName, ActianceName, ManifestName, SignatureName, "eml", "media"}, f.Name):
			return fmt.Errorf("attached file %q: the export writes a file of that name itself", f.Name)
		}
	}
	if len(s.Records) > MaxRecords {
		return fmt.Errorf("at most %d records can be named; export the chat or a time window instead", MaxRecords)
	}
	for _, seq := range s.Records {
		if seq <= 0 {
			return fmt.Errorf("record %d: sequence numbers start at 1", seq)
		}
	}
	return nil
}

// MaxRecords is how many records an export may name one by one.
const MaxRecords = 5000

// Person is how a participant appears in an export.
type Person struct {
	Name  string
	Email string
}

// Media is attached bytes.
type Media struct {
	ContentType string
	Name        string
	Data        []byte
}

// Source is the archive an export reads (the store implements it).
type Source interface {
	// Scan calls fn for every record in scope, bodies opened, ordered by stream then sequence
	// number. The stream filter and time window are applied; within a stream the records passed
	// may have gaps, which become separate segments.
	Scan(ctx context.Context, scope Scope, fn func(*compliance.Record) error) error
	// Person names an employee ("employee", id) or a customer ("contact", openid).
	Person(ctx context.Context, kind, id string) Person
	// Media returns stored media by SHA-256.
	Media(ctx context.Context, sha256 string) (Media, error)
	// Checkpoint returns the latest checkpoint and all its leaves in tree order (nil if none).
	Checkpoint(ctx context.Context) (*compliance.Checkpoint, []compliance.Leaf, error)
}

// Options are who makes the export and with which key.
type Options struct {
	Operator string             // archived and written in the manifest
	Tool     string             // "wxteams <version>"
	Key      ed25519.PrivateKey // signs the manifest
}

// Manifest describes an export folder.
type Manifest struct {
	Format     string                  `json:"format"` // "wxteams-export/1"
	Tool       string                  `json:"tool"`
	Operator   string                  `json:"operator"`
	Scope      Scope                   `json:"scope"`
	Counts     Counts                  `json:"counts"`
	Files      []File                  `json:"files"`
	Streams    []Stream                `json:"streams"`
	Checkpoint *compliance.Checkpoint  `json:"checkpoint,omitempty"`
	KeyID      string                  `json:"key_id"`
	PublicKey  string                  `json:"public_key"` // base64; verification uses the one the verifier trusts
	Media      map[string]MediaSummary `json:"media,omitempty"`
}

// Counts are what the export holds.
type Counts struct {
	Records       int            `json:"records"`
	ByKind        map[string]int `json:"by_kind"`
	Streams       int            `json:"streams"`
	Conversations int            `json:"conversations"` // chat-days (EML messages, Actiance conversations)
	Media         int            `json:"media"`
}

// File is one file of the export and its SHA-256.
type File struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// MediaSummary describes an exported media file.
type MediaSummary struct {
	ContentType string `json:"content_type"`
	Name        string `json:"name,omitempty"`
	Missing     bool   `json:"missing,omitempty"` // disposed of before the export
}

// Stream is one stream's part of the export.
type Stream struct {
	Stream   string    `json:"stream"`
	Segments []Segment `json:"segments"`
	// Leaf is the stream's head in the manifest's checkpoint, with its inclusion proof; when the
	// leaf's record is in the export, verification checks it is that record.
	Leaf *LeafProof `json:"checkpoint_leaf,omitempty"`
}

// Segment is a run of consecutive records of a stream.
type Segment struct {
	FirstSeq int64           `json:"first_seq"`
	LastSeq  int64           `json:"last_seq"`
	PrevHash compliance.Hash `json:"prev_hash"` // the hash the first record chains from
	LastHash compliance.Hash `json:"last_hash"`
}

// LeafProof places a stream's head under a checkpoint root.
type LeafProof struct {
	Seq   int64             `json:"seq"`
	Hash  compliance.Hash   `json:"hash"`
	Index int               `json:"index"`
	Proof []compliance.Hash `json:"proof"`
}

// ManifestName and SignatureName are the manifest and its detached signature.
const (
	ManifestName  = "manifest.json"
	SignatureName = "manifest.json.sig"
)

// rec is a record decoded for the format writers.
type rec struct {
	*compliance.Record
	meta    compliance.Meta
	content compliance.Content
}

// formatWriter writes one format as records stream past.
type formatWriter interface {
	add(r *rec) error
	endStream() error
	close() error
}

// Write exports what scope covers from src into dir (created; it must not exist or be empty) and
// returns the manifest.
func Write(ctx context.Context, dir string, src Source, scope Scope, opt Options) (*Manifest, error) {
	if err := scope.Validate(); err != nil {
		return nil, err
	}
	if opt.Key == nil {
		return nil, errors.New("export: a signing key is required (WXTEAMS_SIGNING_KEY)")
	}
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	pub := opt.Key.Public().(ed25519.PublicKey)
	m := &Manifest{Format: "wxteams-export/1", Tool: opt.Tool, Operator: opt.Operator, Scope: scope,
		Counts: Counts{ByKind: map[string]int{}}, KeyID: compliance.SigningKeyID(pub), PublicKey: base64.StdEncoding.EncodeToString(pub),
		Media: map[string]MediaSummary{}}
	people := newDirectory(ctx, src)
	writers := []formatWriter{}
	jsonl, err := newJSONLWriter(dir)
	if err != nil {
		return nil, err
	}
	writers = append(writers, jsonl)
	for _, f := range scope.Formats {
		var w formatWriter
		switch f {
		case CSV:
			w, err = newCSVWriter(dir)
		case EML:
			w, err = newEMLWriter(dir, people, func(sha string) (Media, error) { return src.Media(ctx, sha) })
		case Actiance:
			w, err = newActianceWriter(dir, people)
		}
		if err != nil {
			return nil, err
		}
		if w != nil {
			writers = append(writers, w)
		}
	}
	var (
		cur      *Stream
		mediaSHA = map[string]bool{}
		// the chat-day of the previous record, to count conversations as the grouper cuts them
		lastStream string
		lastDay    int64
	)
	endStream := func() error {
		if cur == nil {
			return nil
		}
		m.Streams = append(m.Streams, *cur)
		cur = nil
		for _, w := range writers {
			if err := w.endStream(); err != nil {
				return err
			}
		}
		return nil
	}
	// Only the derived formats read meta and content; the canonical JSONL copies their bytes.
	decode := len(writers) > 1
	mediaKey := []byte(`"media_sha256"`)
	err = pipeline(ctx, src, scope, func(r *compliance.Record) error {
		var (
			meta    compliance.Meta
			content compliance.Content
			err     error
		)
		if decode || bytes.Contains(r.Meta, mediaKey) {
			if meta, err = compliance.DecodeMeta(r.Meta); err != nil {
				return fmt.Errorf("stream %s seq %d: %w", r.Stream, r.Seq, err)
			}
		}
		if decode {
			if content, err = compliance.DecodeContent(r.Body); err != nil {
				return fmt.Errorf("stream %s seq %d: %w", r.Stream, r.Seq, err)
			}
		}
		if cur == nil || cur.Stream != r.Stream {
			if err := endStream(); err != nil {
				return err
			}
			cur = &Stream{Stream: r.Stream}
		}
		if n := len(cur.Segments); n > 0 && cur.Segments[n-1].LastSeq+1 == r.Seq {
			cur.Segments[n-1].LastSeq, cur.Segments[n-1].LastHash = r.Seq, r.Hash
		} else {
			cur.Segments = append(cur.Segments, Segment{FirstSeq: r.Seq, LastSeq: r.Seq, PrevHash: r.PrevHash, LastHash: r.Hash})
		}
		m.Counts.Records++
		m.Counts.ByKind[string(r.Kind)]++
		if strings.HasPrefix(r.Stream, "chat:") {
			if day := r.At.UTC().Unix() / 86400; r.Stream != lastStream || day != lastDay {
				m.Counts.Conversations++
				lastStream, lastDay = r.Stream, day
			}
		}
		if meta.MediaSHA256 != "" {
			mediaSHA[meta.MediaSHA256] = true
		}
		one := &rec{Record: r, meta: meta, content: content}
		for _, w := range writers {
			if err := w.add(one); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = endStream()
	}
	for _, w := range writers {
		if cerr := w.close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return nil, err
	}
	m.Counts.Streams = len(m.Streams)

	// Media, by SHA-256 (the file name is the hash of its bytes).
	shas := make([]string, 0, len(mediaSHA))
	for sha := range mediaSHA {
		shas = append(shas, sha)
	}
	sort.Strings(shas)
	for _, sha := range shas {
		med, err := src.Media(ctx, sha)
		if err != nil {
			m.Media[sha] = MediaSummary{Missing: true}
			continue
		}
		if err := writeFile(filepath.Join(dir, "media", sha), med.Data); err != nil {
			return nil, err
		}
		m.Media[sha] = MediaSummary{ContentType: med.ContentType, Name: med.Name}
		m.Counts.Media++
	}

	// The checkpoint and each stream's leaf in it.
	cp, leaves, err := src.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	if cp != nil {
		m.Checkpoint = cp
		index := make(map[string]int, len(leaves))
		for i, l := range leaves {
			index[l.Stream] = i
		}
		tree := compliance.NewMerkleTree(leaves)
		for i := range m.Streams {
			if at, ok := index[m.Streams[i].Stream]; ok {
				l := leaves[at]
				m.Streams[i].Leaf = &LeafProof{Seq: l.Seq, Hash: l.Hash, Index: at, Proof: tree.Proof(at)}
			}
		}
	}
	sort.Slice(m.Streams, func(i, j int) bool { return m.Streams[i].Stream < m.Streams[j].Stream })

	for _, f := range scope.Files {
		if err := writeFile(filepath.Join(dir, f.Name), f.Data); err != nil {
			return nil, err
		}
	}
	if m.Files, err = hashFiles(dir); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	data = append(data, '\n')
	if err := writeFile(filepath.Join(dir, ManifestName), data); err != nil {
		return nil, err
	}
	sig := ed25519.Sign(opt.Key, data)
	if err := writeFile(filepath.Join(dir, SignatureName), []byte(m.KeyID+" "+base64.StdEncoding.EncodeToString(sig)+"\n")); err != nil {
		return nil, err
	}
	return m, nil
}

// pipeline reads the records on one goroutine and hands them, in order and in batches, to handle
// on this one: reading (the database driver, opening sealed bodies) and writing the formats
// overlap on two cores.
func pipeline(ctx context.Context, src Source, scope Scope, handle func(*compliance.Record) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const size = 512
	batches := make(chan []*compliance.Record, 4)
	scanned := make(chan error, 1)
	go func() {
		defer close(batches)
		batch := make([]*compliance.Record, 0, size)
		send := func() error {
			select {
			case batches <- batch:
				batch = make([]*compliance.Record, 0, size)
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := src.Scan(ctx, scope, func(r *compliance.Record) error {
			if batch = append(batch, r); len(batch) == size {
				return send()
			}
			return nil
		})
		if err == nil && len(batch) > 0 {
			err = send()
		}
		scanned <- err
	}()
	var handled error
	for batch := range batches {
		for _, r := range batch {
			if handled != nil {
				break
			}
			if handled = handle(r); handled != nil {
				cancel()
			}
		}
	}
	if err := <-scanned; handled == nil {
		return err
	}
	return handled
}

// ManifestHash is the SHA-256 of a written manifest, archived with the export.
func ManifestHash(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestName)) // #nosec G304 -- the export just written
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

func prepareDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return os.MkdirAll(dir, 0o750)
	case err != nil:
		return err
	case len(entries) > 0:
		return fmt.Errorf("export folder %s is not empty: exports never overwrite", dir)
	}
	return nil
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o640) // #nosec G306 -- in the export folder (0750), read by the compliance group
}

// hashFiles lists every file under dir but the manifest and its signature, with their SHA-256.
// Files are opened through dir as a root: a link in the folder cannot reach beyond it.
func hashFiles(dir string) ([]File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fsys := root.FS()
	var files []File
	err = fs.WalkDir(fsys, ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if rel == ManifestName || rel == SignatureName {
			return nil
		}
		f, err := fsys.Open(rel)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		files = append(files, File{Name: rel, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n})
		return nil
	})
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, err
}

// directory caches participants' names; the EML workers share it.
type directory struct {
	ctx    context.Context
	src    Source
	mu     sync.Mutex
	people map[string]Person
}

func newDirectory(ctx context.Context, src Source) *directory {
	return &directory{ctx: ctx, src: src, people: map[string]Person{}}
}

// person returns the participant kind:id, with a name and an address even when none is known.
func (d *directory) person(kind, id string) Person {
	key := kind + ":" + id
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.people[key]; ok {
		return p
	}
	p := d.src.Person(d.ctx, kind, id)
	if p.Name == "" {
		p.Name = id
		if kind == "contact" {
			p.Name = "WeChat user " + id
		}
	}
	if p.Email == "" {
		domain := "teams.wxteams.invalid"
		if kind == "contact" {
			domain = "wechat.wxteams.invalid"
		}
		p.Email = addressPart(id) + "@" + domain
	}
	d.people[key] = p
	return p
}

// addressPart makes an id usable as the local part of an address.
func addressPart(id string) string {
	var b strings.Builder
	for _, r := range id {
		if r < 128 && (r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}
