package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/verify"
)

// cmdVerify checks, for every message of CF_EVENTS in a range of stream
// sequences, that its event is in ClickHouse (events FINAL, by key) or that
// the message is dead-lettered in CF_DLQ, and prints the ranges of those
// that are neither. It fails when any message is missing. It changes
// nothing.
func cmdVerify(ctx context.Context, args []string, stdout io.Writer) error {
	s := newSetup("verify", stdout, "").withRun(true)
	fs := s.fs
	from := fs.Uint64("from", 0, "first CF_EVENTS stream sequence to check; 0: the stream's first")
	to := fs.Uint64("to", 0, "last CF_EVENTS stream sequence to check; 0: the ingest consumer's acknowledgement floor (what ingest says it has stored), or the stream's last without an ingest consumer")
	chunk := fs.Int("chunk", verify.DefaultChunk, "messages checked against ClickHouse at a time (bounds memory)")
	format := fs.String("format", "table", "output format: table or json")
	if err := s.parse(ctx, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("verify: unexpected argument %q", fs.Arg(0))
	case *format != "table" && *format != "json":
		return fmt.Errorf("verify: --format: want table or json, got %q", *format)
	case *chunk < 1:
		return fmt.Errorf("verify: --chunk %d: want at least 1", *chunk)
	case *to > 0 && *from > *to:
		return fmt.Errorf("verify: --from %d is after --to %d", *from, *to)
	}
	chDSN, err := s.clickHouseDSN()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer s.close()
	_, js, err := s.connectRun(ctx)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	st, err := store.Open(ctx, chDSN, store.Options{})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer st.Close()

	rep, err := verify.Run(ctx, js, st, verify.Options{From: *from, To: *to, Chunk: *chunk, SharedSamples: sharedIDSamples})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if *format == "json" {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printVerify(stdout, rep)
	}
	switch {
	case rep.Missing > 0:
		return fmt.Errorf("verify: %d messages of %s are neither stored nor dead-lettered", rep.Missing, bus.EventsStream)
	case rep.SharedIDs > 0:
		return fmt.Errorf("verify: %d event ids are stored under more than one opportunity", rep.SharedIDs)
	}
	return nil
}

// sharedIDSamples is how many shared event ids verify lists.
const sharedIDSamples = 20

// printVerify writes rep as text.
func printVerify(w io.Writer, rep verify.Report) {
	defer printShared(w, rep)
	if rep.To < rep.From || rep.Messages == 0 {
		fmt.Fprintf(w, "%s: nothing to check (stream last sequence %d, ingest acknowledged up to %d)\n", bus.EventsStream, rep.LastSeq, rep.AckFloor)
		return
	}
	fmt.Fprintf(w, "%s %d..%d: %d messages, %d stored, %d dead-lettered, %d missing\n",
		bus.EventsStream, rep.From, rep.To, rep.Messages, rep.Stored, rep.DeadLettered, rep.Missing)
	if rep.To < rep.LastSeq {
		fmt.Fprintf(w, "not checked: %d..%d (after --to; ingest acknowledged up to %d)\n", rep.To+1, rep.LastSeq, rep.AckFloor)
	}
	if rep.Missing == 0 {
		return
	}
	fmt.Fprintf(w, "missing (neither in ClickHouse events nor in %s), %d range(s):\n", bus.DLQStream, len(rep.MissingRanges))
	for _, r := range rep.MissingRanges {
		switch {
		case r.From == r.To:
			fmt.Fprintf(w, "  %d\t1 message\n", r.From)
		default:
			fmt.Fprintf(w, "  %d-%d\t%d messages\n", r.From, r.To, r.Messages)
		}
	}
}

// printShared prints the event ids stored under more than one opportunity.
func printShared(w io.Writer, rep verify.Report) {
	if rep.SharedIDs == 0 {
		return
	}
	fmt.Fprintf(w, "%d event id(s) stored under more than one opportunity (both copies stored and derived; fix the producer, then remove the wrong copy):\n", rep.SharedIDs)
	for _, id := range rep.SharedIDSamples {
		fmt.Fprintf(w, "  %s:%s:%s\t%s\n", id.Tenant, id.Source, id.EventID, strings.Join(id.Opportunities, ", "))
	}
	if n := uint64(len(rep.SharedIDSamples)); n < rep.SharedIDs {
		fmt.Fprintf(w, "  … and %d more\n", rep.SharedIDs-n)
	}
}
