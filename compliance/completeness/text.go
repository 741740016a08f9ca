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
	fmt.Fprintf(w, "Completeness report for %s (UTC), made %s; deliveries waiting over %s are gaps\n",
		r.Day, r.MadeAt.UTC().Format(time.RFC3339), r.OverdueAfter)
	if r.Final {
		fmt.Fprintf(w, "FINAL: made after the day ended (midnight UTC + %s).\n\n", Grace)
	} else {
		fmt.Fprintf(w, "PROVISIONAL: made before the day ended (midnight UTC + %s); the day's counts may still grow, and this report is never archived.\n\n", Grace)
	}
	fmt.Fprintln(tw, "channel\tstreams\treceived\tarchived\tdelivered\tfailed\tunknown\tretries\twaiting\toverdue\tlate\trefused after receipt\trefused by policy\t")
	line := func(channel, streams string, c Counts) {
		if streams == "" {
			streams = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", channel, streams,
			c.Received, c.Archived, c.Delivered, c.Failed, c.Unknown, c.Retries, c.Waiting, c.Overdue, c.Late, c.Refused, c.RefusedByPolicy)
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
	for _, row := range r.Channels {
		if row.RefusedByPolicy > 0 {
			fmt.Fprintf(w, "%d %s receipts refused by policy, archived as refused calls (message.refused in the admin stream); not gaps.\n", row.RefusedByPolicy, row.Channel)
		}
	}
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
		case GapLate:
			fmt.Fprintf(w, "  - delivery %d (%s, chat %d, message %s) created %s, %s only %s later, at %s\n", g.OutboxID, g.Channel, g.ChatID,
				g.MessageID, g.Since.UTC().Format(time.RFC3339), g.State, time.Duration(g.AgeSeconds)*time.Second, g.OutcomeAt.UTC().Format(time.RFC3339))
		case GapRefused:
			fmt.Fprintf(w, "  - %d %s receipts refused after they arrived, not archived: %s\n", g.Count, g.Channel, g.Reason)
		case GapChain:
			fmt.Fprintf(w, "  - stream %s does not verify: %s\n", g.Stream, g.Reason)
		default:
			fmt.Fprintf(w, "  - %s %s %s\n", g.Kind, g.Stream, g.Reason)
		}
	}
	if r.GapsOmitted > 0 {
		fmt.Fprintf(w, "  … and %d more overdue or late deliveries not listed\n", r.GapsOmitted)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "Note: %s\n", n)
	}
	return nil
}
