// Package ladder reads the commitment ladder: the ordered buyer commitments a
// deal climbs and the rules that map CRM and call-record evidence onto them.
//
// A ladder is configuration (YAML, see schemas/ladder). Parse refuses a bad
// file with the line and the reason; the compiled ladder answers the lookups
// derivation needs without allocating.
package ladder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	ladderschema "github.com/commitflow/commitflow/schemas/ladder"
)

// Ladder is a parsed and validated ladder configuration. Its exported fields
// are the normalized configuration; use the methods for lookups.
type Ladder struct {
	// Version identifies the configuration; derived events carry it. When
	// the file gives none it is a hash of the normalized configuration.
	Version string `json:"version"`
	// Steps are the commitments in order.
	Steps []Step `json:"steps"`
	// Pipelines map CRM stage names to steps.
	Pipelines []Pipeline `json:"pipelines"`
	// WonStages and LostStages close the deal when the CRM stage moves there.
	WonStages  []string `json:"won_stages"`
	LostStages []string `json:"lost_stages"`
	// Activities map CRM activities and recorded calls to steps.
	Activities []ActivityRule `json:"activities"`
	// ActionItems map call action items and buyer-owned tasks to steps.
	ActionItems []ActionItemRule `json:"action_items"`
	// Consensus is the stakeholder-count rule.
	Consensus Consensus `json:"consensus"`
	// WonStep is the step a closed-won deal has gained; empty for none.
	WonStep string `json:"won_step"`
	// SingleThreadedFrom is the step from which a deal with fewer
	// stakeholders than Consensus.Stakeholders is single-threaded.
	SingleThreadedFrom string `json:"single_threaded_from"`
	// NoDecision says when a loss counts as a loss to the status quo.
	NoDecision NoDecision `json:"no_decision"`
	// OverdueGraceDays is how long after its due time a buyer action item
	// is missed when the buyer did not engage again.
	OverdueGraceDays float64 `json:"overdue_grace_days"`
	// FollowupHours is the window after a CRM meeting in which a scheduled
	// meeting or buyer-owned task shows the meeting advanced the deal.
	FollowupHours float64 `json:"followup_hours"`

	c compiled
}

// Step is one commitment of the ladder.
type Step struct {
	Key   string `json:"key"`
	Title string `json:"title"`
	// StallAfterDays is how long a deal whose highest step is this one may go
	// without a new commitment before it is stalled; 0 means never.
	StallAfterDays float64 `json:"stall_after_days"`
}

// Pipeline maps the stage names of one CRM pipeline ("*" for any) to step
// keys; "none" marks a known stage that shows no commitment.
type Pipeline struct {
	Pipeline string            `json:"pipeline"`
	Stages   map[string]string `json:"stages"`
}

// ActivityRule maps CRM activities and recorded calls (kind "call") to a
// step. Every field given must match; keywords match whole words or phrases
// of the subject or call title, case-insensitively.
type ActivityRule struct {
	Step     string   `json:"step"`
	Kinds    []string `json:"kinds,omitempty"`    // meeting, email, task, note, call; empty: any
	Keywords []string `json:"keywords,omitempty"` // empty: any subject
	Status   string   `json:"status"`             // completed (default), scheduled or any
	Owner    string   `json:"owner"`              // buyer, seller or any (default)
	AfterWin bool     `json:"after_win,omitempty"`
}

// ActionItemRule maps call action items (and buyer-owned CRM tasks) to a
// step: by the item's kind if some rule lists that kind, else by keywords in
// its text.
type ActionItemRule struct {
	Step     string   `json:"step"`
	Kinds    []string `json:"kinds,omitempty"`
	Keywords []string `json:"keywords,omitempty"`
	Owner    string   `json:"owner"` // buyer (default), seller or any
	AfterWin bool     `json:"after_win,omitempty"`
}

// Consensus gains Step once Stakeholders distinct buyer people are engaged.
// Contacts added with one of Roles count as engaged.
type Consensus struct {
	Step         string   `json:"step"`
	Stakeholders int      `json:"stakeholders"`
	Roles        []string `json:"roles,omitempty"`
}

// NoDecision marks a loss to the status quo: a loss reason containing one of
// Reasons, or a loss without ever gaining Step.
type NoDecision struct {
	Step    string   `json:"step"`
	Reasons []string `json:"reasons,omitempty"`
}

// compiled holds the lookup structures built once by Parse.
type compiled struct {
	index      map[string]int // step key -> 1-based index
	stageExact map[string]map[string]int
	stageLower map[string]map[string]int
	wonStages  map[string]bool
	lostStages map[string]bool
	activities []activityRule
	items      []itemRule
	itemKinds  map[string]bool
	roles      map[string]bool
	reasons    []keyword
	grace      time.Duration
	followup   time.Duration
}

type activityRule struct {
	step     int
	kinds    uint8 // bit set of activity kinds
	keywords []keyword
	status   string
	owner    string
	afterWin bool
}

type itemRule struct {
	step     int
	kinds    map[string]bool
	keywords []keyword
	owner    string
	afterWin bool
}

// kindBit returns the bit of an activity kind a rule may name ("call" also
// stands for call.completed), or 0 for an unknown kind.
func kindBit(kind string) uint8 {
	switch kind {
	case "meeting":
		return 1
	case "email":
		return 2
	case "task":
		return 4
	case "note":
		return 8
	case "call":
		return 16
	}
	if kind != "" && kind != strings.ToLower(kind) {
		return kindBit(strings.ToLower(kind))
	}
	return 0
}

// Default returns the shipped default ladder (schemas/ladder/default.yaml).
// It panics only if the embedded file is broken, which tests rule out.
func Default() *Ladder {
	l, err := Parse("default.yaml", []byte(ladderschema.DefaultYAML))
	if err != nil {
		panic("ladder: embedded default is invalid: " + err.Error())
	}
	return l
}

// Load reads and parses the ladder file at path.
func Load(path string) (*Ladder, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ladder: %w", err)
	}
	return Parse(path, data)
}

// Len returns the number of steps.
func (l *Ladder) Len() int { return len(l.Steps) }

// Index returns the 1-based position of the step key, or 0 if the ladder
// has no such step. It matches Derived.StepIndex.
func (l *Ladder) Index(key string) int { return l.c.index[key] }

// Key returns the key of the step at 1-based index i, or "" if i is out of
// range.
func (l *Ladder) Key(i int) string {
	if i < 1 || i > len(l.Steps) {
		return ""
	}
	return l.Steps[i-1].Key
}

// StallAfter returns the stall threshold of the step at 1-based index i;
// 0 means the step does not stall.
func (l *Ladder) StallAfter(i int) time.Duration {
	if i < 1 || i > len(l.Steps) {
		return 0
	}
	return time.Duration(l.Steps[i-1].StallAfterDays * float64(24*time.Hour))
}

// OverdueGrace returns OverdueGraceDays as a duration.
func (l *Ladder) OverdueGrace() time.Duration { return l.c.grace }

// Followup returns FollowupHours as a duration.
func (l *Ladder) Followup() time.Duration { return l.c.followup }

// StageStep returns the 1-based step the CRM stage maps to in pipeline (0
// for a stage marked none) and whether the stage is known at all.
func (l *Ladder) StageStep(pipeline, stage string) (step int, known bool) {
	if pipeline != "" {
		if s, ok := lookupStage(l.c.stageExact[pipeline], l.c.stageLower[strings.ToLower(pipeline)], stage); ok {
			return s, true
		}
	}
	return lookupStage(l.c.stageExact["*"], l.c.stageLower["*"], stage)
}

func lookupStage(exact, lower map[string]int, stage string) (int, bool) {
	if s, ok := exact[stage]; ok {
		return s, true
	}
	if lower == nil {
		return 0, false
	}
	s, ok := lower[strings.ToLower(stage)]
	return s, ok
}

// IsWonStage reports whether moving to stage closes the deal as won.
func (l *Ladder) IsWonStage(stage string) bool { return inFold(l.c.wonStages, stage) }

// IsLostStage reports whether moving to stage closes the deal as lost.
func (l *Ladder) IsLostStage(stage string) bool { return inFold(l.c.lostStages, stage) }

// IsConsensusRole reports whether a contact with this role counts as an
// engaged stakeholder.
func (l *Ladder) IsConsensusRole(role string) bool { return inFold(l.c.roles, role) }

// IsNoDecisionReason reports whether a loss reason means the status quo won.
func (l *Ladder) IsNoDecisionReason(reason string) bool {
	return matchAny(l.c.reasons, reason)
}

func inFold(m map[string]bool, s string) bool {
	if s == "" || len(m) == 0 {
		return false
	}
	return m[s] || m[strings.ToLower(s)]
}

// Interaction describes a CRM activity or a recorded call for MatchActivity.
type Interaction struct {
	Kind      string // meeting, email, task, note; "call" for call.completed
	Status    string // completed or scheduled; empty reads as completed
	OwnerSide string // buyer or seller, for tasks
	Subject   string // activity subject or call title
	// BuyerPresent is false when the participants are known and none is on
	// the buyer side; meeting and call rules then do not match.
	BuyerPresent bool
	AfterWin     bool // the deal was won before
}

// MatchActivity appends to dst the 1-based steps of every activity rule the
// interaction matches, and returns the extended slice.
func (l *Ladder) MatchActivity(dst []int, in Interaction) []int {
	bit := kindBit(in.Kind)
	status := in.Status
	if status == "" {
		status = "completed"
	}
	for i := range l.c.activities {
		r := &l.c.activities[i]
		if r.kinds != 0 && r.kinds&bit == 0 {
			continue
		}
		if r.status != "any" && r.status != status {
			continue
		}
		if r.owner != "any" && r.owner != in.OwnerSide {
			continue
		}
		if r.afterWin && !in.AfterWin {
			continue
		}
		if (in.Kind == "meeting" || in.Kind == "call") && !in.BuyerPresent {
			continue
		}
		if len(r.keywords) > 0 && !matchAny(r.keywords, in.Subject) {
			continue
		}
		dst = appendStep(dst, r.step)
	}
	return dst
}

// MatchActionItem appends to dst the 1-based steps of every action item rule
// the item matches, and returns the extended slice. An item whose kind some
// rule lists is matched by kind only; otherwise by keywords in text.
func (l *Ladder) MatchActionItem(dst []int, kind, text, ownerSide string, afterWin bool) []int {
	byKind := kind != "" && l.c.itemKinds[strings.ToLower(kind)]
	for i := range l.c.items {
		r := &l.c.items[i]
		if r.owner != "any" && r.owner != ownerSide {
			continue
		}
		if r.afterWin && !afterWin {
			continue
		}
		if byKind {
			if !r.kinds[kind] && !r.kinds[strings.ToLower(kind)] {
				continue
			}
		} else if !matchAny(r.keywords, text) {
			continue
		}
		dst = appendStep(dst, r.step)
	}
	return dst
}

func appendStep(dst []int, s int) []int {
	for _, x := range dst {
		if x == s {
			return dst
		}
	}
	return append(dst, s)
}

// MarshalJSON encodes the normalized configuration.
func (l *Ladder) MarshalJSON() ([]byte, error) {
	type plain Ladder
	return json.Marshal((*plain)(l))
}

// hash returns a short hash of the normalized configuration without its
// version.
func (l *Ladder) hash() string {
	type plain Ladder
	cp := *(*plain)(l)
	cp.Version = ""
	data, err := json.Marshal(cp)
	if err != nil { // cannot happen: plain data
		panic(err)
	}
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:6])
}
