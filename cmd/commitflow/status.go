package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/compact"
	"github.com/commitflow/commitflow/internal/store"
)

// pipelineStatus is what commitflow status reports.
type pipelineStatus struct {
	NATS       string      `json:"nats"`
	Bus        *bus.Status `json:"bus,omitempty"`
	NATSError  string      `json:"nats_error,omitempty"`
	ClickHouse string      `json:"clickhouse,omitempty"`
	// Version is the ClickHouse server's major.minor.
	Version string `json:"clickhouse_version,omitempty"`
	// Migrated tells whether every migration is applied.
	Migrated bool `json:"migrated"`
	// Rows are the rows of each table's active parts, before merges
	// de-duplicate them.
	Rows map[string]uint64 `json:"rows,omitempty"`
	// SupersededStates are the opportunity_state rows a newer version of
	// the same opportunity replaces (run compacts them away).
	SupersededStates uint64 `json:"superseded_states"`
	ClickHouseError  string `json:"clickhouse_error,omitempty"`
}

// cmdStatus prints where the pipeline stands: the streams, how far the
// ingest and derive consumers are behind, the dead letters, and the
// ClickHouse tables. It changes nothing and starts nothing.
func cmdStatus(ctx context.Context, args []string, stdout io.Writer) error {
	s := newSetup("status", stdout, "").withRun(true)
	format := s.fs.String("format", "table", "output format: table or json")
	if err := s.parse(ctx, args); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("status: unexpected argument %q", s.fs.Arg(0))
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("status: --format: want table or json, got %q", *format)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	defer s.close()

	var st pipelineStatus
	if err := readBusStatus(ctx, &st, s); err != nil {
		st.NATSError = err.Error()
	}

	if d, err := s.clickHouseDSN(); err != nil {
		st.ClickHouseError = err.Error()
	} else {
		st.ClickHouse = d
		if err := readStoreStatus(ctx, &st); err != nil {
			st.ClickHouseError = err.Error()
		}
	}

	if *format == "json" {
		if err := writeJSON(stdout, st); err != nil {
			return err
		}
	} else {
		printStatus(stdout, st)
	}
	if st.NATSError != "" || st.ClickHouseError != "" {
		return errors.New("status: not everything could be read")
	}
	return nil
}

// readBusStatus fills in the NATS part of st from the server s finds.
func readBusStatus(ctx context.Context, st *pipelineStatus, s *setup) error {
	url, js, err := s.connectRun(ctx)
	st.NATS = url
	if err != nil {
		return err
	}
	b, err := bus.ReadStatus(ctx, js)
	if err != nil {
		return err
	}
	st.Bus = &b
	return nil
}

// readStoreStatus fills in the ClickHouse part of st.
func readStoreStatus(ctx context.Context, st *pipelineStatus) error {
	s, err := store.Open(ctx, st.ClickHouse, store.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	major, minor := s.ServerVersion()
	st.Version = fmt.Sprintf("%d.%d", major, minor)
	if st.Migrated, err = s.Migrated(ctx); err != nil {
		return err
	}
	if st.Rows, err = s.TableRows(ctx); err != nil {
		return err
	}
	rows, states, err := compact.Count(ctx, s.Conn())
	if err != nil {
		return err
	}
	st.SupersededStates = rows - states
	return nil
}

// printStatus writes st as aligned text.
func printStatus(w io.Writer, st pipelineStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NATS\t%s\n", st.NATS)
	switch {
	case st.NATSError != "":
		fmt.Fprintf(tw, "  error\t%s\n", st.NATSError)
	case len(st.Bus.Streams) == 0:
		fmt.Fprintln(tw, "  streams\tnone yet (commitflow run declares them)")
	default:
		for _, s := range st.Bus.Streams {
			age := "unlimited"
			if s.MaxAge > 0 {
				age = s.MaxAge.String()
			}
			fmt.Fprintf(tw, "  %s\t%d messages, %s, %d replica(s), kept %s\n", s.Name, s.Messages, bytesText(s.Bytes), s.Replicas, age)
		}
		if c := st.Bus.Ingest; c != nil {
			fmt.Fprintf(tw, "  ingest\t%d to deliver, %d delivered and not yet stored (%s)\n", c.Pending, c.AckPending, c.Name)
		}
		if c := st.Bus.Derive; c.Consumers > 0 {
			fmt.Fprintf(tw, "  derive\t%d to deliver, %d delivered and not yet derived (%d partitions)\n", c.Pending, c.AckPending, c.Consumers)
		}
	}
	fmt.Fprintf(tw, "ClickHouse\t%s\n", st.ClickHouse)
	if st.ClickHouseError != "" {
		fmt.Fprintf(tw, "  error\t%s\n", st.ClickHouseError)
	} else {
		migrated := "all applied"
		if !st.Migrated {
			migrated = "not all applied (commitflow migrate)"
		}
		fmt.Fprintf(tw, "  server\t%s\n", st.Version)
		fmt.Fprintf(tw, "  migrations\t%s\n", migrated)
		for _, t := range slices.Sorted(maps.Keys(st.Rows)) {
			if t == compact.Table {
				fmt.Fprintf(tw, "  %s\t%d rows, %d superseded (run compacts them)\n", t, st.Rows[t], st.SupersededStates)
				continue
			}
			fmt.Fprintf(tw, "  %s\t%d rows\n", t, st.Rows[t])
		}
	}
	tw.Flush()
}

// bytesText writes n bytes with a binary unit.
func bytesText(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
