package completeness

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteText writes the report for people: the counts per channel and stream kind, then each gap.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "Completeness report for %s (UTC), made %s; deliveries waiting over %s are gaps\n\n",
		r.Day, r.MadeAt.UTC().Format(time.RFC3339), r.OverdueAfter)
	fmt.Fprintln(tw, "channel\tstreams\treceived\tarchived\tdelivered\tfailed\tunknown\tretries\twaiting\toverdue\trefused after receipt\t")
	line := func(channel, streams string, c Counts) {
		if streams == "" {
			streams = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", channel, streams,
			c.Received, c.Archived, c.Delivered, c.Failed, c.Unknown, c.Retries, c.Waiting, c.Overdue, c.Refused)
	}
	for _, row := range r.Rows {
		line(row.Channel, row.Streams, row.Counts)
	}
	for _, row := range r.Channels {
		line(row.Channel, "all", row.Counts)
	}
	line("all", "all", r.Total)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d streams with records that day had their chains checked.\n", r.StreamsChecked)
	if len(r.Gaps) == 0 {
		fmt.Fprintln(w, "No gaps.")
	} else {
		fmt.Fprintf(w, "%d gaps:\n", int64(len(r.Gaps))+r.GapsOmitted)
	}
	for _, g := range r.Gaps {
		switch g.Kind {
		case GapOverdue:
			fmt.Fprintf(w, "  - delivery %d (%s, chat %d, message %s) %s for %s, since %s, %d attempts\n", g.OutboxID, g.Channel, g.ChatID,
				g.MessageID, g.State, time.Duration(g.AgeSeconds)*time.Second, g.Since.UTC().Format(time.RFC3339), g.Attempts)
		case GapRefused:
			fmt.Fprintf(w, "  - %d %s receipts refused after they arrived: %s\n", g.Count, g.Channel, g.Reason)
		case GapChain:
			fmt.Fprintf(w, "  - stream %s does not verify: %s\n", g.Stream, g.Reason)
		default:
			fmt.Fprintf(w, "  - %s %s %s\n", g.Kind, g.Stream, g.Reason)
		}
	}
	if r.GapsOmitted > 0 {
		fmt.Fprintf(w, "  … and %d more overdue deliveries not listed\n", r.GapsOmitted)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "Note: %s\n", n)
	}
	return nil
}
