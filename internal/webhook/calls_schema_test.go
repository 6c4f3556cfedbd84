package webhook

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	callschema "github.com/commitflow/commitflow/schemas/calls"
)

// TestCallSchema keeps schemas/calls/call_record.schema.json and the Go
// types alike: the same properties at every level, closed objects (as the
// mapping refuses unknown fields), the fields required that the mapping
// refuses a record without, and the sides the mapping takes.
func TestCallSchema(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(callschema.Schema, &schema); err != nil {
		t.Fatal(err)
	}
	defs, _ := schema["$defs"].(map[string]any)
	def := func(name string) map[string]any { d, _ := defs[name].(map[string]any); return d }
	for _, c := range []struct {
		name     string
		node     map[string]any
		typ      reflect.Type
		required []string
	}{
		{"record", schema, reflect.TypeFor[callRecord](), []string{"id", "participants", "started_at"}},
		{"participant", def("participant"), reflect.TypeFor[callParticipant](), nil},
		{"next_step", def("next_step"), reflect.TypeFor[callNextStep](), []string{"text"}},
	} {
		if c.node["additionalProperties"] != false {
			t.Errorf("%s: additionalProperties is not false", c.name)
		}
		props, _ := c.node["properties"].(map[string]any)
		var inSchema, inGo []string
		for p := range props {
			inSchema = append(inSchema, p)
		}
		for i := range c.typ.NumField() {
			inGo = append(inGo, strings.Split(c.typ.Field(i).Tag.Get("json"), ",")[0])
		}
		sort.Strings(inSchema)
		sort.Strings(inGo)
		if !slices.Equal(inSchema, inGo) {
			t.Errorf("%s: schema properties %v, Go fields %v", c.name, inSchema, inGo)
		}
		var req []string
		for _, r := range asSlice(c.node["required"]) {
			req = append(req, r.(string))
		}
		sort.Strings(req)
		if !slices.Equal(req, c.required) {
			t.Errorf("%s: required %v, want %v", c.name, req, c.required)
		}
	}
	for _, s := range asSlice(def("side")["enum"]) {
		if _, err := (CallRecords{}).side(s.(string), ""); err != nil {
			t.Errorf("side %q of the schema: %v", s, err)
		}
	}
}

func asSlice(v any) []any { s, _ := v.([]any); return s }
