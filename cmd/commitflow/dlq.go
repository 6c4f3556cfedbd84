package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/dlq"
)

// cmdDLQ lists or replays the dead letters of CF_DLQ:
// commitflow dlq list|replay [flags].
func cmdDLQ(ctx context.Context, args []string, stdout io.Writer) error {
	const usage = "usage: commitflow dlq list|replay [flags]\n\n" +
		"  list    print the dead letters (oldest first) with their reasons, or --by-reason counts\n" +
		"  replay  publish the selected dead letters back to CF_EVENTS on their original subjects\n" +
		"          and remove them from CF_DLQ (what is still invalid is dead-lettered again);\n" +
		"          \"dlq list\" with the same filters shows what it would replay\n\n" +
		"Run \"commitflow dlq list -h\" for the flags.\n"
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return errors.New("dlq: list or replay?")
		}
		if strings.HasPrefix(args[0], "-") {
			return flag.ErrHelp
		}
		return fmt.Errorf("dlq: unknown subcommand %q (want list or replay)", args[0])
	}
	cmd := args[0]
	s := newSetup("dlq "+cmd, stdout, "info").withRun(false)
	fs := s.fs
	var f dlq.Filter
	fs.StringVar(&f.Reason, "reason", "", "only the dead letters whose reason contains this text")
	fs.StringVar(&f.Subject, "subject", "", "only the dead letters whose original subject matches this NATS subject filter, e.g. cf.events.acme.> for tenant acme")
	limit := fs.Int("limit", 100, "list: at most this many dead letters (0: all)")
	byReason := fs.Bool("by-reason", false, "list: count the dead letters by reason instead of listing them")
	format := fs.String("format", "table", "list: output format, table or json")
	if err := s.parse(ctx, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("dlq %s: unexpected argument %q", cmd, fs.Arg(0))
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("dlq %s: --format: want table or json, got %q", cmd, *format)
	}
	if *limit < 0 {
		return fmt.Errorf("dlq %s: --limit %d: want 0 or more", cmd, *limit)
	}
	if f.Subject != "" && !strings.HasPrefix(f.Subject, bus.EventsPrefix) {
		return fmt.Errorf("dlq %s: --subject %q: want a filter on the original subjects, %s<tenant>.<source>.<type>.<partition>", cmd, f.Subject, bus.EventsPrefix)
	}

	defer s.close()
	_, js, err := s.connectRun(ctx)
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}

	if cmd == "replay" {
		start, last, done := time.Now(), time.Now(), 0
		n, err := dlq.Replay(ctx, js, f, func(dlq.Letter) {
			if done++; time.Since(last) >= time.Second {
				last = time.Now()
				fmt.Fprintf(stdout, "[%6.1fs] replayed %d dead letters\n", time.Since(start).Seconds(), done)
			}
		})
		fmt.Fprintf(stdout, "replayed %d dead letters to %s in %s\n", n, bus.EventsStream, time.Since(start).Round(time.Millisecond))
		return err
	}
	if *byReason {
		counts := map[string]int{}
		if err := dlq.Scan(ctx, js, f, 0, func(l dlq.Letter) error { counts[l.Reason]++; return nil }); err != nil {
			return err
		}
		return printReasons(stdout, counts, *format)
	}
	var letters []dlq.Letter
	if err := dlq.Scan(ctx, js, f, *limit, func(l dlq.Letter) error { letters = append(letters, l); return nil }); err != nil {
		return err
	}
	return printLetters(stdout, letters, *format)
}

// printLetters writes dead letters as a table (the body cut to 80 bytes)
// or as JSON lines with the whole body.
func printLetters(w io.Writer, letters []dlq.Letter, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		for _, l := range letters {
			if err := enc.Encode(struct {
				Seq       uint64          `json:"dlq_seq"`
				At        time.Time       `json:"dead_lettered_at"`
				Subject   string          `json:"subject"`
				EventsSeq uint64          `json:"events_seq"`
				Reason    string          `json:"reason"`
				Body      json.RawMessage `json:"body,omitempty"`
				RawBody   string          `json:"raw_body,omitempty"`
			}{l.Seq, l.At.UTC(), l.Subject, l.EventsSeq, l.Reason, validJSON(l.Data), rawIfInvalid(l.Data)}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DLQ SEQ\tDEAD-LETTERED AT\tSUBJECT\tREASON\tBODY")
	for _, l := range letters {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", l.Seq, l.At.UTC().Format(time.DateTime), l.Subject, l.Reason, cut(l.Data, 80))
	}
	return tw.Flush()
}

// printReasons writes dead-letter counts by reason, most frequent first.
func printReasons(w io.Writer, counts map[string]int, format string) error {
	reasons := slices.SortedFunc(maps.Keys(counts), func(a, b string) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b))
	})
	if format == "json" {
		type row struct {
			Reason string `json:"reason"`
			Count  int    `json:"count"`
		}
		rows := make([]row, len(reasons))
		for i, r := range reasons {
			rows[i] = row{r, counts[r]}
		}
		return json.NewEncoder(w).Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COUNT\tREASON")
	for _, r := range reasons {
		fmt.Fprintf(tw, "%d\t%s\n", counts[r], r)
	}
	return tw.Flush()
}

// cut returns b as one line of at most n bytes.
func cut(b []byte, n int) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "\uFFFD")), " ")
	for i := range s {
		if i >= n {
			return s[:i] + "…"
		}
	}
	return s
}

func validJSON(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	return nil
}

func rawIfInvalid(b []byte) string {
	if json.Valid(b) {
		return ""
	}
	return string(b)
}
