package console

import "testing"

func TestLanguageFollowsAcceptLanguage(t *testing.T) {
	for header, want := range map[string]string{
		"":                           "en",
		"zh-CN,zh;q=0.9,en;q=0.8":    "zh-CN",
		"zh":                         "zh-CN",
		"zh-TW":                      "zh-CN",
		"en-GB,en;q=0.9":             "en",
		"en-US,en;q=0.9,zh-CN;q=0.8": "en",
		"fr-FR,zh-CN;q=0.7,en;q=0.5": "zh-CN",
		"de-DE,de;q=0.9":             "en",
		"zh-CN;q=0.2,en;q=0.9":       "en",
		"garbage;q=x, ZH-cn ;q=1":    "zh-CN",
	} {
		if got := Language(header); got != want {
			t.Errorf("Language(%q) = %q; want %q", header, got, want)
		}
	}
}
