package config

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// envPrefix starts the name of every commitflow environment variable.
const envPrefix = "COMMITFLOW_"

// EnvName returns the environment variable of the flag name: COMMITFLOW_
// and the name in upper case with - as _ (compact-above:
// COMMITFLOW_COMPACT_ABOVE).
func EnvName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ErrCollected is what Parse returns when its context carries a Collector:
// the flags were handed to it and not parsed.
var ErrCollected = errors.New("config: flags collected, not parsed")

// Collector gathers the flag sets Parse is handed, to list every command's
// flags without running any.
type Collector struct {
	sets []*flag.FlagSet
}

type collectorKey struct{}

// WithCollector returns ctx carrying c: Parse under it hands its flag set
// to c and returns ErrCollected.
func WithCollector(ctx context.Context, c *Collector) context.Context {
	return context.WithValue(ctx, collectorKey{}, c)
}

// FlagSets returns the flag sets collected, in the order Parse was handed
// them.
func (c *Collector) FlagSets() []*flag.FlagSet {
	return c.sets
}

// Parse parses args with fs, then sets every flag that args did not give
// from its environment variable (EnvName) when that is set and not blank:
// a flag on the command line wins over the environment, which wins over the
// default. A value the flag refuses is an error naming the variable, its
// value and what the flag wants. Aliases (Alias) have no variable of their
// own. Each flag's usage gets its variable's name, for -h.
//
// When ctx carries a Collector, Parse hands fs to it, parses nothing and
// returns ErrCollected.
func Parse(ctx context.Context, fs *flag.FlagSet, args []string) error {
	if c, ok := ctx.Value(collectorKey{}).(*Collector); ok {
		c.sets = append(c.sets, fs)
		return ErrCollected
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !isAlias(f) {
			f.Usage += " (env " + EnvName(f.Name) + ")"
		}
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	return bind(fs)
}

// bind sets every flag of fs not set yet, but aliases, from its
// environment variable.
func bind(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		given[f.Name] = true
		if a, ok := f.Value.(*aliasValue); ok {
			given[a.of] = true
		}
	})
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || isAlias(f) {
			return
		}
		env := EnvName(f.Name)
		v := strings.TrimSpace(os.Getenv(env))
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, envError(f, env, v, err))
		}
	})
	return errors.Join(errs...)
}

// envError says that the variable env's value v does not suit the flag f.
func envError(f *flag.Flag, env, v string, err error) error {
	var ce *checkError
	if errors.As(err, &ce) {
		return fmt.Errorf("%s=%q (--%s): %w", env, v, f.Name, err)
	}
	return fmt.Errorf("%s=%q (--%s): want %s (%w)", env, v, f.Name, wantOf(f.Value), err)
}

// wantOf says what a value of v's type is written as.
func wantOf(v flag.Value) string {
	g, ok := v.(flag.Getter)
	if !ok {
		return "a value this flag accepts"
	}
	switch g.Get().(type) {
	case bool:
		return "true or false"
	case int, int64:
		return "a whole number"
	case uint, uint64:
		return "a whole number, 0 or more"
	case float64:
		return "a number, e.g. 0.25"
	case time.Duration:
		return "a duration, e.g. 90s, 15m or 2h"
	}
	return "a value this flag accepts"
}

// Alias defines the flag alias of fs as another name of its flag of: the
// same value, and no environment variable of its own.
func Alias(fs *flag.FlagSet, alias, of string) {
	f := fs.Lookup(of)
	if f == nil {
		panic("config: alias of undefined flag --" + of)
	}
	fs.Var(&aliasValue{f.Value, of}, alias, "alias of --"+of)
}

// aliasValue is the value of an alias: the value of the flag named of.
type aliasValue struct {
	flag.Value
	of string
}

func isAlias(f *flag.Flag) bool {
	_, ok := f.Value.(*aliasValue)
	return ok
}

func (a *aliasValue) String() string {
	if a == nil || a.Value == nil {
		return ""
	}
	return a.Value.String()
}

// checkError is a value that parses but that the flag refuses.
type checkError struct{ want string }

func (e *checkError) Error() string { return "want " + e.want }

// checkedValue is a flag's value with a check of every value set.
type checkedValue struct {
	flag.Getter
	want string
	ok   func(any) bool
}

func (c *checkedValue) String() string {
	if c == nil || c.Getter == nil {
		return ""
	}
	return c.Getter.String()
}

func (c *checkedValue) Set(s string) error {
	if err := c.Getter.Set(s); err != nil {
		return err
	}
	if !c.ok(c.Get()) {
		return &checkError{c.want}
	}
	return nil
}

// check wraps the flags names of fs so that a value they are set to, from
// the command line or the environment, must pass ok; want(kind) says what
// they want, kind being "duration", "whole number" or "number".
func check(fs *flag.FlagSet, want func(kind string) string, ok func(float64) bool, names ...string) {
	for _, name := range names {
		f := fs.Lookup(name)
		if f == nil {
			panic("config: check of undefined flag --" + name)
		}
		g, isGetter := f.Value.(flag.Getter)
		if !isGetter {
			panic("config: check of flag --" + name + " without Get")
		}
		kind := "number"
		switch g.Get().(type) {
		case time.Duration:
			kind = "duration"
		case int, int64, uint, uint64:
			kind = "whole number"
		case float64:
		default:
			panic("config: check of non-numeric flag --" + name)
		}
		f.Value = &checkedValue{Getter: g, want: want(kind), ok: func(v any) bool { return ok(number(v)) }}
	}
}

// number returns a numeric flag value as a float64.
func number(v any) float64 {
	switch n := v.(type) {
	case time.Duration:
		return float64(n)
	case int:
		return float64(n)
	case int64:
		return float64(n)
	case uint:
		return float64(n)
	case uint64:
		return float64(n)
	case float64:
		return n
	}
	panic(fmt.Sprintf("config: not a number: %T", v))
}

// Positive makes the numeric or duration flags names of fs refuse a value
// of 0 or less.
func Positive(fs *flag.FlagSet, names ...string) {
	check(fs, func(kind string) string { return "a positive " + kind }, func(v float64) bool { return v > 0 }, names...)
}

// NotNegative makes the numeric or duration flags names of fs refuse a
// value below 0.
func NotNegative(fs *flag.FlagSet, names ...string) {
	check(fs, func(kind string) string { return "0 or a positive " + kind }, func(v float64) bool { return v >= 0 }, names...)
}

// Share makes the numeric flags names of fs refuse a value outside 0 to 1.
func Share(fs *flag.FlagSet, names ...string) {
	check(fs, func(string) string { return "a share from 0 to 1, e.g. 0.05" }, func(v float64) bool { return v >= 0 && v <= 1 }, names...)
}

// Between makes the numeric flags names of fs refuse a value outside lo to
// hi.
func Between(fs *flag.FlagSet, lo, hi float64, names ...string) {
	check(fs, func(kind string) string { return fmt.Sprintf("a %s from %v to %v", kind, lo, hi) }, func(v float64) bool { return v >= lo && v <= hi }, names...)
}
