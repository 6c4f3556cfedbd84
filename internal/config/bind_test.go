package config

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

// testFlags is a flag set of every kind of flag, with the checks run uses.
type testFlags struct {
	s     string
	n     int
	u     uint64
	f     float64
	d     time.Duration
	b     bool
	share float64
	every time.Duration
	fs    *flag.FlagSet
}

func newTestFlags() *testFlags {
	t := &testFlags{fs: flag.NewFlagSet("test", flag.ContinueOnError)}
	t.fs.SetOutput(io.Discard)
	t.fs.StringVar(&t.s, "name", "def", "a string")
	Alias(t.fs, "name-alias", "name")
	t.fs.IntVar(&t.n, "batch-size", 10, "an int")
	t.fs.Uint64Var(&t.u, "from", 0, "a uint64")
	t.fs.Float64Var(&t.f, "ratio", 0.5, "a float")
	t.fs.DurationVar(&t.d, "sweep", time.Minute, "a duration")
	t.fs.BoolVar(&t.b, "demo", false, "a bool")
	t.fs.Float64Var(&t.share, "compact-above", 0.01, "a share")
	t.fs.DurationVar(&t.every, "compact-every", time.Minute, "a duration, 0 for never")
	Positive(t.fs, "batch-size", "sweep")
	Share(t.fs, "compact-above")
	NotNegative(t.fs, "compact-every")
	return t
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"compact-above": "COMMITFLOW_COMPACT_ABOVE",
		"nats":          "COMMITFLOW_NATS",
		"as-of":         "COMMITFLOW_AS_OF",
	} {
		if got := EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseBindsEnvironment(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want func(*testFlags) bool
	}{
		{"defaults", nil, nil, func(f *testFlags) bool {
			return f.s == "def" && f.n == 10 && f.f == 0.5 && f.d == time.Minute && !f.b && f.share == 0.01
		}},
		{"every kind from the environment", map[string]string{
			"COMMITFLOW_NAME": "acme", "COMMITFLOW_BATCH_SIZE": "500", "COMMITFLOW_FROM": "7", "COMMITFLOW_RATIO": "0.25",
			"COMMITFLOW_SWEEP": "90s", "COMMITFLOW_DEMO": "true", "COMMITFLOW_COMPACT_ABOVE": "0.2", "COMMITFLOW_COMPACT_EVERY": "0",
		}, nil, func(f *testFlags) bool {
			return f.s == "acme" && f.n == 500 && f.u == 7 && f.f == 0.25 && f.d == 90*time.Second && f.b && f.share == 0.2 && f.every == 0
		}},
		{"command line wins", map[string]string{"COMMITFLOW_NAME": "env", "COMMITFLOW_SWEEP": "1h"},
			[]string{"--name", "flag", "--sweep", "2h"}, func(f *testFlags) bool { return f.s == "flag" && f.d == 2*time.Hour }},
		{"an alias on the command line wins", map[string]string{"COMMITFLOW_NAME": "env"},
			[]string{"--name-alias", "flag"}, func(f *testFlags) bool { return f.s == "flag" }},
		{"an alias has no variable", map[string]string{"COMMITFLOW_NAME_ALIAS": "alias"}, nil,
			func(f *testFlags) bool { return f.s == "def" }},
		{"blank is unset", map[string]string{"COMMITFLOW_NAME": "  ", "COMMITFLOW_SWEEP": ""}, nil,
			func(f *testFlags) bool { return f.s == "def" && f.d == time.Minute }},
		{"trimmed", map[string]string{"COMMITFLOW_BATCH_SIZE": " 20\n"}, nil, func(f *testFlags) bool { return f.n == 20 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			f := newTestFlags()
			if err := Parse(context.Background(), f.fs, tt.args); err != nil {
				t.Fatal(err)
			}
			if !tt.want(f) {
				t.Errorf("got %+v", *f)
			}
		})
	}
}

func TestParseRefusesBadValues(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string // in the error
	}{
		{"percent for a share", map[string]string{"COMMITFLOW_RATIO": "1%"}, nil,
			[]string{`COMMITFLOW_RATIO="1%"`, "--ratio", "want a number"}},
		{"int", map[string]string{"COMMITFLOW_BATCH_SIZE": "ten"}, nil,
			[]string{`COMMITFLOW_BATCH_SIZE="ten"`, "--batch-size", "want a whole number"}},
		{"uint", map[string]string{"COMMITFLOW_FROM": "-1"}, nil,
			[]string{`COMMITFLOW_FROM="-1"`, "want a whole number, 0 or more"}},
		{"duration without unit", map[string]string{"COMMITFLOW_SWEEP": "10"}, nil,
			[]string{`COMMITFLOW_SWEEP="10"`, "--sweep", "want a duration"}},
		{"bool", map[string]string{"COMMITFLOW_DEMO": "yes"}, nil,
			[]string{`COMMITFLOW_DEMO="yes"`, "want true or false"}},
		{"share above 1", map[string]string{"COMMITFLOW_COMPACT_ABOVE": "1.5"}, nil,
			[]string{`COMMITFLOW_COMPACT_ABOVE="1.5"`, "--compact-above", "want a share from 0 to 1"}},
		{"negative duration", map[string]string{"COMMITFLOW_COMPACT_EVERY": "-1m"}, nil,
			[]string{`COMMITFLOW_COMPACT_EVERY="-1m"`, "want 0 or a positive duration"}},
		{"zero batch", map[string]string{"COMMITFLOW_BATCH_SIZE": "0"}, nil,
			[]string{"--batch-size", "want a positive whole number"}},
		{"two bad variables", map[string]string{"COMMITFLOW_SWEEP": "0s", "COMMITFLOW_RATIO": "x"}, nil,
			[]string{"COMMITFLOW_SWEEP", "COMMITFLOW_RATIO"}},
		{"zero on the command line", nil, []string{"--sweep", "0s"},
			[]string{"-sweep", "want a positive duration"}},
		{"share on the command line", nil, []string{"--compact-above", "-0.1"},
			[]string{"-compact-above", "want a share from 0 to 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			err := Parse(context.Background(), newTestFlags().fs, tt.args)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestParseUsageNamesVariable(t *testing.T) {
	f := newTestFlags()
	var out strings.Builder
	f.fs.SetOutput(&out)
	if err := Parse(context.Background(), f.fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, w := range []string{"(env COMMITFLOW_COMPACT_ABOVE)", "(default 0.01)", "alias of --name"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("usage does not say %q:\n%s", w, out.String())
		}
	}
	if strings.Contains(out.String(), "panic") {
		t.Errorf("usage:\n%s", out.String())
	}
}

func TestCollector(t *testing.T) {
	t.Setenv("COMMITFLOW_RATIO", "not a number")
	var c Collector
	f := newTestFlags()
	if err := Parse(WithCollector(context.Background(), &c), f.fs, []string{"--bad"}); !errors.Is(err, ErrCollected) {
		t.Fatalf("Parse = %v, want ErrCollected", err)
	}
	if len(c.FlagSets()) != 1 || c.FlagSets()[0] != f.fs || f.fs.Parsed() {
		t.Errorf("collected %v, parsed %v", c.FlagSets(), f.fs.Parsed())
	}
}

func TestReference(t *testing.T) {
	common := flag.NewFlagSet("common", flag.ContinueOnError)
	var c Common
	c.Register(common)
	run := flag.NewFlagSet("run", flag.ContinueOnError)
	var c2 Common
	c2.Register(run)
	run.Float64("compact-above", 0.01, "share | of `rows` <above>")
	a := flag.NewFlagSet("report a", flag.ContinueOnError)
	var c3 Common
	c3.Register(a)
	b := flag.NewFlagSet("report b", flag.ContinueOnError)
	b.String("tenant", "", "tenant to work on")
	var out strings.Builder
	if err := Reference(&out, common, []*flag.FlagSet{run, a, b}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"| `--retention` | `COMMITFLOW_RETENTION` | `720h0m0s` | run, report a | how long CF_EVENTS and CF_DERIVED keep messages |",
		"| `--tenant` | `COMMITFLOW_TENANT` |  | run, report | tenant to work on |",
		"| `--nats-url` | | | run, report a | alias of --nats |",
		"| `--data` | `COMMITFLOW_DATA` | `./.commitflow` |",
		"#### `commitflow run`\n\n| flag | env | default | what it sets |\n|---|---|---|---|\n| `--compact-above` | `COMMITFLOW_COMPACT_ABOVE` | `0.01` | share \\| of rows \\<above> |\n",
		"#### `commitflow report a`\n\nOnly common flags.\n",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("reference does not hold %q:\n%s", w, out.String())
		}
	}
}
