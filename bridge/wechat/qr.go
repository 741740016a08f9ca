package wechat

import (
	"bytes"
	"fmt"
	"image/png"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"
)

// QRPNG renders the content of a WeChat QR code (the url qrcode/create returns) as a PNG of about
// size×size pixels, locally: nothing goes to mp.weixin.qq.com's showqrcode.
func QRPNG(content string, size int) ([]byte, error) {
	if content == "" {
		return nil, fmt.Errorf("wechat: empty QR content")
	}
	code, err := qr.Encode(content, qr.M, qr.Auto)
	if err != nil {
		return nil, fmt.Errorf("wechat: encode QR: %w", err)
	}
	if size < code.Bounds().Dx() {
		size = code.Bounds().Dx()
	}
	code, err = barcode.Scale(code, size, size)
	if err != nil {
		return nil, fmt.Errorf("wechat: scale QR: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, code); err != nil {
		return nil, fmt.Errorf("wechat: encode PNG: %w", err)
	}
	return buf.Bytes(), nil
}
