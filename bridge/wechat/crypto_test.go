package wechat

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// The vectors come from WeChat's official samples and from SDK test suites, as collected (and
// recomputed) in ../shared/reference/wechat-api-facts.md §2.3–2.4.

func TestPlainSignatureVectors(t *testing.T) {
	for _, v := range []struct{ token, timestamp, nonce, want string }{
		{"AAAAA", "1714036504", "1514711492", "f464b24fc39322e44b38aa78f5edd27bd1441696"}, // doc GET (echostr 4375120948345356249)
		{"AAAAA", "1714037059", "486452656", "899cf89e464efb63f54ddac96b0a0a235f53aa78"},  // doc plaintext POST
		{"AAAAA", "1715943329", "1590219412", "cc0c594499c1634947d5b502f158ee518947db27"}, // doc third-party POST
		{"test", "1410685589", "test", "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"},        // wechatpy
		{"a", "b", "c", "a9993e364706816aba3e25717850c26c9cd0d89d"},                       // silenceper: sha1("abc")
	} {
		if got := Signature(v.token, v.timestamp, v.nonce); got != v.want {
			t.Errorf("Signature(%s, %s, %s) = %s; want %s", v.token, v.timestamp, v.nonce, got, v.want)
		}
		if !VerifySignature(strings.ToUpper(v.want), v.token, v.timestamp, v.nonce) {
			t.Errorf("VerifySignature rejects the upper-case form of %s", v.want)
		}
		if VerifySignature(v.want, v.token, v.timestamp, v.nonce+"1") {
			t.Errorf("VerifySignature accepts %s for another nonce", v.want)
		}
	}
}

// fixedRandom replays a vector's 16 "random" bytes.
type fixedRandom string

func (f fixedRandom) Read(p []byte) (int, error) { return copy(p, f), nil }

// decryptVector is a ciphertext with its signature inputs and known plaintext.
type decryptVector struct {
	name, token, key, appID, timestamp, nonce, msgSignature, encrypt, want string
	random                                                                 string // when known, re-encrypting must give encrypt byte for byte
	contains                                                               bool   // want is only part of the plaintext (the rest is unpublished)
}

var decryptVectors = []decryptVector{
	{
		name: "C official Python sample (compatible-mode body)", token: "spamtest", key: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", appID: "wx2c2769f8efd9abc2",
		timestamp: "1409735669", nonce: "1320562132", msgSignature: "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
		encrypt: "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=",
		want:    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n<CreateTime>1409735668</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[abcdteT]]></Content>\n<MsgId>6054768590064713728</MsgId>\n</xml>",
		random:  "89465c840c5f116f",
	},
	{
		name: "D official C++ sample", token: "spamtest", key: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", appID: "wx2c2769f8efd9abc2",
		timestamp: "1410349438", nonce: "298025754", msgSignature: "003fee52ecc56afb46c00b5c7721be87860ce785",
		encrypt: "mfBCs65c67CeJw22u4VT2TD73q5H06+ocrAIxswCaeZ/d/Lw0msSZFHY0teqgSYiI1zR2gD2DKrB3TIrmX/liNSDrGqS8jSI/WPeKB5VPr7Ezr7gomZAyGCwJSgT1TRFWPfONGJMxuj2nk4faTuspAuVIFQ6SHwZuJBZC7mcJp7Cgr9cUhATQWDbOPaE7ukZBTV2YqyzH+UI2AK+J1S47cE79k1RX8t0hcTz/O0hlK8DGXKnvYv88qKQcI7z4iaajqHfRVZKBNyOODabs+It+ZfM3dWTeFcPgDbGtIEnpt/EDtuuA/zMvtkaKdHdswPnVZQ+xdwbYr3ldGvfT8HlEYEgkgKaThxTFobVlwzu2ZkXCjicbP3xdr15Iq48ObgzPpqYuZ3IEoyggZDKClquk0u0orMck4GTF/XyE8yGzc4=",
		want:    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n<CreateTime>1410349438</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[abcdteT]]></Content>\n<MsgId>6057404712141979648</MsgId>\n</xml>",
	},
	{
		name: "E official message-push example (all-zero key)", token: "AAAAA", key: strings.Repeat("A", 43), appID: "wx134c8103faa5a59e",
		timestamp: "1715943329", nonce: "1590219412", msgSignature: "6c12a4205838198b8fa631b3220723bb07f1015c",
		encrypt: "D7yzvUNAL930rd28wf21s4hvXhz0L6Uit/p2Di6C5DHyYGpEgdBRnKjBec34JwoQXicwaZC7fOVihW80F4VtsdvE//1vr7oAbqjDv8KenVp+ajKYpJnyQ4zMRhIC+a31fCVOMC03FfzV/QuC94kBP55a+Za3sJgvAn+ZbsNqZI5DkyuzkhQN8OBqCzFhizGmy0xpM0MEA4agpvE+RuNO1rhHTtuJB5yltw1FiYzecSXJ+y/D2r81VkRn2eYjh2ltsoyfbDR7Is6ookXIFxTfyeNyeHxMeT4KN5WpCDmSbTcUYrbBUlkGLJ9n/rU8YOywma6G7aTb7KZKOqCxgfoUlYEZPk4FUL/TK7ShriFDMVCLyjQJ15Ob++agDWtcxhfUfe6HIoIpRW8mKNBQiY/Jd1svvuskA1wLef1RTtzKfMpagSCX/laZINmdnX4zrF6kIaR9P4xQrWXbsTFHTYe0Mg==",
		want:    "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName>\n<FromUserName><![CDATA[o9AgO5Kd5ggOC-bXrbNODIiE3bGY]]></FromUserName>\n<CreateTime>1715943329</CreateTime>\n<MsgType><![CDATA[event]]></MsgType>\n<Event><![CDATA[debug_demo]]></Event>\n<debug_str><![CDATA[hello world]]></debug_str>\n</xml>",
		random:  "1205899eaf019bbd",
	},
	{
		name: "F official WeCom sample", token: "QDG6eK", key: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", appID: "wx5823bf96d3bd56c7",
		timestamp: "1409659813", nonce: "1372623149", msgSignature: "477715d11cdb4164915debcba66cb864d751f3e6",
		encrypt: "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==",
		want:    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>",
	},
	{
		name: "B WeCom URL verification (encrypted echostr)", token: "QDG6eK", key: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", appID: "wx5823bf96d3bd56c7",
		timestamp: "1409659589", nonce: "263014780", msgSignature: "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
		encrypt: "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
		want:    "1616140317555161061", random: "c41b64491c2468d0",
	},
	{
		name: "wechatpy WeCom echo", token: "123456", key: "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", appID: "wx49f0ab532d5d035a",
		timestamp: "1411443780", nonce: "437374425", msgSignature: "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
		encrypt: "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==",
		want:    "5927782489442352469",
	},
	{
		name: "wechatpy WeCom message", token: "123456", key: "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", appID: "wx49f0ab532d5d035a",
		timestamp: "1411525903", nonce: "461056294", msgSignature: "74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
		encrypt: "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=",
		want:    "<Content><![CDATA[test]]></Content>", contains: true,
	},
	{
		name: "PowerWeChat WeCom message", token: "pcoLldqMu2WQQtYBeDX5HiXPsBFlTnDM", key: "CyjBvGm4tJNmcThkeL5Wajzom4jKlBygKtpTkYeqsnE", appID: "wwedab3d5fc43636d8",
		timestamp: "1623301925", nonce: "1624217036", msgSignature: "d728d2bea7e28585ebd14eacbd330d84073fe7f1",
		encrypt: "ZBY4h9SD1Y/v+ighMGU4yHSVWyMuf2UdQQfFuB8S/SY5il9MynR1rtKIJDG871vOqaCs0FVje6bX0VyhvL02PG7FXjRR+rAyiwVv7T7nBGgamkPeOv4n/jXgFQnY6NEt3Zym09t4aI+21pDcE6uN6JzcC+hxw5sBfVyza3NHyuLiyhvalsFbasA4HNcnK+4/3eZLMo+e6yvHUsY4WhmZWW5u5mHcDZm1jtI2fUtzod6Sx7PrCOhm+zUO1I98OD0EmICxHHMjMkGmSFuGhG8vXRKaRavzvV/fkscZK1HjW+XJOV0c9wYDZT+/LTjDS/yx5KkM5lIksiw57DsCro9gvmE1WdvB3bw3m+5ie2x1ZRSuh6ik1rbMTiXgJXt0MnbV8VsyPe1zhkbug1cwdhT9zcOTieb0oyiIl3wSAEkNNBNBaWB+78V1hM/ngMoZgKaaasJUCGtPH/rN+YnxGicDOg==",
		want:    "<xml><ToUserName><![CDATA[wwedab3d5fc43636d8]]></ToUserName><FromUserName><![CDATA[WangChaoYi]]></FromUserName><CreateTime>1623301925</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[密文测试]]></Content><MsgId>6972028683187026694</MsgId><AgentID>1000005</AgentID></xml>",
	},
	{
		name: "PowerWeChat WeCom URL verification", token: "pcoLldqMu2WQQtYBeDX5HiXPsBFlTnDM", key: "CyjBvGm4tJNmcThkeL5Wajzom4jKlBygKtpTkYeqsnE", appID: "wwedab3d5fc43636d8",
		timestamp: "1623292419", nonce: "1623324060", msgSignature: "1495c4dfd4958d4e5faf618978ae66943a042f87",
		encrypt: "o1XtmVltGmUAqoWee54yd4Q5ZBgrw4/9lFo5qdZoVPd1DybzarjuYCfFlR2AFbAcWHwFgmbrVBD+f9910QIF6g==",
		want:    "6058207018001857403",
	},
}

func TestDecryptVectors(t *testing.T) {
	for _, v := range decryptVectors {
		t.Run(v.name, func(t *testing.T) {
			if !VerifySignature(v.msgSignature, v.token, v.timestamp, v.nonce, v.encrypt) {
				t.Errorf("msg_signature %s does not verify", v.msgSignature)
			}
			c, err := NewCipher(v.key, v.appID)
			if err != nil {
				t.Fatal(err)
			}
			msg, appID, err := c.Decrypt(v.encrypt)
			if err != nil {
				t.Fatal(err)
			}
			if appID != v.appID {
				t.Errorf("AppID inside = %q; want %q", appID, v.appID)
			}
			if got := string(msg); got != v.want && !(v.contains && strings.Contains(got, v.want)) {
				t.Errorf("plaintext = %q; want %q", got, v.want)
			}
			if v.random != "" {
				c.Random = fixedRandom(v.random)
				again, err := c.Encrypt(msg)
				if err != nil {
					t.Fatal(err)
				}
				if again != v.encrypt {
					t.Errorf("re-encrypting with the vector's random bytes gives\n%s\nwant\n%s", again, v.encrypt)
				}
			}
		})
	}
}

func TestEncryptVectors(t *testing.T) {
	// Vector A: the official Java sample, encrypting with fixed random "aaaabbbbccccdddd".
	c, err := NewCipher("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wxb11529c136998cb6")
	if err != nil {
		t.Fatal(err)
	}
	c.Random = fixedRandom("aaaabbbbccccdddd")
	for _, v := range []struct{ msg, want string }{
		{"我是中文abcd123", "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="},
		{"<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>",
			"jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb"},
	} {
		got, err := c.Encrypt([]byte(v.msg))
		if err != nil {
			t.Fatal(err)
		}
		if got != v.want {
			t.Errorf("Encrypt(%.30q…) =\n%s\nwant\n%s", v.msg, got, v.want)
		}
	}

	// Vector E's reply: the doc's reply, re-encrypted byte for byte, and its MsgSignature.
	e, err := NewCipher(strings.Repeat("A", 43), "wx134c8103faa5a59e")
	if err != nil {
		t.Fatal(err)
	}
	e.Random = fixedRandom("999951349e8ee746")
	reply, err := e.Encrypt([]byte("<xml><demo_resp>[CDATA[good luck]]</demo_resp></xml>"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "hE8R6mGXHkJJjU72KxzKUd1GEkKJaEZq7vRL8XgK3o+00k8JGq6+pZJUIlTSyhsX+bxIBQ72g3GyvDdIZcr6+3HAZbSvPT9t/o11MI7d6WELwqrGd7jMnV0zv3Zc9Nq7"; reply != want {
		t.Errorf("vector E reply =\n%s\nwant\n%s", reply, want)
	}
	if got := Signature("AAAAA", "1713424427", "415670741", reply); got != "03e0812039325c2712ef5f0f980fd14c70d6e307" {
		t.Errorf("vector E reply MsgSignature = %s", got)
	}

	// wechatpy's WeCom reply with random "1234567890123456".
	w, err := NewCipher("kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a")
	if err != nil {
		t.Fatal(err)
	}
	w.Random = fixedRandom("1234567890123456")
	enc, err := w.Encrypt([]byte("<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"; enc != want {
		t.Errorf("wechatpy reply =\n%s\nwant\n%s", enc, want)
	}
	if got := Signature("123456", "1411525903", "461056294", enc); got != "407518b7649e86ef23978113f92d27afa9296533" {
		t.Errorf("wechatpy reply MsgSignature = %s", got)
	}
}

func TestChanxuehongVector(t *testing.T) {
	// chanxuehong/wechat's last correct test (5dc47ea); its HEAD expects "tests text message" by mistake.
	c, err := NewCipher("AdiqDDDvUNCeE1ZW5XJmjf9fqNBJpGBs4vL4cHKmHBS", "wx45f133bf6fce646e")
	if err != nil {
		t.Fatal(err)
	}
	const ciphertext = "gsKjKVChgrDDifoOdfrL/MWujrKxnSR1jBopv0zEdHFQXcx5I0bf4UxIRjektLHEziRxpU5zTw0s+gYF3WOFjkIn30gzQl9XNKr2A+DCHVG05I2EcbOnnAR5EYgjGLAipra5nOfCPPIRFQTZ7SdanniXX73YOiCAKJlNH21+PApcYu4rPXxJ4eTXbBLwmfnSl7iojDX1LQIcC3FYmaapMQq/u+sJGsxshp4dLXJ6A5Ji3cSYAzXRVIxbNlHN1MWfdcZ0O5+ZtOU6dZiD8hJ4kkxh05EfOedWFjUy7ZhmXgrpZ4WpYPsrythXHE2Bg1Ohz8uf5h5X31yuU/3FPoa8rD21pfZnAjBT1QCkn6MxtL5lR+yoQReLwElVbtB6yJFPIZ+n9Qh/yKfIasxkzgIEo0pwPEbS17WCTyvRItJtU6tlo3rawJX+fsV63tKIfmLZjyZPDlV9/ka/nA/DT0KODw=="
	msg, _, err := c.Decrypt(ciphertext)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg), "<Content><![CDATA[test text message]]></Content>") {
		t.Errorf("plaintext = %q; want a text message with Content \"test text message\"", msg)
	}
	c.Random = fixedRandom("cc9632a98304f81c")
	again, err := c.Encrypt(msg)
	if err != nil || again != ciphertext {
		t.Errorf("re-encrypting with random cc9632a98304f81c = %s, %v; want the vector", again, err)
	}
}

func TestCryptoRefusesBadInput(t *testing.T) {
	// Vector A's negatives: a key of the wrong length, a forged signature.
	for _, key := range []string{"abcde", "", strings.Repeat("A", 44), "abcdefghijklmnopqrstuvwxyz0123456789ABCDE!G"} {
		if _, err := NewCipher(key, "wx"); !errors.Is(err, ErrBadKey) {
			t.Errorf("NewCipher(%q) error = %v; want ErrBadKey", key, err)
		}
	}
	if VerifySignature("12345", "pamtest", "1409304348", "xxxxxx", "whatever") {
		t.Error("signature 12345 verified")
	}
	v := decryptVectors[0]
	tampered := v.encrypt[:10] + "A" + v.encrypt[11:]
	if VerifySignature(v.msgSignature, v.token, v.timestamp, v.nonce, tampered) {
		t.Error("msg_signature verified for a tampered ciphertext")
	}

	// Wrong AppID: vector C is for wx2c2769f8efd9abc2.
	c, _ := NewCipher(v.key, "wxb11529c136998cb6")
	if _, appID, err := c.Decrypt(v.encrypt); !errors.Is(err, ErrWrongAppID) || appID != "wx2c2769f8efd9abc2" {
		t.Errorf("Decrypt for another AppID = %q, %v; want ErrWrongAppID", appID, err)
	}

	// Hand-built frames: bad padding and lengths past the buffer.
	own, _ := NewCipher(v.key, "wx2c2769f8efd9abc2")
	frame := func(length uint32, body string) string {
		plain := []byte("0123456789abcdef")
		plain = append(plain, byte(length>>24), byte(length>>16), byte(length>>8), byte(length))
		plain = append(plain, body...)
		pad := 32 - len(plain)%32
		for range pad {
			plain = append(plain, byte(pad))
		}
		return rawEncrypt(t, own, plain)
	}
	for _, tc := range []struct {
		name string
		ct   string
		want error
	}{
		{"pad 0", frameWithLastByte(t, own, 0), ErrBadPadding},
		{"pad 33", frameWithLastByte(t, own, 33), ErrBadPadding},
		{"pad 255", frameWithLastByte(t, own, 255), ErrBadPadding},
		{"msg_len past the buffer", frame(1611744036, "hello"+"wx2c2769f8efd9abc2"), ErrBadLength},
		{"msg_len one past the end", frame(24, "hello"+"wx2c2769f8efd9abc2"), ErrBadLength},
		{"not base64", "%%%not base64%%%", ErrBadCipher},
		{"not whole blocks", "AAAA", ErrBadCipher},
		{"empty", "", ErrBadCipher},
	} {
		if _, _, err := own.Decrypt(tc.ct); !errors.Is(err, tc.want) {
			t.Errorf("%s: error = %v; want %v", tc.name, err, tc.want)
		}
	}
	if msg, _, err := own.Decrypt(frame(5, "hello"+"wx2c2769f8efd9abc2")); err != nil || string(msg) != "hello" {
		t.Errorf("a well-formed hand-built frame = %q, %v", msg, err)
	}
}

// rawEncrypt encrypts plain (already framed and padded) with c's key, for building bad frames.
func rawEncrypt(t *testing.T, c *Cipher, plain []byte) string {
	t.Helper()
	out := make([]byte, len(plain))
	cipher.NewCBCEncrypter(c.block, c.key[:aes.BlockSize]).CryptBlocks(out, plain)
	return base64.StdEncoding.EncodeToString(out)
}

// frameWithLastByte builds a 64-byte frame whose final (padding) byte is last.
func frameWithLastByte(t *testing.T, c *Cipher, last byte) string {
	plain := make([]byte, 64)
	copy(plain, "0123456789abcdef")
	plain[63] = last
	return rawEncrypt(t, c, plain)
}
