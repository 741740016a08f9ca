// Package manifest builds the Teams app package a firm uploads to its app catalog: manifest.json
// (schema version 1.29, pinned; the schema is kept in schema/ and the tests validate against it)
// and the two icons Teams requires, drawn here: a 192×192 colour icon and a 32×32 white-on-
// transparent outline.
package manifest

import (
	"archive/zip"
	"bytes"
	"crypto/sha1" // #nosec G505 -- a name-based UUID, not a secret
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// SchemaVersion is the manifest schema this package writes.
const SchemaVersion = "1.29"

// Config is what the manifest says.
type Config struct {
	ID        string // the app's id in the manifest (a GUID); default: derived from the bot id
	BotID     string // WXTEAMS_BOT_APP_ID
	PublicURL string // WXTEAMS_PUBLIC_URL: its host is the valid domain
	Version   string // semver [1.0.0]
	Name      string // short name, ≤30 [WeChat]
	Developer string // ≤32 [the public URL's host]
	Website   string // [PublicURL]
	Privacy   string // [PublicURL/privacy]
	Terms     string // [PublicURL/terms]
}

var (
	guid   = regexp.MustCompile(`^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$`)
	semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$`)
)

// withDefaults fills in what is not set and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if !guid.MatchString(c.BotID) {
		return c, errors.New("the bot's app id (WXTEAMS_BOT_APP_ID) must be a GUID")
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return c, errors.New("WXTEAMS_PUBLIC_URL must be the https URL Teams reaches wxteams at")
	}
	base := strings.TrimSuffix(c.PublicURL, "/")
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&c.ID, DefaultID(c.BotID))
	def(&c.Version, "1.0.0")
	def(&c.Name, "WeChat")
	def(&c.Developer, u.Hostname())
	def(&c.Website, base)
	def(&c.Privacy, base+"/privacy")
	def(&c.Terms, base+"/terms")
	switch {
	case !guid.MatchString(c.ID):
		return c, fmt.Errorf("the app id %q must be a GUID", c.ID)
	case !semver.MatchString(c.Version):
		return c, fmt.Errorf("the version %q must be semver, such as 1.0.0", c.Version)
	case len([]rune(c.Name)) > 30:
		return c, errors.New("the short name is at most 30 characters")
	case len([]rune(c.Developer)) > 32:
		return c, errors.New("the developer name is at most 32 characters")
	}
	for _, v := range []string{c.Website, c.Privacy, c.Terms} {
		if !strings.HasPrefix(strings.ToLower(v), "https://") && !strings.HasPrefix(strings.ToLower(v), "http://") {
			return c, fmt.Errorf("%q is not an http(s) URL", v)
		}
	}
	c.PublicURL = u.Hostname()
	return c, nil
}

// DefaultID is a stable app id for a bot: a name-based (version 5 style) UUID of its app id, so
// rebuilding the package never makes a second app in the catalog.
func DefaultID(botID string) string {
	sum := sha1.Sum([]byte("wxteams teams app\x00" + strings.ToLower(botID))) // #nosec G401 -- a name-based UUID (RFC 9562 version 5 is SHA-1), not a secret
	sum[6] = sum[6]&0x0f | 0x50
	sum[8] = sum[8]&0x3f | 0x80
	h := fmt.Sprintf("%x", sum[:16])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

type command struct {
	Title       string `json:"title"`
	Description string `json:"description"`
}

// JSON is manifest.json.
func JSON(cfg Config) ([]byte, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := map[string]any{
		"$schema":         "https://developer.microsoft.com/json-schemas/teams/v" + SchemaVersion + "/MicrosoftTeams.schema.json",
		"manifestVersion": SchemaVersion,
		"version":         c.Version,
		"id":              c.ID,
		"developer":       map[string]string{"name": c.Developer, "websiteUrl": c.Website, "privacyUrl": c.Privacy, "termsOfUseUrl": c.Terms},
		"name":            map[string]string{"short": c.Name, "full": c.Name + " for customer conversations"},
		"description": map[string]string{
			"short": "Chat with your clients on WeChat from Teams, recorded for compliance.",
			"full": "Customers who scan your WeChat QR code reach you in this chat; your replies go to them on WeChat. " +
				"The firm's messaging policy applies: WeChat lets you send three messages in a row before the customer replies, " +
				"later messages wait in a queue. Every message, in both directions, is archived for compliance before it is delivered.",
		},
		"icons":       map[string]string{"color": "color.png", "outline": "outline.png"},
		"accentColor": "#07C160",
		"bots": []map[string]any{{
			"botId": c.BotID, "scopes": []string{"personal"}, "supportsFiles": true, "isNotificationOnly": false,
			"commandLists": []map[string]any{{"scopes": []string{"personal"}, "commands": []command{
				{"help", "What this bot does and its commands"},
				{"contacts", "Your WeChat contacts and their chats"},
				{"to", "to <name or number>: write to that contact next"},
				{"qr", "Your WeChat QR code for customers to scan"},
				{"rename", "rename <name>: name your current contact"},
			}}},
		}},
		"validDomains":       []string{c.PublicURL},
		"webApplicationInfo": map[string]string{"id": c.BotID, "resource": "api://" + c.BotID},
	}
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Package is the zip to upload: manifest.json, color.png, outline.png.
func Package(cfg Config) ([]byte, error) {
	manifest, err := JSON(cfg)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{"manifest.json", manifest}, {"color.png", ColorIcon()}, {"outline.png", OutlineIcon()}} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// bubble reports whether (x, y) in a unit square [0,1)² is inside the speech-bubble glyph: a
// rounded body and a tail at its lower left.
func bubble(x, y float64) bool {
	// Body: a rounded rectangle from (0.05, 0.08) to (0.95, 0.72), corner radius 0.16.
	const x0, y0, x1, y1, r = 0.05, 0.08, 0.95, 0.72, 0.16
	inBody := func() bool {
		cx := min(max(x, x0+r), x1-r)
		cy := min(max(y, y0+r), y1-r)
		dx, dy := x-cx, y-cy
		return x >= x0 && x < x1 && y >= y0 && y < y1 && dx*dx+dy*dy <= r*r
	}
	// Tail: a triangle below the body's lower left.
	inTail := func() bool {
		return y >= 0.70 && y < 0.94 && x >= 0.22 && x < 0.22+(0.94-y)*0.9 && x < 0.48
	}
	return inBody() || inTail()
}

// ColorIcon is the 192×192 colour icon: the glyph in white, 96×96 in the middle of a solid WeChat
// green square (48 px padding, no rounded corners).
func ColorIcon() []byte {
	const size, pad, glyph = 192, 48, 96
	green := color.NRGBA{0x07, 0xC1, 0x60, 0xFF}
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	for y := range size {
		for x := range size {
			c := green
			if gx, gy := x-pad, y-pad; gx >= 0 && gx < glyph && gy >= 0 && gy < glyph && bubble((float64(gx)+0.5)/glyph, (float64(gy)+0.5)/glyph) {
				c = color.NRGBA{0xFF, 0xFF, 0xFF, 0xFF}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return encode(img)
}

// OutlineIcon is the 32×32 outline icon: the glyph in pure white on full transparency, no other
// colours and no padding, as Teams requires.
func OutlineIcon() []byte {
	const size = 32
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	for y := range size {
		for x := range size {
			if bubble((float64(x)+0.5)/size, (float64(y)+0.5)/size) {
				img.SetNRGBA(x, y, color.NRGBA{0xFF, 0xFF, 0xFF, 0xFF})
			}
		}
	}
	return encode(img)
}

func encode(img image.Image) []byte {
	var buf bytes.Buffer
	_ = png.Encode(&buf, img) // encoding an in-memory NRGBA cannot fail
	return buf.Bytes()
}
