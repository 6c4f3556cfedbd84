package ladder

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is a refused ladder file: the file, the line, the path of the
// offending field and the reason.
type Error struct {
	File   string
	Line   int    // 1-based; 0 if unknown
	Path   string // e.g. steps[3].key; empty for the whole file
	Reason string
}

// Error formats the error as "file:line: path: reason".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// MaxSteps is the largest number of steps a ladder may have (step indexes
// are stored as UInt8).
const MaxSteps = 255

// Defaults applied when a file leaves a setting out.
const (
	DefaultStakeholders     = 3
	DefaultOverdueGraceDays = 2
	DefaultFollowupHours    = 48
)

func stepKeyOK(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Parse parses and validates a ladder file; name is used in error messages.
// A refused file gives an *Error with the line and the reason.
func Parse(name string, data []byte) (*Ladder, error) {
	p := &parser{file: name}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, p.yamlErr(err)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, &Error{File: name, Reason: "empty ladder file"}
	}
	doc := root.Content[0]
	l := &Ladder{}
	if err := p.ladder(doc, l); err != nil {
		return nil, err
	}
	l.compile()
	if l.Version == "" {
		l.Version = l.hash()
	}
	return l, nil
}

// yamlErr turns a yaml.v3 syntax error ("yaml: line 3: ...") into an *Error.
func (p *parser) yamlErr(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, reason, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				return &Error{File: p.file, Line: n, Reason: reason}
			}
		}
	}
	return &Error{File: p.file, Reason: msg}
}

type parser struct {
	file  string
	steps map[string]int // key -> 1-based index
}

func (p *parser) errf(n *yaml.Node, path, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: p.file, Line: line, Path: path, Reason: fmt.Sprintf(format, args...)}
}

// fields checks that n is a mapping with only allowed keys, each once, and
// returns the value nodes by key.
func (p *parser) fields(n *yaml.Node, path string, allowed ...string) (map[string]*yaml.Node, error) {
	if n.Kind == yaml.AliasNode {
		return nil, p.errf(n, path, "aliases are not supported")
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n, path, "must be a mapping")
	}
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		fp := join(path, key)
		if k.Kind != yaml.ScalarNode {
			return nil, p.errf(k, path, "keys must be plain names")
		}
		found := false
		for _, a := range allowed {
			if a == key {
				found = true
				break
			}
		}
		if !found {
			return nil, p.errf(k, fp, "unknown field (want one of %s)", strings.Join(allowed, ", "))
		}
		if _, dup := out[key]; dup {
			return nil, p.errf(k, fp, "field given twice")
		}
		if v.Kind == yaml.AliasNode {
			return nil, p.errf(v, fp, "aliases are not supported")
		}
		out[key] = v
	}
	return out, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func (p *parser) str(n *yaml.Node, path string) (string, error) {
	if isNull(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", p.errf(n, path, "must be a string")
	}
	return strings.TrimSpace(n.Value), nil
}

func (p *parser) num(n *yaml.Node, path string) (float64, error) {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		return 0, p.errf(n, path, "must be a number")
	}
	var f float64
	if err := n.Decode(&f); err != nil {
		return 0, p.errf(n, path, "must be a number")
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 3650*24 {
		return 0, p.errf(n, path, "must be a number between 0 and %d", 3650*24)
	}
	return f, nil
}

func (p *parser) boolean(n *yaml.Node, path string) (bool, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		return false, p.errf(n, path, "must be true or false")
	}
	return n.Value == "true" || n.Value == "True" || n.Value == "TRUE", nil
}

func (p *parser) strList(n *yaml.Node, path string) ([]string, error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, path, "must be a list of strings")
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		ip := fmt.Sprintf("%s[%d]", path, i)
		if c.Kind != yaml.ScalarNode || isNull(c) {
			return nil, p.errf(c, ip, "must be a string")
		}
		s := strings.TrimSpace(c.Value)
		if s == "" {
			return nil, p.errf(c, ip, "must not be empty")
		}
		out = append(out, s)
	}
	return out, nil
}

func (p *parser) seq(n *yaml.Node, path string) ([]*yaml.Node, error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, path, "must be a list")
	}
	return n.Content, nil
}

// stepRef resolves a step key; empty is allowed only if optional.
func (p *parser) stepRef(n *yaml.Node, path string, optional bool) (string, error) {
	s, err := p.str(n, path)
	if err != nil {
		return "", err
	}
	if s == "" {
		if optional {
			return "", nil
		}
		return "", p.errf(n, path, "missing step key")
	}
	if p.steps[s] == 0 {
		return "", p.errf(n, path, "unknown step %q (want one of %s)", s, p.stepList())
	}
	return s, nil
}

func (p *parser) stepList() string {
	keys := make([]string, len(p.steps))
	for k, i := range p.steps {
		keys[i-1] = k
	}
	return strings.Join(keys, ", ")
}

func (p *parser) ladder(doc *yaml.Node, l *Ladder) error {
	f, err := p.fields(doc, "", "version", "steps", "pipelines", "won_stages", "lost_stages",
		"activities", "action_items", "consensus", "won_step", "single_threaded_from",
		"no_decision", "overdue_grace_days", "followup_hours")
	if err != nil {
		return err
	}
	if n := f["version"]; n != nil {
		if l.Version, err = p.str(n, "version"); err != nil {
			return err
		}
	}
	sn := f["steps"]
	if sn == nil {
		return p.errf(doc, "steps", "missing: a ladder needs at least one step")
	}
	if err := p.stepsOf(sn, l); err != nil {
		return err
	}
	if n := f["pipelines"]; n != nil {
		if err := p.pipelines(n, l); err != nil {
			return err
		}
	}
	for _, k := range []string{"won_stages", "lost_stages"} {
		n := f[k]
		if n == nil {
			continue
		}
		list, err := p.strList(n, k)
		if err != nil {
			return err
		}
		if k == "won_stages" {
			l.WonStages = list
		} else {
			l.LostStages = list
		}
	}
	if n := f["activities"]; n != nil {
		if err := p.activities(n, l); err != nil {
			return err
		}
	}
	if n := f["action_items"]; n != nil {
		if err := p.actionItems(n, l); err != nil {
			return err
		}
	}
	l.Consensus.Stakeholders = DefaultStakeholders
	if n := f["consensus"]; n != nil {
		if err := p.consensus(n, l); err != nil {
			return err
		}
	}
	if n := f["won_step"]; n != nil {
		if l.WonStep, err = p.stepRef(n, "won_step", true); err != nil {
			return err
		}
	}
	if n := f["single_threaded_from"]; n != nil {
		if l.SingleThreadedFrom, err = p.stepRef(n, "single_threaded_from", true); err != nil {
			return err
		}
	}
	if n := f["no_decision"]; n != nil {
		nf, err := p.fields(n, "no_decision", "step", "reasons")
		if err != nil {
			return err
		}
		if v := nf["step"]; v != nil {
			if l.NoDecision.Step, err = p.stepRef(v, "no_decision.step", true); err != nil {
				return err
			}
		}
		if v := nf["reasons"]; v != nil {
			if l.NoDecision.Reasons, err = p.strList(v, "no_decision.reasons"); err != nil {
				return err
			}
		}
	}
	l.OverdueGraceDays = DefaultOverdueGraceDays
	if n := f["overdue_grace_days"]; n != nil {
		if l.OverdueGraceDays, err = p.num(n, "overdue_grace_days"); err != nil {
			return err
		}
	}
	l.FollowupHours = DefaultFollowupHours
	if n := f["followup_hours"]; n != nil {
		if l.FollowupHours, err = p.num(n, "followup_hours"); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) stepsOf(n *yaml.Node, l *Ladder) error {
	items, err := p.seq(n, "steps")
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return p.errf(n, "steps", "a ladder needs at least one step")
	}
	if len(items) > MaxSteps {
		return p.errf(n, "steps", "at most %d steps, got %d", MaxSteps, len(items))
	}
	p.steps = make(map[string]int, len(items))
	for i, it := range items {
		path := fmt.Sprintf("steps[%d]", i)
		f, err := p.fields(it, path, "key", "title", "stall_after_days")
		if err != nil {
			return err
		}
		var s Step
		kn := f["key"]
		if kn == nil {
			return p.errf(it, path+".key", "missing")
		}
		if s.Key, err = p.str(kn, path+".key"); err != nil {
			return err
		}
		if !stepKeyOK(s.Key) {
			return p.errf(kn, path+".key", "%q must be lower-case letters, digits and _ starting with a letter", s.Key)
		}
		if s.Key == "none" {
			return p.errf(kn, path+".key", `"none" is reserved`)
		}
		if p.steps[s.Key] != 0 {
			return p.errf(kn, path+".key", "duplicate step key %q", s.Key)
		}
		if tn := f["title"]; tn != nil {
			if s.Title, err = p.str(tn, path+".title"); err != nil {
				return err
			}
		}
		if s.Title == "" {
			s.Title = s.Key
		}
		if dn := f["stall_after_days"]; dn != nil {
			if s.StallAfterDays, err = p.num(dn, path+".stall_after_days"); err != nil {
				return err
			}
		}
		p.steps[s.Key] = i + 1
		l.Steps = append(l.Steps, s)
	}
	return nil
}

func (p *parser) pipelines(n *yaml.Node, l *Ladder) error {
	items, err := p.seq(n, "pipelines")
	if err != nil {
		return err
	}
	type seen struct{ line int }
	stages := map[string]seen{}
	for i, it := range items {
		path := fmt.Sprintf("pipelines[%d]", i)
		f, err := p.fields(it, path, "pipeline", "stages")
		if err != nil {
			return err
		}
		pl := Pipeline{Pipeline: "*", Stages: map[string]string{}}
		if v := f["pipeline"]; v != nil {
			s, err := p.str(v, path+".pipeline")
			if err != nil {
				return err
			}
			if s != "" {
				pl.Pipeline = s
			}
		}
		sn := f["stages"]
		if sn == nil {
			return p.errf(it, path+".stages", "missing")
		}
		if sn.Kind != yaml.MappingNode {
			return p.errf(sn, path+".stages", "must be a mapping of stage name to step key")
		}
		for j := 0; j+1 < len(sn.Content); j += 2 {
			k, v := sn.Content[j], sn.Content[j+1]
			sp := fmt.Sprintf("%s.stages[%q]", path, k.Value)
			if k.Kind != yaml.ScalarNode || strings.TrimSpace(k.Value) == "" {
				return p.errf(k, path+".stages", "stage names must be non-empty strings")
			}
			stage := strings.TrimSpace(k.Value)
			key := strings.ToLower(pl.Pipeline) + "\x00" + strings.ToLower(stage)
			if prev, dup := stages[key]; dup {
				return p.errf(k, sp, "duplicate stage %q in pipeline %q (first at line %d)", stage, pl.Pipeline, prev.line)
			}
			stages[key] = seen{k.Line}
			if v.Kind == yaml.AliasNode {
				return p.errf(v, sp, "aliases are not supported")
			}
			step, err := p.str(v, sp)
			if err != nil {
				return err
			}
			if step == "" || step == "none" {
				step = "none"
			} else if p.steps[step] == 0 {
				return p.errf(v, sp, "unknown step %q (want none or one of %s)", step, p.stepList())
			}
			pl.Stages[stage] = step
		}
		l.Pipelines = append(l.Pipelines, pl)
	}
	return nil
}

func (p *parser) activities(n *yaml.Node, l *Ladder) error {
	items, err := p.seq(n, "activities")
	if err != nil {
		return err
	}
	for i, it := range items {
		path := fmt.Sprintf("activities[%d]", i)
		f, err := p.fields(it, path, "step", "kinds", "keywords", "status", "owner", "after_win")
		if err != nil {
			return err
		}
		c, err := p.ruleCommon(it, f, path, "any")
		if err != nil {
			return err
		}
		r := ActivityRule{Step: c.step, Kinds: c.kinds, Keywords: c.keywords, Status: "completed", Owner: c.owner, AfterWin: c.afterWin}
		for j, k := range r.Kinds {
			if kindBit(k) == 0 {
				return p.errf(f["kinds"].Content[j], fmt.Sprintf("%s.kinds[%d]", path, j), "unknown activity kind %q (want meeting, email, task, note or call)", k)
			}
		}
		if v := f["status"]; v != nil {
			s, err := p.str(v, path+".status")
			if err != nil {
				return err
			}
			switch s = strings.ToLower(s); s {
			case "":
			case "completed", "scheduled", "any":
				r.Status = s
			default:
				return p.errf(v, path+".status", "must be completed, scheduled or any, got %q", s)
			}
		}
		l.Activities = append(l.Activities, r)
	}
	return nil
}

// rule holds the fields activity and action-item rules share.
type rule struct {
	step            string
	kinds, keywords []string // kinds lower-cased
	owner           string
	afterWin        bool
}

// ruleCommon reads a rule's step (required), kinds, keywords, owner
// (defOwner when absent) and after_win from its fields f.
func (p *parser) ruleCommon(it *yaml.Node, f map[string]*yaml.Node, path, defOwner string) (rule, error) {
	r := rule{owner: defOwner}
	var err error
	if f["step"] == nil {
		return r, p.errf(it, path+".step", "missing")
	}
	if r.step, err = p.stepRef(f["step"], path+".step", false); err != nil {
		return r, err
	}
	if v := f["kinds"]; v != nil {
		if r.kinds, err = p.strList(v, path+".kinds"); err != nil {
			return r, err
		}
		for j := range r.kinds {
			r.kinds[j] = strings.ToLower(r.kinds[j])
		}
	}
	if v := f["keywords"]; v != nil {
		if r.keywords, err = p.strList(v, path+".keywords"); err != nil {
			return r, err
		}
	}
	if v := f["owner"]; v != nil {
		if r.owner, err = p.owner(v, path+".owner", defOwner); err != nil {
			return r, err
		}
	}
	if v := f["after_win"]; v != nil {
		if r.afterWin, err = p.boolean(v, path+".after_win"); err != nil {
			return r, err
		}
	}
	return r, nil
}

func (p *parser) owner(n *yaml.Node, path, def string) (string, error) {
	s, err := p.str(n, path)
	if err != nil {
		return "", err
	}
	switch s = strings.ToLower(s); s {
	case "":
		return def, nil
	case "buyer", "seller", "any":
		return s, nil
	}
	return "", p.errf(n, path, "must be buyer, seller or any, got %q", s)
}

func (p *parser) actionItems(n *yaml.Node, l *Ladder) error {
	items, err := p.seq(n, "action_items")
	if err != nil {
		return err
	}
	for i, it := range items {
		path := fmt.Sprintf("action_items[%d]", i)
		f, err := p.fields(it, path, "step", "kinds", "keywords", "owner", "after_win")
		if err != nil {
			return err
		}
		c, err := p.ruleCommon(it, f, path, "buyer")
		if err != nil {
			return err
		}
		r := ActionItemRule{Step: c.step, Kinds: c.kinds, Keywords: c.keywords, Owner: c.owner, AfterWin: c.afterWin}
		if len(r.Kinds) == 0 && len(r.Keywords) == 0 {
			return p.errf(it, path, "a rule needs kinds or keywords")
		}
		l.ActionItems = append(l.ActionItems, r)
	}
	return nil
}

func (p *parser) consensus(n *yaml.Node, l *Ladder) error {
	f, err := p.fields(n, "consensus", "step", "stakeholders", "roles")
	if err != nil {
		return err
	}
	if v := f["step"]; v != nil {
		if l.Consensus.Step, err = p.stepRef(v, "consensus.step", true); err != nil {
			return err
		}
	}
	if v := f["stakeholders"]; v != nil {
		if v.Kind != yaml.ScalarNode || v.Tag != "!!int" {
			return p.errf(v, "consensus.stakeholders", "must be a whole number")
		}
		k, err := strconv.Atoi(v.Value)
		if err != nil || k < 1 || k > 1000 {
			return p.errf(v, "consensus.stakeholders", "must be between 1 and 1000, got %s", v.Value)
		}
		l.Consensus.Stakeholders = k
	}
	if v := f["roles"]; v != nil {
		if l.Consensus.Roles, err = p.strList(v, "consensus.roles"); err != nil {
			return err
		}
	}
	return nil
}

// compile builds the lookup structures of a validated ladder.
func (l *Ladder) compile() {
	c := &l.c
	c.index = make(map[string]int, len(l.Steps))
	for i, s := range l.Steps {
		c.index[s.Key] = i + 1
	}
	c.stageExact = map[string]map[string]int{}
	c.stageLower = map[string]map[string]int{}
	for _, pl := range l.Pipelines {
		ex, lo := c.stageExact[pl.Pipeline], c.stageLower[strings.ToLower(pl.Pipeline)]
		if ex == nil {
			ex = map[string]int{}
			c.stageExact[pl.Pipeline] = ex
		}
		if lo == nil {
			lo = map[string]int{}
			c.stageLower[strings.ToLower(pl.Pipeline)] = lo
		}
		for stage, step := range pl.Stages {
			idx := c.index[step] // 0 for none
			ex[stage] = idx
			lo[strings.ToLower(stage)] = idx
		}
	}
	c.wonStages = foldSet(l.WonStages)
	c.lostStages = foldSet(l.LostStages)
	c.roles = foldSet(l.Consensus.Roles)
	for _, r := range l.Activities {
		ar := activityRule{step: c.index[r.Step], status: r.Status, owner: r.Owner, afterWin: r.AfterWin, keywords: keywords(r.Keywords)}
		for _, k := range r.Kinds {
			ar.kinds |= kindBit(k)
		}
		c.activities = append(c.activities, ar)
	}
	c.itemKinds = map[string]bool{}
	for _, r := range l.ActionItems {
		ir := itemRule{step: c.index[r.Step], owner: r.Owner, afterWin: r.AfterWin, keywords: keywords(r.Keywords), kinds: map[string]bool{}}
		for _, k := range r.Kinds {
			ir.kinds[k] = true
			c.itemKinds[k] = true
		}
		c.items = append(c.items, ir)
	}
	c.reasons = keywords(l.NoDecision.Reasons)
	c.grace = time.Duration(l.OverdueGraceDays * float64(24*time.Hour))
	c.followup = time.Duration(l.FollowupHours * float64(time.Hour))
}

func foldSet(list []string) map[string]bool {
	m := make(map[string]bool, 2*len(list))
	for _, s := range list {
		m[s] = true
		m[strings.ToLower(s)] = true
	}
	return m
}

func keywords(list []string) []keyword {
	out := make([]keyword, 0, len(list))
	for _, s := range list {
		if k := newKeyword(s); k.s != "" {
			out = append(out, k)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].s) > len(out[j].s) })
	return out
}
