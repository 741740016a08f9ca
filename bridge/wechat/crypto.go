package wechat

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1" // #nosec G505 -- WeChat's signature is SHA-1 by its protocol
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// This file is WeChat's message crypto (WXBizMsgCrypt): the plain signature over token, timestamp
// and nonce; the message signature over the ciphertext too; and AES-256-CBC with WeChat's framing.

// Crypto errors. Each names what was wrong, never the secret involved.
var (
	ErrBadSignature = errors.New("wechat: signature does not match")
	ErrBadKey       = errors.New("wechat: EncodingAESKey must be 43 base64 characters encoding 32 bytes")
	ErrBadCipher    = errors.New("wechat: ciphertext is malformed")
	ErrBadPadding   = errors.New("wechat: ciphertext padding is invalid")
	ErrBadLength    = errors.New("wechat: message length exceeds the decrypted buffer")
	ErrWrongAppID   = errors.New("wechat: message is for another AppID")
)

// Signature is WeChat's plain signature: the SHA-1, in hex, of the sorted, concatenated parts
// (token, timestamp, nonce — and the ciphertext, for msg_signature).
func Signature(parts ...string) string {
	sorted := append([]string(nil), parts...)
	sort.Strings(sorted)
	sum := sha1.Sum([]byte(strings.Join(sorted, ""))) // #nosec G401 -- WeChat's signature is SHA-1 by its protocol
	return hex.EncodeToString(sum[:])
}

// VerifySignature compares a received signature with the expected one in constant time.
func VerifySignature(got string, parts ...string) bool {
	want := Signature(parts...)
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(got)), []byte(want)) == 1
}

// Cipher encrypts and decrypts callback messages for one AppID with one EncodingAESKey.
type Cipher struct {
	block cipher.Block
	key   []byte
	appID string
	// Random supplies the 16 random bytes of each encrypted message; crypto/rand when nil. Tests
	// set it to replay WeChat's published vectors.
	Random io.Reader
}

// NewCipher parses an EncodingAESKey (43 characters: the base64 of 32 bytes without its "=").
func NewCipher(encodingAESKey, appID string) (*Cipher, error) {
	if len(encodingAESKey) != 43 {
		return nil, ErrBadKey
	}
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(key) != 32 {
		return nil, ErrBadKey
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, ErrBadKey
	}
	return &Cipher{block: block, key: key, appID: appID}, nil
}

// blockSize is WeChat's PKCS#7 block: 32 bytes, not AES's 16.
const blockSize = 32

// Encrypt frames msg as random(16) ‖ length(4, big-endian) ‖ msg ‖ AppID, pads it to 32 bytes
// (PKCS#7), encrypts it with AES-256-CBC (IV = the key's first 16 bytes) and returns base64.
func (c *Cipher) Encrypt(msg []byte) (string, error) {
	random := c.Random
	if random == nil {
		random = rand.Reader
	}
	plain := make([]byte, 20, 20+len(msg)+len(c.appID)+blockSize)
	if _, err := io.ReadFull(random, plain[:16]); err != nil {
		return "", fmt.Errorf("wechat: random bytes: %w", err)
	}
	binary.BigEndian.PutUint32(plain[16:20], uint32(len(msg))) // #nosec G115 -- a reply is far shorter than 4 GiB
	plain = append(plain, msg...)
	plain = append(plain, c.appID...)
	pad := blockSize - len(plain)%blockSize
	plain = append(plain, bytes.Repeat([]byte{byte(pad)}, pad)...)
	out := make([]byte, len(plain))
	cipher.NewCBCEncrypter(c.block, c.key[:aes.BlockSize]).CryptBlocks(out, plain)
	return base64.StdEncoding.EncodeToString(out), nil
}

// Decrypt reverses Encrypt. It checks the padding (1..32), the length field against the buffer,
// and that the message is addressed to this Cipher's AppID; it returns the message and the AppID
// found inside. Its errors carry nothing of the decrypted bytes (no pad value, no length).
func (c *Cipher) Decrypt(encrypted string) (msg []byte, appID string, err error) {
	raw, err := base64.StdEncoding.DecodeString(encrypted)
	if err != nil {
		return nil, "", fmt.Errorf("%w: not base64", ErrBadCipher)
	}
	if len(raw) == 0 || len(raw)%aes.BlockSize != 0 {
		return nil, "", fmt.Errorf("%w: length %d is not a multiple of %d", ErrBadCipher, len(raw), aes.BlockSize)
	}
	plain := make([]byte, len(raw))
	cipher.NewCBCDecrypter(c.block, c.key[:aes.BlockSize]).CryptBlocks(plain, raw)
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > blockSize || pad > len(plain) {
		return nil, "", ErrBadPadding
	}
	plain = plain[:len(plain)-pad]
	if len(plain) < 20 {
		return nil, "", ErrBadLength
	}
	n := binary.BigEndian.Uint32(plain[16:20])
	if uint64(n) > uint64(len(plain)-20) { // #nosec G115 -- len(plain) >= 20, checked above
		return nil, "", ErrBadLength
	}
	msg = plain[20 : 20+n]
	appID = string(plain[20+n:])
	if c.appID != "" && subtle.ConstantTimeCompare([]byte(appID), []byte(c.appID)) != 1 {
		return nil, appID, ErrWrongAppID
	}
	return msg, appID, nil
}
