package wechat

import (
	"strings"
	"testing"
)

// Fuzz targets for everything that reads bytes from the network. Run one with, for example,
//
//	go test -run '^$' -fuzz FuzzParsePush -fuzztime 30s ./bridge/wechat/
//
// The seed corpus (below and in testdata/fuzz) runs with every plain `go test`.

func FuzzParsePush(f *testing.F) {
	for _, v := range decryptVectors {
		f.Add([]byte(v.want))
	}
	f.Add([]byte(`{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714037059,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}`))
	f.Add([]byte(`{"ToUserName":"gh","FromUserName":"o","CreateTime":"1","MsgType":"text","Content":"x","MsgId":6054768590064713728}`))
	f.Add([]byte(`<xml><ToUserName><![CDATA[gh]]></ToUserName><Encrypt><![CDATA[abc]]></Encrypt></xml>`))
	f.Add([]byte(`<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]><xml>&b;</xml>`))
	f.Add([]byte(`<xml><Content>&amp;&lt;&#x4e2d;</Content></xml>`))
	f.Add([]byte("\ufeff<xml></xml>"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParsePush(body)
		if err != nil {
			if p != nil {
				t.Fatal("a parse error returned a push")
			}
			return
		}
		_ = p.Validate()
		_, _ = p.Scene()
		_ = p.message()
		_ = p.eventDetail()
		trimmed := strings.TrimLeft(string(body), " \t\r\n\ufeff")
		if strings.Contains(strings.ToUpper(trimmed), "<!DOCTYPE") && !strings.HasPrefix(trimmed, "{") {
			t.Fatal("a push with a DOCTYPE was accepted")
		}
	})
}

func FuzzDecrypt(f *testing.F) {
	for _, v := range decryptVectors {
		f.Add(v.key, v.encrypt)
	}
	f.Add("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "")
	f.Add("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "AAAAAAAAAAAAAAAAAAAAAA==")
	f.Fuzz(func(t *testing.T, key, encrypted string) {
		c, err := NewCipher(key, "")
		if err != nil {
			return
		}
		msg, appID, err := c.Decrypt(encrypted)
		if err != nil {
			return
		}
		// Whatever decrypts must encrypt back to something that decrypts to the same.
		c.appID = appID
		again, err := c.Encrypt(msg)
		if err != nil {
			t.Fatal(err)
		}
		msg2, appID2, err := c.Decrypt(again)
		if err != nil || string(msg2) != string(msg) || appID2 != appID {
			t.Fatalf("round trip changed the message: %q/%q → %q/%q (%v)", msg, appID, msg2, appID2, err)
		}
	})
}

func FuzzSignature(f *testing.F) {
	f.Add("AAAAA", "1714036504", "1514711492", "f464b24fc39322e44b38aa78f5edd27bd1441696")
	f.Fuzz(func(t *testing.T, token, ts, nonce, sig string) {
		if VerifySignature(sig, token, ts, nonce) != (strings.ToLower(sig) == Signature(token, ts, nonce)) {
			t.Fatal("VerifySignature disagrees with Signature")
		}
	})
}
