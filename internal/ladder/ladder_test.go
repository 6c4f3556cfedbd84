package ladder

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ladderschema "github.com/commitflow/commitflow/schemas/ladder"
)

func TestDefault(t *testing.T) {
	l := Default()
	var keys []string
	for _, s := range l.Steps {
		keys = append(keys, s.Key)
	}
	want := []string{"time", "explore", "change", "collaborate", "build_consensus", "invest", "review", "resolve_concerns", "decide", "execute"}
	if !slices.Equal(keys, want) {
		t.Fatalf("steps = %v", keys)
	}
	if l.Index("time") != 1 || l.Index("execute") != 10 || l.Index("nope") != 0 || l.Key(3) != "change" || l.Key(11) != "" {
		t.Error("Index/Key wrong")
	}
	if l.StallAfter(l.Index("execute")) != 0 || l.StallAfter(1) != 14*24*time.Hour {
		t.Error("stall thresholds wrong")
	}
	if !strings.HasPrefix(l.Version, "sha256:") || l.Version != Default().Version {
		t.Errorf("version %q not a stable hash", l.Version)
	}
	if l.Consensus.Stakeholders != 3 || l.OverdueGrace() != 48*time.Hour || l.Followup() != 48*time.Hour {
		t.Error("defaults wrong")
	}
}

func TestStageStep(t *testing.T) {
	l := Default()
	tests := []struct {
		pipeline, stage string
		step            string
		known           bool
	}{
		{"", "Prospecting", "", true},
		{"", "Qualification", "explore", true},
		{"", "needs analysis", "change", true},
		{"", "Value Proposition", "collaborate", true},
		{"", "Id. Decision Makers", "build_consensus", true},
		{"", "Perception Analysis", "invest", true},
		{"", "Proposal/Price Quote", "review", true},
		{"", "NEGOTIATION/REVIEW", "resolve_concerns", true},
		{"", "Closed Won", "decide", true},
		{"", "Closed Lost", "", true},
		{"default", "appointmentscheduled", "time", true},
		{"default", "qualifiedtobuy", "change", true},
		{"default", "presentationscheduled", "collaborate", true},
		{"default", "decisionmakerboughtin", "build_consensus", true},
		{"default", "ContractSent", "review", true},
		{"default", "closedwon", "decide", true},
		{"default", "closedlost", "", true},
		{"", "Something Else", "", false},
	}
	for _, tc := range tests {
		step, known := l.StageStep(tc.pipeline, tc.stage)
		if l.Key(step) != tc.step || known != tc.known {
			t.Errorf("StageStep(%q, %q) = %q, %v; want %q, %v", tc.pipeline, tc.stage, l.Key(step), known, tc.step, tc.known)
		}
	}
	if !l.IsWonStage("closed won") || !l.IsLostStage("ClosedLost") || l.IsWonStage("Negotiation/Review") {
		t.Error("won/lost stages wrong")
	}
}

func TestPerPipelineStages(t *testing.T) {
	l, err := Parse("p.yaml", []byte(`
steps: [{key: a}, {key: b}]
pipelines:
  - {pipeline: Enterprise, stages: {Intro: a, Deal: b}}
  - {stages: {Intro: b}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := l.StageStep("enterprise", "intro"); s != 1 {
		t.Errorf("pipeline-specific stage = %d", s)
	}
	if s, _ := l.StageStep("smb", "Intro"); s != 2 {
		t.Errorf("fallback stage = %d", s)
	}
	if _, known := l.StageStep("smb", "Deal"); known {
		t.Error("stage of another pipeline known")
	}
}

func keysOf(l *Ladder, steps []int) []string {
	var out []string
	for _, s := range steps {
		out = append(out, l.Key(s))
	}
	return out
}

func TestMatchActivity(t *testing.T) {
	l := Default()
	tests := []struct {
		in   Interaction
		want []string
	}{
		{Interaction{Kind: "call", Subject: "Discovery call", BuyerPresent: true}, []string{"time", "explore"}},
		{Interaction{Kind: "call", Subject: "Discovery call"}, nil}, // no buyer
		{Interaction{Kind: "meeting", Subject: "Technical Deep-Dive", BuyerPresent: true}, []string{"time", "collaborate"}},
		{Interaction{Kind: "meeting", Status: "scheduled", Subject: "Discovery", BuyerPresent: true}, nil},
		{Interaction{Kind: "email", Subject: "Proposal attached"}, []string{"review"}},
		{Interaction{Kind: "email", Subject: "Proposals"}, nil}, // whole words only
		{Interaction{Kind: "meeting", Subject: "Kickoff", BuyerPresent: true}, []string{"time"}},
		{Interaction{Kind: "meeting", Subject: "Kickoff", BuyerPresent: true, AfterWin: true}, []string{"time", "execute"}},
		{Interaction{Kind: "note", Subject: "negotiation notes"}, nil},
		{Interaction{Kind: "Meeting", Subject: "Legal   review of MSA", BuyerPresent: true}, []string{"time", "resolve_concerns"}},
	}
	for _, tc := range tests {
		got := keysOf(l, l.MatchActivity(nil, tc.in))
		if !slices.Equal(got, tc.want) {
			t.Errorf("MatchActivity(%+v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestMatchActionItem(t *testing.T) {
	l := Default()
	tests := []struct {
		kind, text, owner string
		afterWin          bool
		want              []string
	}{
		{"share_data", "anything", "buyer", false, []string{"explore"}},
		{"send_info", "Send over the org chart", "buyer", false, []string{"explore"}},
		{"define_success_criteria", "", "buyer", false, []string{"change"}},
		{"technical_deep_dive", "", "buyer", false, []string{"collaborate"}},
		{"intro_stakeholder", "", "buyer", false, []string{"build_consensus"}},
		{"budget_confirmation", "", "buyer", false, []string{"invest"}},
		{"pilot", "", "buyer", false, []string{"invest"}},
		{"proposal_review", "", "buyer", false, []string{"review"}},
		{"security_review", "", "buyer", false, []string{"resolve_concerns"}},
		{"legal_review", "", "buyer", false, []string{"resolve_concerns"}},
		{"procurement", "", "buyer", false, []string{"resolve_concerns"}},
		{"sign_contract", "", "buyer", false, []string{"decide"}},
		{"kickoff", "", "buyer", false, nil},
		{"kickoff", "", "buyer", true, []string{"execute"}},
		{"PILOT", "", "buyer", false, []string{"invest"}},
		{"pilot", "", "seller", false, nil},
		{"send_info", "Send the deck", "seller", false, nil},
		{"schedule_meeting", "Book the workshop", "buyer", false, []string{"collaborate"}}, // unlisted kind: keywords
		{"", "Will loop in the CFO and confirm budget", "buyer", false, []string{"build_consensus", "invest"}},
		{"", "Follow up next week", "buyer", false, nil},
		{"share_data", "review the proposal", "buyer", false, []string{"explore"}}, // kind wins over keywords
	}
	for _, tc := range tests {
		got := keysOf(l, l.MatchActionItem(nil, tc.kind, tc.text, tc.owner, tc.afterWin))
		if !slices.Equal(got, tc.want) {
			t.Errorf("MatchActionItem(%q, %q, %s) = %v, want %v", tc.kind, tc.text, tc.owner, got, tc.want)
		}
	}
	if !l.IsNoDecisionReason("No Decision / Status Quo") || !l.IsNoDecisionReason("no_decision") || l.IsNoDecisionReason("Price") {
		t.Error("no-decision reasons wrong")
	}
	if !l.IsConsensusRole("Economic Buyer") || l.IsConsensusRole("") || l.IsConsensusRole("Janitor") {
		t.Error("consensus roles wrong")
	}
}

func TestMatchAny(t *testing.T) {
	kws := keywords([]string{"poc", "kick-off", "proof of concept", "café", "deep dive"})
	tests := []struct {
		text string
		want bool
	}{
		{"POC next week", true},
		{"epoch", false},
		{"pocket", false},
		{"(poc)", true},
		{"Kick-Off call", true},
		{"kick off", false},
		{"Deep-dive", true},
		{"a Proof  of\tconcept", true},
		{"proof of concepts", false},
		{"Le Café", true},
		{"", false},
	}
	for _, tc := range tests {
		if got := matchAny(kws, tc.text); got != tc.want {
			t.Errorf("matchAny(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

func TestShortCustomLadder(t *testing.T) {
	l, err := Parse("short.yaml", []byte(`
version: "2"
steps:
  - key: meet
    stall_after_days: 7.5
  - key: buy
activities:
  - {step: meet, kinds: [call, meeting]}
won_step: buy
`))
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 2 || l.Version != "2" || l.StallAfter(1) != 180*time.Hour || l.Steps[1].Title != "buy" {
		t.Errorf("ladder = %+v", l)
	}
	if l.Consensus.Step != "" || l.SingleThreadedFrom != "" {
		t.Error("absent rules should stay off")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"empty", ``, "x.yaml: empty ladder file"},
		{"syntax", "steps:\n - key: a\n  x: [\n", "x.yaml:1: did not find expected"},
		{"not a mapping", "- a\n", "x.yaml:1: must be a mapping"},
		{"no steps", "version: x\n", "x.yaml:1: steps: missing"},
		{"empty steps", "steps: []\n", "x.yaml:1: steps: a ladder needs at least one step"},
		{"duplicate step", "steps:\n  - key: time\n  - key: review\n  - key: x\n  - key: review\n", `x.yaml:5: steps[3].key: duplicate step key "review"`},
		{"bad key", "steps:\n  - key: Time\n", `x.yaml:2: steps[0].key: "Time" must be`},
		{"unknown field", "steps:\n  - key: a\n    stall: 3\n", `x.yaml:3: steps[0].stall: unknown field`},
		{"unknown top field", "steps: [{key: a}]\nladder: 1\n", `x.yaml:2: ladder: unknown field`},
		{"negative stall", "steps:\n  - key: a\n    stall_after_days: -1\n", `x.yaml:3: steps[0].stall_after_days: must be a number between`},
		{"string stall", "steps:\n  - key: a\n    stall_after_days: '3'\n", `x.yaml:3: steps[0].stall_after_days: must be a number`},
		{"stage to unknown step", "steps: [{key: a}]\npipelines:\n  - stages:\n      Won: zz\n", `x.yaml:4: pipelines[0].stages["Won"]: unknown step "zz" (want none or one of a)`},
		{"duplicate stage", "steps: [{key: a}]\npipelines:\n  - stages: {X: a}\n  - stages:\n      x: a\n", `x.yaml:5: pipelines[1].stages["x"]: duplicate stage "x" in pipeline "*" (first at line 3)`},
		{"activity unknown step", "steps: [{key: a}]\nactivities:\n  - step: b\n", `x.yaml:3: activities[0].step: unknown step "b"`},
		{"activity bad kind", "steps: [{key: a}]\nactivities:\n  - step: a\n    kinds: [meeting, lunch]\n", `x.yaml:4: activities[0].kinds[1]: unknown activity kind "lunch"`},
		{"activity bad status", "steps: [{key: a}]\nactivities:\n  - {step: a, status: done}\n", `activities[0].status: must be completed, scheduled or any`},
		{"item without match", "steps: [{key: a}]\naction_items:\n  - step: a\n", `x.yaml:3: action_items[0]: a rule needs kinds or keywords`},
		{"item bad owner", "steps: [{key: a}]\naction_items:\n  - {step: a, kinds: [x], owner: nobody}\n", `action_items[0].owner: must be buyer, seller or any`},
		{"consensus unknown step", "steps: [{key: a}]\nconsensus:\n  step: build_consensus\n", `x.yaml:3: consensus.step: unknown step "build_consensus"`},
		{"consensus zero", "steps: [{key: a}]\nconsensus: {stakeholders: 0}\n", `consensus.stakeholders: must be between 1 and 1000`},
		{"won step unknown", "steps: [{key: a}]\nwon_step: decide\n", `x.yaml:2: won_step: unknown step "decide"`},
		{"no decision step unknown", "steps: [{key: a}]\nno_decision: {step: change}\n", `no_decision.step: unknown step "change"`},
		{"alias", "steps: [{key: a}]\nx: &x 1\nwon_step: *x\n", `x.yaml:2: x: unknown field`},
		{"alias value", "steps: &s [{key: a}]\nlost_stages: *s\n", `lost_stages: aliases are not supported`},
		{"field twice", "steps: [{key: a}]\nwon_step: a\nwon_step: a\n", `won_step: `},
		{"bad bool", "steps: [{key: a}]\nactivities: [{step: a, after_win: yes}]\n", `activities[0].after_win: must be true or false`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("accepted, want error %q", tc.want)
			}
			var le *Error
			if !errors.As(err, &le) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ladder.yaml")
	if err := os.WriteFile(path, []byte(ladderschema.DefaultYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if l.Version != Default().Version {
		t.Error("loaded default differs from embedded default")
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}

// TestJSONRoundTrip: the JSON the show command prints parses back as a
// ladder (YAML is a superset of JSON) with the same version.
func TestJSONRoundTrip(t *testing.T) {
	l := Default()
	data, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("show.json", data)
	if err != nil {
		t.Fatal(err)
	}
	if back.Version != l.Version {
		t.Errorf("version %s, want %s", back.Version, l.Version)
	}
	back.Version = ""
	if back.hash() != l.hash() {
		t.Error("normalized configuration changed in the round trip")
	}
}

func TestSchemaIsJSON(t *testing.T) {
	var v map[string]any
	if err := json.Unmarshal([]byte(ladderschema.SchemaJSON), &v); err != nil {
		t.Fatalf("schema: %v", err)
	}
	props := v["properties"].(map[string]any)
	// Every top-level field the parser accepts is in the schema.
	for _, f := range []string{"version", "steps", "pipelines", "won_stages", "lost_stages", "activities", "action_items",
		"consensus", "won_step", "single_threaded_from", "no_decision", "overdue_grace_days", "followup_hours"} {
		if props[f] == nil {
			t.Errorf("schema lacks %s", f)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(ladderschema.DefaultYAML))
	f.Add([]byte("steps: [{key: a}]\n"))
	f.Add([]byte("steps:\n  - key: a\n  - key: a\n"))
	f.Add([]byte("steps: [{key: a}]\npipelines: [{stages: {X: a, Y: none}}]\nactivities: [{step: a, keywords: [x]}]\n"))
	f.Add([]byte("{steps: [{key: a, stall_after_days: 1e400}]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse("fuzz.yaml", data)
		if err != nil {
			var le *Error
			if !errors.As(err, &le) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			return
		}
		if l.Len() == 0 || l.Version == "" {
			t.Fatalf("accepted a ladder without steps or version")
		}
		for i, s := range l.Steps {
			if l.Index(s.Key) != i+1 {
				t.Fatalf("Index(%q) = %d, want %d", s.Key, l.Index(s.Key), i+1)
			}
		}
		// Lookups never panic on accepted ladders.
		l.MatchActivity(nil, Interaction{Kind: "call", Subject: "discovery", BuyerPresent: true})
		l.MatchActionItem(nil, "pilot", "budget", "buyer", true)
		l.StageStep("p", "Qualification")
	})
}

// TestDefaultHubSpotLabels: the default ladder maps HubSpot's default
// pipeline by its stage labels (what a deals export with the pipelines
// file gives) as it does by the internal ids (what webhooks give), and
// closes deals at both spellings of the closed stages.
func TestDefaultHubSpotLabels(t *testing.T) {
	l := Default()
	for id, label := range map[string]string{
		"appointmentscheduled":  "Appointment Scheduled",
		"qualifiedtobuy":        "Qualified To Buy",
		"presentationscheduled": "Presentation Scheduled",
		"decisionmakerboughtin": "Decision Maker Bought-In",
		"contractsent":          "Contract Sent",
		"closedwon":             "Closed Won",
		"closedlost":            "Closed Lost",
	} {
		si, ki := l.StageStep("default", id)
		sl, kl := l.StageStep("default", label)
		if !ki || !kl || si != sl {
			t.Errorf("%s: step %d (known %v), label %q: step %d (known %v)", id, si, ki, label, sl, kl)
		}
	}
	for _, s := range []string{"closedwon", "Closed Won"} {
		if !l.IsWonStage(s) {
			t.Errorf("%q does not win", s)
		}
	}
	for _, s := range []string{"closedlost", "Closed Lost"} {
		if !l.IsLostStage(s) {
			t.Errorf("%q does not lose", s)
		}
	}
}
