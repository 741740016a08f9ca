package manifest_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/dlclark/regexp2"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/wxteams/wxteams/manifest"
)

const bot = "2b7c9e41-8a3d-4f6b-b1c2-7d8e9f0a1b2c"

func unzip(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		out[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	return out
}

func TestPackageValidatesAgainstTheOfficialSchema(t *testing.T) {
	data, err := manifest.Package(manifest.Config{BotID: bot, PublicURL: "https://wxteams.acme.example", Developer: "Acme Securities"})
	if err != nil {
		t.Fatal(err)
	}
	files := unzip(t, data)
	if len(files) != 3 {
		t.Fatalf("package holds %d files; want manifest.json, color.png, outline.png", len(files))
	}
	schemaFile, err := os.Open("schema/MicrosoftTeams.v" + manifest.SchemaVersion + ".schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer schemaFile.Close()
	doc, err := jsonschema.UnmarshalJSON(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.UseRegexpEngine(ecmaRegexp) // the schema's patterns are ECMAScript's (lookaheads)
	if err := c.AddResource("teams.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("teams.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(files["manifest.json"]))
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(inst); err != nil {
		t.Fatalf("manifest.json does not validate against schema %s:\n%v\n%s", manifest.SchemaVersion, err, files["manifest.json"])
	}
	// The schema is not trivially permissive: a manifest without its bot id, or with an unknown
	// field, fails.
	var m map[string]any
	_ = json.Unmarshal(files["manifest.json"], &m)
	m["bots"].([]any)[0].(map[string]any)["botId"] = "not-a-guid"
	m["unknownField"] = true
	bad, _ := json.Marshal(m)
	badInst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(bad))
	if schema.Validate(badInst) == nil {
		t.Error("a broken manifest validated")
	}

	var got struct {
		ID           string   `json:"id"`
		Version      string   `json:"manifestVersion"`
		ValidDomains []string `json:"validDomains"`
		Bots         []struct {
			BotID  string   `json:"botId"`
			Scopes []string `json:"scopes"`
		} `json:"bots"`
	}
	_ = json.Unmarshal(files["manifest.json"], &got)
	if got.Version != manifest.SchemaVersion || got.ID != manifest.DefaultID(bot) || got.Bots[0].BotID != bot ||
		strings.Join(got.ValidDomains, ",") != "wxteams.acme.example" || strings.Join(got.Bots[0].Scopes, ",") != "personal" {
		t.Errorf("manifest = %+v", got)
	}
	// The same configuration gives the same package (the catalog sees one app, one version).
	again, _ := manifest.Package(manifest.Config{BotID: bot, PublicURL: "https://wxteams.acme.example", Developer: "Acme Securities"})
	if !bytes.Equal(data, again) {
		t.Error("two builds of one configuration differ")
	}

	// Icons as Teams requires them.
	color := decode(t, files["color.png"])
	if b := color.Bounds(); b.Dx() != 192 || b.Dy() != 192 {
		t.Errorf("color icon is %v; want 192×192", b)
	}
	for _, p := range []image.Point{{0, 0}, {191, 191}, {47, 100}, {100, 47}} {
		if _, _, _, a := color.At(p.X, p.Y).RGBA(); a != 0xffff {
			t.Errorf("color icon at %v is not the solid background", p)
		}
	}
	outline := decode(t, files["outline.png"])
	if b := outline.Bounds(); b.Dx() != 32 || b.Dy() != 32 {
		t.Errorf("outline icon is %v; want 32×32", b)
	}
	white, clear := 0, 0
	for y := range 32 {
		for x := range 32 {
			r, g, b, a := outline.At(x, y).RGBA()
			switch {
			case a == 0:
				clear++
			case a == 0xffff && r == 0xffff && g == 0xffff && b == 0xffff:
				white++
			default:
				t.Fatalf("outline icon pixel (%d,%d) is neither pure white nor transparent", x, y)
			}
		}
	}
	if white < 200 || clear < 200 {
		t.Errorf("outline icon has %d white and %d transparent pixels; want a visible glyph", white, clear)
	}
}

// ecmaRegexp compiles the schema's patterns as JSON Schema says they are: ECMA 262 regular
// expressions, which Go's regexp cannot run.
func ecmaRegexp(s string) (jsonschema.Regexp, error) {
	re, err := regexp2.Compile(s, regexp2.ECMAScript)
	if err != nil {
		return nil, err
	}
	return ecma{re}, nil
}

type ecma struct{ re *regexp2.Regexp }

func (e ecma) MatchString(s string) bool {
	ok, err := e.re.MatchString(s)
	return ok && err == nil
}

func (e ecma) String() string { return e.re.String() }

func decode(t *testing.T, data []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestConfigIsChecked(t *testing.T) {
	for _, cfg := range []manifest.Config{
		{BotID: "nope", PublicURL: "https://x.example"},
		{BotID: bot, PublicURL: "http://x.example"},
		{BotID: bot, PublicURL: "https://x.example", Version: "v1"},
		{BotID: bot, PublicURL: "https://x.example", Name: strings.Repeat("n", 31)},
	} {
		if _, err := manifest.Package(cfg); err == nil {
			t.Errorf("%+v was accepted", cfg)
		}
	}
}
