// Command commitflow ingests CRM and call-record events from NATS JetStream,
// derives the buyer commitments they show, stores both in ClickHouse and
// serves stage-conversion metrics.
//
// Usage:
//
//	commitflow <command> [flags]
//
// Run "commitflow help" for the list of commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand: run gets the context (cancelled on SIGINT or
// SIGTERM), the arguments after the command name, and stdout.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"run":     {"run the pipeline: NATS, ClickHouse, ingest and derive workers, API and dashboard", cmdRun},
		"migrate": {"apply the ClickHouse schema migrations", cmdMigrate},
		"gen":     {"generate a reproducible demo book of business (to a file or published to NATS)", withStderr(runGen)},
		"replay":  {"recompute every derived event from the stored raw events", cmdReplay},
		"dlq":     {"list the dead letters with their reasons, or replay them after a fix: dlq list | dlq replay", cmdDLQ},
		"status":  {"where the pipeline stands: streams, ingest and derive backlog, dead letters, ClickHouse tables", cmdStatus},
		"report":  {"print a metric: funnel, stalls, missed, movement, forecast, cycle-time or stage-history", cmdReport},
		"ladder":  {"check a ladder configuration file: ladder check FILE", cmdLadder},
		"bench":   {"measure throughput: bench ingest | bench derive | bench api | bench import", cmdBench},
		"import":  {"import a CRM export into NATS: canonical NDJSON, Salesforce OpportunityHistory CSV, or CSV with a column mapping", withStderr(runImport)},
		"sync":    {"poll a call recorder into NATS: sync gong (Gong's /v2/calls/extensive, resumable, one poller per tenant)", cmdSync},
		"verify":  {"check that every CF_EVENTS message is stored in ClickHouse or dead-lettered; print the missing ranges", cmdVerify},
		"gateway": {"serve POST /v1/events and the CRM webhooks alone, publishing to the NATS JetStream of a commitflow run (several can run)", cmdGateway},
	}
}

// withStderr makes a command of run, which also writes progress to stderr:
// the process's.
func withStderr(run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) func(context.Context, []string, io.Writer) error {
	return func(ctx context.Context, args []string, stdout io.Writer) error {
		return run(ctx, args, stdout, os.Stderr)
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "commitflow:", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string, stdout io.Writer) error {
	cmds := commands()
	if len(args) == 2 && args[0] == "help" && args[1] == "config" {
		return writeConfigReference(ctx, stdout)
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout, cmds)
		return nil
	}
	c, ok := cmds[args[0]]
	if !ok {
		usage(os.Stderr, cmds)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return c.run(ctx, args[1:], stdout)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: commitflow <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun \"commitflow <command> -h\" for a command's flags, \"commitflow help config\" for every flag and its environment variable.")
}
