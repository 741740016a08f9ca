package export_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
)

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func base64Decoder(r io.Reader) io.Reader { return base64.NewDecoder(base64.StdEncoding, r) }
