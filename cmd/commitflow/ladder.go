package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/commitflow/commitflow/internal/ladder"
)

const ladderUsage = `usage:
  commitflow ladder check FILE   validate a ladder file and print a summary
  commitflow ladder show [FILE]  print the effective ladder (default: the shipped one) as JSON`

// cmdLadder validates and shows ladder configuration files.
func cmdLadder(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("ladder: missing subcommand\n%s", ladderUsage)
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, ladderUsage)
		return nil
	case "check":
		if len(args) != 2 {
			return fmt.Errorf("ladder check: want exactly one FILE\n%s", ladderUsage)
		}
		l, err := ladder.Load(args[1])
		if err != nil {
			return err
		}
		printLadderSummary(stdout, args[1], l)
		return nil
	case "show":
		if len(args) > 2 {
			return fmt.Errorf("ladder show: want at most one FILE\n%s", ladderUsage)
		}
		l := ladder.Default()
		if len(args) == 2 {
			var err error
			if l, err = ladder.Load(args[1]); err != nil {
				return err
			}
		}
		if err := writeJSON(stdout, l); err != nil {
			return fmt.Errorf("ladder show: %w", err)
		}
		return nil
	}
	return errors.New("ladder: unknown subcommand " + fmt.Sprintf("%q", args[0]) + "\n" + ladderUsage)
}

// printLadderSummary prints the steps and how many rules point at each.
func printLadderSummary(w io.Writer, name string, l *ladder.Ladder) {
	stages := map[string]int{}
	for _, p := range l.Pipelines {
		for _, step := range p.Stages {
			stages[step]++
		}
	}
	acts, items := map[string]int{}, map[string]int{}
	for _, r := range l.Activities {
		acts[r.Step]++
	}
	for _, r := range l.ActionItems {
		items[r.Step]++
	}
	fmt.Fprintf(w, "%s: ok, version %s, %d steps\n", name, l.Version, l.Len())
	fmt.Fprintf(w, "  %-3s %-20s %6s %7s %9s %6s\n", "#", "step", "stall", "stages", "activity", "items")
	for i, s := range l.Steps {
		stall := "never"
		if s.StallAfterDays > 0 {
			stall = fmt.Sprintf("%gd", s.StallAfterDays)
		}
		fmt.Fprintf(w, "  %-3d %-20s %6s %7d %9d %6d\n", i+1, s.Key, stall, stages[s.Key], acts[s.Key], items[s.Key])
	}
	pipes := make([]string, 0, len(l.Pipelines))
	for _, p := range l.Pipelines {
		pipes = append(pipes, fmt.Sprintf("%s (%d stages)", p.Pipeline, len(p.Stages)))
	}
	sort.Strings(pipes)
	fmt.Fprintf(w, "  pipelines: %s\n", strings.Join(pipes, ", "))
	if l.Consensus.Step != "" {
		fmt.Fprintf(w, "  consensus: %s after %d buyer stakeholders\n", l.Consensus.Step, l.Consensus.Stakeholders)
	}
	if l.SingleThreadedFrom != "" {
		fmt.Fprintf(w, "  single-threaded from: %s\n", l.SingleThreadedFrom)
	}
	fmt.Fprintf(w, "  overdue grace: %gd, meeting follow-up window: %gh\n", l.OverdueGraceDays, l.FollowupHours)
}

// laddersUsage describes the --ladders flag of run and replay.
const laddersUsage = "directory of per-tenant ladders: <tenant>.yaml is that tenant's ladder, default.yaml (unless --ladder is given) every other tenant's; run replays a tenant whose ladder changed when it starts"

// describeLadders names the default ladder's version and each tenant's own.
func describeLadders(ls *ladder.Set) string {
	var b strings.Builder
	b.WriteString("default ladder " + ls.Default().Version)
	for i, t := range ls.Tenants() {
		if i == 0 {
			b.WriteString("; own ladders:")
		}
		fmt.Fprintf(&b, " %s %s", t, ls.For(t).Version)
	}
	return b.String()
}

// logLadders logs the ladders in force.
func logLadders(log *slog.Logger, ls *ladder.Set) {
	tenants := map[string]string{}
	for _, t := range ls.Tenants() {
		tenants[t] = ls.For(t).Version
	}
	log.Info("ladders", "default", ls.Default().Version, "tenants", tenants)
}
