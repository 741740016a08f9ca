package compliance

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
)

// Encryption at rest is envelope encryption. Message bodies, queued and outgoing messages and media
// are sealed with AES-256-GCM under data keys (DEKs), one current key per tenant; each DEK is stored
// wrapped (AES-256-GCM) by the key-encryption key (KEK, WXTEAMS_ARCHIVE_KEY). A sealed value names
// its DEK, so rotating a DEK only changes what new rows use, and rotating the KEK only rewraps the
// DEKs: old rows are never rewritten. A database dump alone holds no plaintext and no usable key.

// KeySize is the size of KEKs and DEKs: AES-256.
const KeySize = 32

// Keyring holds the KEKs: the current one wraps new DEKs; previous ones still unwrap old DEKs until
// they are rewrapped.
type Keyring struct {
	current string
	keks    map[string]cipher.AEAD
}

// KEKID names a KEK without revealing it: the first 16 hex digits of SHA-256 over a label and the key.
func KEKID(kek []byte) string {
	sum := sha256.Sum256(append([]byte("wxteams kek id\x00"), kek...))
	return "kek-" + hex.EncodeToString(sum[:8])
}

// NewKeyring returns a keyring whose current KEK is current; previous KEKs unwrap only.
func NewKeyring(current []byte, previous ...[]byte) (*Keyring, error) {
	k := &Keyring{keks: map[string]cipher.AEAD{}}
	for i, key := range append([][]byte{current}, previous...) {
		aead, err := newGCM(key)
		if err != nil {
			return nil, fmt.Errorf("key-encryption key %d: %w", i, err)
		}
		k.keks[KEKID(key)] = aead
	}
	k.current = KEKID(current)
	return k, nil
}

// Current is the id of the KEK that wraps new DEKs.
func (k *Keyring) Current() string { return k.current }

// NewDataKey makes a random DEK and wraps it with the current KEK for tenant (the tenant is bound
// into the wrapping, so a wrapped key cannot be moved to another tenant). The caller clears dek
// once it has made its cipher.
func (k *Keyring) NewDataKey(tenant string) (dek, wrapped []byte, err error) {
	dek = make([]byte, KeySize)
	if _, err := rand.Read(dek); err != nil {
		return nil, nil, err
	}
	return dek, seal(k.keks[k.current], dek, []byte("wxteams dek\x00"+tenant)), nil
}

// Unwrap recovers a DEK wrapped by NewDataKey or Rewrap.
func (k *Keyring) Unwrap(kekID, tenant string, wrapped []byte) ([]byte, error) {
	aead, ok := k.keks[kekID]
	if !ok {
		return nil, fmt.Errorf("data key is wrapped by %s, which is not configured (set it as WXTEAMS_ARCHIVE_KEY_PREVIOUS)", kekID)
	}
	dek, err := open(aead, wrapped, []byte("wxteams dek\x00"+tenant))
	if err != nil {
		return nil, fmt.Errorf("unwrap data key with %s: %w", kekID, err)
	}
	return dek, nil
}

// Rewrap wraps a DEK again under the current KEK.
func (k *Keyring) Rewrap(kekID, tenant string, wrapped []byte) ([]byte, error) {
	dek, err := k.Unwrap(kekID, tenant, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	return seal(k.keks[k.current], dek, []byte("wxteams dek\x00"+tenant)), nil
}

// SealSecret encrypts a short-lived secret (the WeChat access token) directly with the current
// KEK, bound to aad.
func (k *Keyring) SealSecret(plaintext, aad []byte) []byte {
	return append([]byte(k.current+":"), seal(k.keks[k.current], plaintext, aad)...)
}

// OpenSecret decrypts a value from SealSecret with whichever configured KEK sealed it.
func (k *Keyring) OpenSecret(sealed, aad []byte) ([]byte, error) {
	id, rest, ok := bytes.Cut(sealed, []byte(":"))
	aead := k.keks[string(id)]
	if !ok || aead == nil {
		return nil, ErrDecrypt
	}
	return open(aead, rest, aad)
}

// DataKey seals and opens values with one DEK.
type DataKey struct {
	ID   string
	aead cipher.AEAD
}

// NewDataKeyCipher returns the cipher for a DEK; the cipher keeps no reference to dek, which the
// caller may then clear.
func NewDataKeyCipher(id string, dek []byte) (*DataKey, error) {
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	return &DataKey{ID: id, aead: aead}, nil
}

// Seal encrypts plaintext bound to aad (what the value is: e.g. the record's stream and sequence
// number), so a sealed value cannot be moved to another place and still open.
func (d *DataKey) Seal(plaintext, aad []byte) []byte { return seal(d.aead, plaintext, aad) }

// Open decrypts a value sealed with the same aad.
func (d *DataKey) Open(sealed, aad []byte) ([]byte, error) { return open(d.aead, sealed, aad) }

// ErrDecrypt is returned when a sealed value does not open: wrong key, wrong place, or altered.
var ErrDecrypt = errors.New("decryption failed: wrong key or altered data")

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("want a %d-byte key, got %d bytes", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal returns nonce || ciphertext.
func seal(aead cipher.AEAD, plaintext, aad []byte) []byte {
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		panic("crypto/rand: " + err.Error()) // never fails on supported platforms
	}
	return aead.Seal(out, out, plaintext, aad)
}

func open(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrDecrypt
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}

// BodyAAD binds an archived body to its record's place in its chain.
func BodyAAD(stream string, seq int64) []byte {
	b := make([]byte, 0, len(bodyAADPrefix)+len(stream)+21)
	b = append(append(append(b, bodyAADPrefix...), stream...), 0)
	return strconv.AppendInt(b, seq, 10)
}

const bodyAADPrefix = "wxteams archive body\x00"
