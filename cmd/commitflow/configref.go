package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/commitflow/commitflow/internal/api"
	"github.com/commitflow/commitflow/internal/config"
)

// flaglessCommands are the commands without flags: they take arguments
// only, and the configuration reference leaves them out.
var flaglessCommands = map[string]bool{"ladder": true}

// flagCommands returns the argument lists that reach the flags of every
// command and subcommand with flags, in the order of the reference.
func flagCommands() [][]string {
	cmds := [][]string{{"run"}, {"gateway"}, {"migrate"}, {"gen"}, {"import"}, {"verify"}, {"status"}, {"dlq", "list"}, {"dlq", "replay"}, {"replay"}, {"sync", "gong"}}
	for _, ep := range api.Endpoints() {
		cmds = append(cmds, []string{"report", ep.Name})
	}
	return append(cmds, []string{"bench", "ingest"}, []string{"bench", "derive"}, []string{"bench", "api"}, []string{"bench", "import"})
}

// writeConfigReference writes the reference of every command's flags
// (config.Reference): each command is run with a context that makes its
// config.Parse hand over its flags instead of parsing them.
func writeConfigReference(ctx context.Context, w io.Writer) error {
	cmds := commands()
	listed := map[string]bool{}
	var col config.Collector
	ctx = config.WithCollector(ctx, &col)
	for _, args := range flagCommands() {
		listed[args[0]] = true
		c, ok := cmds[args[0]]
		if !ok {
			continue
		}
		if err := c.run(ctx, args[1:], io.Discard); !errors.Is(err, config.ErrCollected) {
			return fmt.Errorf("config reference: %q did not hand over its flags (does it parse them with config.Parse?): %v", args, err)
		}
	}
	for name := range cmds {
		if !listed[name] && !flaglessCommands[name] {
			return fmt.Errorf("config reference: command %q is not listed in flagCommands", name)
		}
	}
	common := flag.NewFlagSet("common", flag.ContinueOnError)
	var c config.Common
	c.Register(common)
	var gc config.GC
	gc.Register(common)
	return config.Reference(w, common, col.FlagSets())
}
