package supervision

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The benchmark lexicon: 10,000 terms, half Chinese (two to four common characters, some written
// in Traditional) and half English (one to three words), in ten rules, all generated from a fixed
// seed. Half the Chinese terms and all English ones are phrases, as a firm's lexicon mostly is.

const commonHan = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保发股票基金收益投资内幕消息"

var englishWords = strings.Fields(`market stock bond fund yield return guaranteed profit insider tip
secret deal price target buy sell hold short long option future swap margin leverage risk safe
promise double triple quick easy rich fast money cash wire transfer account offshore private
exclusive confidential rumor merger acquisition earnings report quarter forecast upgrade
downgrade rating analyst broker client customer invest capital gain loss hedge arbitrage crypto
token coin wallet exchange listing delisting pump dump scheme bonus commission rebate kickback
gift dinner travel favor approval license regulator audit compliance record chat wechat teams
phone meeting call offline personal account friend family relative`)

// everydayWords fill messages between terms.
var everydayWords = strings.Fields(`the a an and or but if then so we you they it is are was were be
have has had do does did will would can could should may might must shall this that these those
here there when where what which who how why all any some many much more most few less least
good great fine nice thanks please hello hi morning afternoon evening tomorrow today yesterday
week month year time day note file document email send sent receive received attach attached
see look check review update meet lunch coffee office home team project plan schedule agenda`)

// traditional lists characters with a Traditional form: the Simplified one and the Traditional.
var traditional = func() map[rune]rune {
	back := map[rune]rune{}
	for trad, simp := range t2s {
		if _, ok := back[simp]; !ok || trad < back[simp] {
			back[simp] = trad
		}
	}
	return back
}()

func benchRules(n int) []Rule {
	rng := rand.New(rand.NewPCG(2026, 15))
	han := []rune(commonHan)
	seen := map[string]bool{}
	var terms []string
	for len(terms) < n/2 {
		var b strings.Builder
		for range 3 + rng.IntN(3) {
			r := han[rng.IntN(len(han))]
			if t, ok := traditional[r]; ok && rng.IntN(3) == 0 {
				r = t // written in Traditional
			}
			b.WriteRune(r)
		}
		if t := b.String(); !seen[Fold(t)] {
			seen[Fold(t)] = true
			terms = append(terms, t)
		}
	}
	for len(terms) < n {
		words := make([]string, 2+rng.IntN(2))
		for i := range words {
			words[i] = englishWords[rng.IntN(len(englishWords))]
		}
		if t := strings.Join(words, " "); !seen[Fold(t)] {
			seen[Fold(t)] = true
			terms = append(terms, t)
		}
	}
	rng.Shuffle(len(terms), func(i, j int) { terms[i], terms[j] = terms[j], terms[i] })
	actions := []Action{ActionFlag, ActionRedact, ActionBlock}
	var rules []Rule
	for i := 0; i < len(terms); i += 1000 {
		r := rule(fmt.Sprintf("r%d", i/1000), actions[i/1000%3], terms[i:min(i+1000, len(terms))]...)
		r.Exceptions = []string{"no guarantee", "不保本"}
		rules = append(rules, r)
	}
	return rules
}

// benchMessages makes messages of exactly size bytes, Chinese and English mixed, with a few of the
// terms (some in Traditional or full width) among them.
func benchMessages(rules []Rule, count, size int) []string {
	rng := rand.New(rand.NewPCG(7, 7))
	han := []rune(commonHan)
	var out []string
	for range count {
		var b strings.Builder
		for b.Len() < size {
			switch n := rng.IntN(150); { // about three terms in a message
			case n == 0:
				r := rules[rng.IntN(len(rules))]
				b.WriteString(r.Terms[rng.IntN(len(r.Terms))].Text)
			case n <= 45:
				b.WriteString(" " + everydayWords[rng.IntN(len(everydayWords))] + " ")
			case n <= 55:
				b.WriteString("，")
			default:
				r := han[rng.IntN(len(han))]
				if t, ok := traditional[r]; ok && rng.IntN(4) == 0 {
					r = t
				}
				b.WriteRune(r)
			}
		}
		s := b.String()
		for len(s) > size { // cut to size on a character boundary, then pad
			_, n := utf8.DecodeLastRuneInString(s)
			s = s[:len(s)-n]
		}
		out = append(out, s+strings.Repeat(".", size-len(s)))
	}
	return out
}

func BenchmarkCompile10k(b *testing.B) {
	rules := benchRules(10_000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(rules, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheck2KiB(b *testing.B) {
	rules := benchRules(10_000)
	s, err := Compile(rules, nil)
	if err != nil {
		b.Fatal(err)
	}
	msgs := benchMessages(rules, 64, 2048)
	b.ReportAllocs()
	b.SetBytes(2048)
	i := 0
	for b.Loop() {
		s.Check(msgs[i%len(msgs)], ToCustomer, nil)
		i++
	}
}

// BenchmarkCheck2KiBLatency times 10,000 checks one by one and reports the median and the 99th
// percentile (testing.B's ns/op is a mean).
func BenchmarkCheck2KiBLatency(b *testing.B) {
	rules := benchRules(10_000)
	s, err := Compile(rules, nil)
	if err != nil {
		b.Fatal(err)
	}
	msgs := benchMessages(rules, 64, 2048)
	found := 0
	for _, m := range msgs {
		found += len(s.Check(m, ToCustomer, nil).Matches)
	}
	if found == 0 {
		b.Fatal("the messages match no term: the benchmark measures nothing")
	}
	const checks = 10_000
	times := make([]time.Duration, checks)
	for b.Loop() {
		for i := range times {
			start := time.Now()
			s.Check(msgs[i%len(msgs)], ToCustomer, nil)
			times[i] = time.Since(start)
		}
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[checks/2].Nanoseconds()), "p50-ns/check")
	b.ReportMetric(float64(times[checks*99/100].Nanoseconds()), "p99-ns/check")
	b.ReportMetric(float64(found)/float64(len(msgs)), "matches/msg")
}
