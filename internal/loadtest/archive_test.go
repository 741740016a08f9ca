package loadtest

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// The checks after a faulty load catch each broken promise on its own, and find nothing in a run
// that kept them all.
func TestCheckArchiveCatchesEachBrokenPromise(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	// A clean run on chat 0 with a cap of 3: the customer writes (#L1#), the employee answers
	// three times (#L2#–#L4#), all archived once and arrived; #L5#'s send is of unknown outcome
	// and its employee was told.
	clean := func() (*tracker, *ArchiveFacts) {
		res := &Result{}
		tr := &tracker{pending: map[int64]sent{}, written: map[int64]sent{}, told: map[int]int{0: 1}, res: res}
		facts := &ArchiveFacts{Archived: map[int64]int{}, MessageOf: map[int64]string{}, Unknown: map[string]bool{"m5": true},
			Refused: map[string]bool{}, Queued: map[string]bool{}, History: map[string][]string{},
			customerAt: map[int][]time.Time{0: {t0}}}
		for id := int64(1); id <= 5; id++ {
			tr.written[id] = sent{inbound: id == 1}
			facts.Archived[id] = 1
			facts.MessageOf[id] = "m" + strconv.FormatInt(id, 10)
		}
		for id := int64(2); id <= 4; id++ {
			res.toCustomer = append(res.toCustomer, arrival{chat: 0, id: id, at: t0.Add(time.Duration(id) * time.Second)})
		}
		tr.pending[5] = sent{}
		return tr, facts
	}
	for _, c := range []struct {
		name  string
		spoil func(tr *tracker, f *ArchiveFacts)
		want  string
	}{
		{"nothing broken", func(*tracker, *ArchiveFacts) {}, ""},
		{"archived twice", func(_ *tracker, f *ArchiveFacts) { f.Archived[3] = 2 }, "#L3# archived 2 times"},
		{"never archived", func(_ *tracker, f *ArchiveFacts) { delete(f.Archived, 2) }, "#L2# archived 0 times"},
		{"customer message lost", func(tr *tracker, _ *ArchiveFacts) { tr.pending[1] = sent{inbound: true} }, "customer message #L1# never reached the employee"},
		{"employee message lost", func(_ *tracker, f *ArchiveFacts) { delete(f.Unknown, "m5") }, "employee message #L5# never reached the customer"},
		{"employee not told", func(tr *tracker, _ *ArchiveFacts) { tr.told[0] = 0 }, "the employee was not told of 1 messages"},
		{"arrived twice", func(tr *tracker, _ *ArchiveFacts) { tr.res.Duplicates = 1 }, "1 messages arrived more than once"},
		{"over the cap", func(tr *tracker, _ *ArchiveFacts) {
			tr.res.toCustomer = append(tr.res.toCustomer, arrival{chat: 0, id: 5, at: t0.Add(5 * time.Second)})
		}, "more than 3 employee messages reached the customer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr, facts := clean()
			c.spoil(tr, facts)
			checkArchive(tr, facts, 3)
			problems := tr.res.Problems
			switch {
			case c.want == "" && len(problems) > 0:
				t.Errorf("problems %q; want none", problems)
			case c.want != "" && (len(problems) != 1 || !strings.Contains(problems[0], c.want)):
				t.Errorf("problems %q; want only %q", problems, c.want)
			}
		})
	}
}
