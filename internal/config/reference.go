package config

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// referenceIntro opens the reference.
const referenceIntro = `### Configuration

Every flag can also be set by the environment variable named after it:
` + "`--compact-above`" + ` by ` + "`COMMITFLOW_COMPACT_ABOVE`" + `. A flag on the command line wins
over its variable, which wins over the default; a blank variable counts as
unset. A value that does not parse, or is out of range, stops the command
with an error naming the variable, its value and what it wants. This
reference is the output of ` + "`commitflow help config`" + `.
`

// Reference writes, in Markdown, every flag of the flag sets with its
// environment variable, default and usage: first the flags of common, with
// the commands that take them, then each set's other flags under the set's
// name ("run", "report funnel"). A set's flag is common's when its name,
// default and usage are the same. A default under the working directory is
// shown relative to it, so the reference is the same wherever it is made.
func Reference(w io.Writer, common *flag.FlagSet, sets []*flag.FlagSet) error {
	wd, _ := os.Getwd()
	r := referenceWriter{w: bufio.NewWriter(w), wd: wd}
	isCommon := func(f *flag.Flag) bool {
		c := common.Lookup(f.Name)
		return c != nil && c.DefValue == f.DefValue && c.Usage == f.Usage
	}

	r.printf("%s\n#### Common flags\n\n", referenceIntro)
	r.printf("| flag | env | default | commands | what it sets |\n|---|---|---|---|---|\n")
	common.VisitAll(func(c *flag.Flag) {
		var takers []*flag.FlagSet
		for _, fs := range sets {
			if f := fs.Lookup(c.Name); f != nil && isCommon(f) {
				takers = append(takers, fs)
			}
		}
		if len(takers) > 0 {
			r.printf("| %s | %s | %s |\n", r.cells(c), commandList(takers, sets), cell(usage(c)))
		}
	})
	for _, fs := range sets {
		r.printf("\n#### `commitflow %s`\n\n", fs.Name())
		var own []*flag.Flag
		fs.VisitAll(func(f *flag.Flag) {
			if !isCommon(f) {
				own = append(own, f)
			}
		})
		if len(own) == 0 {
			r.printf("Only common flags.\n")
			continue
		}
		r.printf("| flag | env | default | what it sets |\n|---|---|---|---|\n")
		for _, f := range own {
			r.printf("| %s | %s |\n", r.cells(f), cell(usage(f)))
		}
	}
	return r.w.Flush()
}

// referenceWriter writes the reference; a default under wd is shown
// relative to it.
type referenceWriter struct {
	w  *bufio.Writer
	wd string
}

func (r referenceWriter) printf(format string, a ...any) {
	fmt.Fprintf(r.w, format, a...)
}

// cells returns the flag, env and default cells of f.
func (r referenceWriter) cells(f *flag.Flag) string {
	if isAlias(f) {
		return fmt.Sprintf("`--%s` | |", f.Name)
	}
	def := f.DefValue
	if r.wd != "" && strings.HasPrefix(def, r.wd+string(os.PathSeparator)) {
		def = "." + def[len(r.wd):]
	}
	if def != "" {
		def = "`" + def + "`"
	}
	return fmt.Sprintf("`--%s` | `%s` | %s", f.Name, EnvName(f.Name), def)
}

// usage returns f's usage without the back quotes that name its value.
func usage(f *flag.Flag) string {
	_, u := flag.UnquoteUsage(f)
	return u
}

// cell escapes s for a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "<", `\<`, "\n", " ").Replace(s)
}

// commandList names the sets in takers, a whole family ("report") when
// takers hold every set of all whose name starts with it.
func commandList(takers, all []*flag.FlagSet) string {
	family := func(fs *flag.FlagSet) string { return strings.Fields(fs.Name())[0] }
	size := map[string]int{}
	for _, fs := range all {
		size[family(fs)]++
	}
	taken := map[string]int{}
	for _, fs := range takers {
		taken[family(fs)]++
	}
	var names []string
	seen := map[string]bool{}
	for _, fs := range takers {
		fam := family(fs)
		switch {
		case taken[fam] < size[fam]:
			names = append(names, fs.Name())
		case !seen[fam]:
			seen[fam] = true
			names = append(names, fam)
		}
	}
	return strings.Join(names, ", ")
}
