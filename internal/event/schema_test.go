package event_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/commitflow/commitflow/internal/event"
	eventschema "github.com/commitflow/commitflow/schemas/events"
)

// The JSON Schema files in schemas/events must describe internal/event
// exactly. These tests check, for every event type: that the schema names
// the same JSON properties as the Go structs (both ways, nested structs
// included); that a property is required in the schema exactly when Parse
// refuses an event without it; and that for a range of probe values the
// schema accepts a property's value exactly when Parse does. Schema
// keywords are evaluated by a small checker for the subset the files use.

type schemaNode = map[string]any

// schemas loads every file of eventschema.FS by name.
func schemas(t *testing.T) map[string]schemaNode {
	t.Helper()
	out := map[string]schemaNode{}
	names, err := fs.Glob(eventschema.FS, "*.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		b, err := fs.ReadFile(eventschema.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		var n schemaNode
		if err := json.Unmarshal(b, &n); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema is %v, want draft 2020-12", name, n["$schema"])
		}
		if id, _ := n["$id"].(string); !strings.HasSuffix(id, "/"+name) {
			t.Errorf("%s: $id %q does not end in the file name", name, id)
		}
		out[name] = n
	}
	if len(out) == 0 {
		t.Fatal("no schema files embedded")
	}
	return out
}

// schemaSet resolves $refs between the files.
type schemaSet struct {
	t     *testing.T
	files map[string]schemaNode
	used  map[string]bool
}

// resolve follows ref, relative to file, to its file and node.
func (s *schemaSet) resolve(file, ref string) (string, schemaNode) {
	s.t.Helper()
	target, frag, _ := strings.Cut(ref, "#")
	if target == "" {
		target = file
	}
	n, ok := s.files[target]
	if !ok {
		s.t.Fatalf("%s: $ref %q: no file %s", file, ref, target)
	}
	s.used[target] = true
	for _, part := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		if part == "" {
			continue
		}
		next, ok := n[part].(schemaNode)
		if !ok {
			s.t.Fatalf("%s: $ref %q: no %q", file, ref, part)
		}
		n = next
	}
	return target, n
}

// deref follows n's $ref chain, if any. Sibling keywords of a $ref are
// kept by returning both as an allOf.
func (s *schemaSet) deref(file string, n schemaNode) (string, schemaNode) {
	for {
		ref, ok := n["$ref"].(string)
		if !ok {
			return file, n
		}
		if len(n) > 1 {
			return file, n // checked by accepts, which handles $ref with siblings
		}
		file, n = s.resolve(file, ref)
	}
}

// jsonFields returns the JSON property names of struct type rt.
func jsonFields(rt reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range rt.NumField() {
		f := rt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

// checkObject compares the properties of struct type rt with the object
// schema n, descending into nested structs.
func (s *schemaSet) checkObject(path string, rt reflect.Type, file string, n schemaNode) {
	t := s.t
	t.Helper()
	file, n = s.deref(file, n)
	if n["type"] != "object" {
		t.Errorf("%s (%s): type is %v, want object", path, file, n["type"])
	}
	if n["additionalProperties"] != false {
		t.Errorf("%s (%s): additionalProperties must be false: Parse refuses unknown fields", path, file)
	}
	props, _ := n["properties"].(schemaNode)
	fields := jsonFields(rt)
	for name := range fields {
		if _, ok := props[name]; !ok {
			t.Errorf("%s (%s): Go field %s.%s (%q) is missing from the schema", path, file, rt.Name(), fields[name].Name, name)
		}
	}
	for name := range props {
		if _, ok := fields[name]; !ok {
			t.Errorf("%s (%s): schema property %q has no Go field in %s", path, file, name, rt.Name())
		}
	}
	req, _ := n["required"].([]any)
	for _, r := range req {
		if _, ok := props[r.(string)]; !ok {
			t.Errorf("%s (%s): required %q is not a property", path, file, r)
		}
	}
	for name, f := range fields {
		p, ok := props[name].(schemaNode)
		if !ok {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			pf, pn := s.deref(file, p)
			items, ok := pn["items"].(schemaNode)
			if pn["type"] != "array" || !ok {
				t.Errorf("%s.%s (%s): want an array with items", path, name, pf)
				continue
			}
			s.checkObject(path+"."+name+"[]", ft.Elem(), pf, items)
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]():
			s.checkObject(path+"."+name, ft, file, p)
		}
	}
}

// envelopeBranch returns the allOf branch of the envelope for typ: the
// then-schema of the if that names it.
func envelopeBranch(t *testing.T, env schemaNode, typ event.Type) schemaNode {
	t.Helper()
	all, _ := env["allOf"].([]any)
	var found schemaNode
	for _, b := range all {
		br := b.(schemaNode)
		c := br["if"].(schemaNode)["properties"].(schemaNode)["type"].(schemaNode)["const"]
		if c == string(typ) {
			if found != nil {
				t.Fatalf("envelope: two branches for %s", typ)
			}
			found = br["then"].(schemaNode)
		}
	}
	if found == nil {
		t.Fatalf("envelope: no allOf branch for type %s", typ)
	}
	return found
}

func TestSchemaCoversTypes(t *testing.T) {
	s := &schemaSet{t: t, files: schemas(t), used: map[string]bool{"envelope.schema.json": true}}
	env := s.files["envelope.schema.json"]
	if env == nil {
		t.Fatal("no envelope.schema.json")
	}
	s.checkObject("envelope", reflect.TypeFor[event.Event](), "envelope.schema.json", env)

	var enum []string
	for _, v := range env["properties"].(schemaNode)["type"].(schemaNode)["enum"].([]any) {
		enum = append(enum, v.(string))
	}
	var types []string
	for _, typ := range event.Types {
		types = append(types, string(typ))
	}
	sort.Strings(enum)
	sort.Strings(types)
	if !slices.Equal(enum, types) {
		t.Errorf("envelope type enum %v, want event.Types %v", enum, types)
	}
	if n := len(env["allOf"].([]any)); n != len(event.Types) {
		t.Errorf("envelope has %d type branches, want %d", n, len(event.Types))
	}

	for _, typ := range event.Types {
		br := envelopeBranch(t, env, typ)
		ref, _ := br["properties"].(schemaNode)["payload"].(schemaNode)["$ref"].(string)
		if ref == "" {
			t.Errorf("%s: branch has no payload $ref", typ)
			continue
		}
		file, n := s.resolve("envelope.schema.json", ref)
		s.checkObject(string(typ)+" payload", reflect.TypeOf(event.NewPayload(typ)).Elem(), file, n)

		// opportunity_id is required exactly for the types whose events
		// Validate refuses without one.
		ev := sample(typ)
		ev.OpportunityID = ""
		goNeeds := ev.Validate() != nil
		req, _ := br["required"].([]any)
		if schemaNeeds := slices.Contains(req, any("opportunity_id")); schemaNeeds != goNeeds {
			t.Errorf("%s: schema requires opportunity_id: %v, Validate: %v", typ, schemaNeeds, goNeeds)
		}
	}
	// Every file other than the envelope is referenced from another one.
	var scan func(file string, x any)
	scan = func(file string, x any) {
		switch x := x.(type) {
		case schemaNode:
			if ref, ok := x["$ref"].(string); ok {
				if target, _, _ := strings.Cut(ref, "#"); target != "" && target != file {
					s.used[target] = true
				}
			}
			for _, v := range x {
				scan(file, v)
			}
		case []any:
			for _, v := range x {
				scan(file, v)
			}
		}
	}
	for name, f := range s.files {
		scan(name, f)
	}
	for name := range s.files {
		if !s.used[name] {
			t.Errorf("%s is not referenced from any other schema file", name)
		}
	}
}

// leaf is one property of a sample event's JSON: where it sits and the
// schema that describes it.
type leaf struct {
	path     string // "payload.participants[0].side"
	keys     []any  // path into the decoded JSON
	file     string // schema file of the enclosing object
	node     schemaNode
	required bool
}

// leaves lists the properties of ev's JSON (envelope, payload and the
// first element of nested arrays) with their schemas.
func leaves(t *testing.T, s *schemaSet, typ event.Type, doc schemaNode) []leaf {
	t.Helper()
	env := s.files["envelope.schema.json"]
	br := envelopeBranch(t, env, typ)
	var out []leaf
	var walk func(prefix string, keys []any, file string, obj schemaNode, val schemaNode, extraReq []any, extraProps schemaNode)
	walk = func(prefix string, keys []any, file string, obj schemaNode, val schemaNode, extraReq []any, extraProps schemaNode) {
		file, obj = s.deref(file, obj)
		props := obj["properties"].(schemaNode)
		req, _ := obj["required"].([]any)
		req = append(slices.Clone(req), extraReq...)
		for name, v := range val {
			p, ok := props[name].(schemaNode)
			if !ok {
				t.Errorf("%s%s: not in the schema", prefix, name)
				continue
			}
			path := prefix + name
			k := append(slices.Clone(keys), name)
			node := p
			if extra, ok := extraProps[name].(schemaNode); ok && name != "payload" {
				node = schemaNode{"allOf": []any{p, extra}}
			}
			switch v := v.(type) {
			case schemaNode:
				ep, ok := extraProps[name].(schemaNode)
				if !ok {
					break // a map (attributes): a leaf
				}
				f, n := s.resolve(file, ep["$ref"].(string))
				walk(path+".", k, f, n, v, nil, nil)
				continue
			case []any:
				if len(v) > 0 {
					if first, ok := v[0].(schemaNode); ok {
						pf, pn := s.deref(file, p)
						walk(path+"[0].", append(k, 0), pf, pn["items"].(schemaNode), first, nil, nil)
					}
				}
			}
			out = append(out, leaf{path: path, keys: k, file: file, node: node, required: slices.Contains(req, any(name))})
		}
	}
	reqBr, _ := br["required"].([]any)
	walk("", nil, "envelope.schema.json", env, doc, reqBr, br["properties"].(schemaNode))
	return out
}

func sampleDoc(t *testing.T, typ event.Type) schemaNode {
	t.Helper()
	b, err := event.Marshal(sample(typ))
	if err != nil {
		t.Fatal(err)
	}
	var doc schemaNode
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// edit returns a copy of doc with the value at keys replaced by v, or
// removed if del.
func edit(doc schemaNode, keys []any, v any, del bool) schemaNode {
	b, _ := json.Marshal(doc)
	var out schemaNode
	_ = json.Unmarshal(b, &out)
	var cur any = out
	for i, k := range keys {
		last := i == len(keys)-1
		switch c := cur.(type) {
		case schemaNode:
			if last {
				if del {
					delete(c, k.(string))
				} else {
					c[k.(string)] = v
				}
				return out
			}
			cur = c[k.(string)]
		case []any:
			cur = c[k.(int)]
		}
	}
	return out
}

func parseDoc(t *testing.T, doc schemaNode) error {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = event.Parse(b)
	return err
}

func TestSchemaRequiredMatchesValidation(t *testing.T) {
	s := &schemaSet{t: t, files: schemas(t), used: map[string]bool{}}
	for _, typ := range event.Types {
		doc := sampleDoc(t, typ)
		for _, l := range leaves(t, s, typ, doc) {
			err := parseDoc(t, edit(doc, l.keys, nil, true))
			if refused := err != nil; refused != l.required {
				t.Errorf("%s without %s: Parse error %v, but the schema says required=%v", typ, l.path, err, l.required)
				continue
			}
			var fe *event.FieldError
			if err != nil && (!errors.As(err, &fe) || fe.Field != l.path) {
				t.Errorf("%s without %s: error %v does not name the field", typ, l.path, err)
			}
		}
	}
}

// probes are values tried in every property of their JSON kind.
var (
	stringProbes = []string{
		"", " ", "x", "acme", "Not valid!", "buyer", "seller", "Buyer", "meeting", "lunch", "completed", "scheduled",
		"2026-01-02", "2026-02-30", "2026-1-2", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05+05:30", "2026-01-02 03:04",
		"opportunity.created", strings.Repeat("a", 64), strings.Repeat("a", 65), strings.Repeat("x", 300),
		// The edges of the range of years of dates and timestamps.
		"1900-01-01", "1970-12-31", "1971-01-01", "2105-12-31", "2106-01-01",
		"1970-12-31T23:59:59Z", "1971-01-01T00:00:00+14:00", "2105-12-31T23:59:59-12:00", "2106-01-01T00:00:00Z",
		"0001-01-01T00:00:00Z",
	}
	numberProbes = []float64{-1, -0.5, 0, 0.5, 1, 1.5, 2, 1e9}
	// activityKinds are the kinds Activity.Validate accepts.
	activityKinds = []string{event.ActivityMeeting, event.ActivityEmail, event.ActivityTask, event.ActivityNote, event.ActivityCall}
)

func TestSchemaValuesMatchValidation(t *testing.T) {
	s := &schemaSet{t: t, files: schemas(t), used: map[string]bool{}}
	for _, typ := range event.Types {
		doc := sampleDoc(t, typ)
		for _, l := range leaves(t, s, typ, doc) {
			if l.path == "type" {
				continue // covered by TestSchemaCoversTypes: it picks the payload
			}
			var orig any = doc
			for _, k := range l.keys {
				switch c := orig.(type) {
				case schemaNode:
					orig = c[k.(string)]
				case []any:
					orig = c[k.(int)]
				}
			}
			var probes []any
			switch orig.(type) {
			case string:
				for _, p := range stringProbes {
					probes = append(probes, p)
				}
				for _, p := range activityKinds {
					probes = append(probes, p)
				}
			case float64:
				for _, p := range numberProbes {
					probes = append(probes, p)
				}
			case schemaNode:
				for _, p := range mapProbes() {
					probes = append(probes, p)
				}
			default:
				continue
			}
			for _, p := range probes {
				goOK := parseDoc(t, edit(doc, l.keys, p, false)) == nil
				schemaOK := s.accepts(l.file, l.node, p)
				if goOK != schemaOK {
					t.Errorf("%s: %s = %#v: Parse accepts: %v, schema accepts: %v", typ, l.path, p, goOK, schemaOK)
				}
			}
		}
	}
}

// accepts evaluates the subset of JSON Schema the files use against a
// string or number value.
func (s *schemaSet) accepts(file string, n schemaNode, v any) bool {
	if ref, ok := n["$ref"].(string); ok {
		f, target := s.resolve(file, ref)
		if !s.accepts(f, target, v) {
			return false
		}
	}
	if all, ok := n["allOf"].([]any); ok {
		for _, sub := range all {
			if !s.accepts(file, sub.(schemaNode), v) {
				return false
			}
		}
	}
	if anyOf, ok := n["anyOf"].([]any); ok {
		ok := false
		for _, sub := range anyOf {
			ok = ok || s.accepts(file, sub.(schemaNode), v)
		}
		if !ok {
			return false
		}
	}
	if c, ok := n["const"]; ok && c != v {
		return false
	}
	if enum, ok := n["enum"].([]any); ok && !slices.Contains(enum, v) {
		return false
	}
	if typ, ok := n["type"].(string); ok {
		switch v := v.(type) {
		case string:
			if typ != "string" {
				return false
			}
		case float64:
			if typ != "number" && !(typ == "integer" && v == math.Trunc(v)) {
				return false
			}
		}
	}
	switch v := v.(type) {
	case schemaNode: // a map of strings (attributes)
		if typ, ok := n["type"].(string); ok && typ != "object" {
			return false
		}
		if m, ok := n["maxProperties"].(float64); ok && len(v) > int(m) {
			return false
		}
		names, _ := n["propertyNames"].(schemaNode)
		values, _ := n["additionalProperties"].(schemaNode)
		for k, x := range v {
			if names != nil && !s.accepts(file, names, k) || values != nil && !s.accepts(file, values, x) {
				return false
			}
		}
	case string:
		if m, ok := n["minLength"].(float64); ok && utf8.RuneCountInString(v) < int(m) {
			return false
		}
		if m, ok := n["maxLength"].(float64); ok && utf8.RuneCountInString(v) > int(m) {
			return false
		}
		if p, ok := n["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(v) {
			return false
		}
		switch n["format"] {
		case "date":
			if _, err := time.Parse(time.DateOnly, v); err != nil {
				return false
			}
		case "date-time":
			if _, err := time.Parse(time.RFC3339, v); err != nil {
				return false
			}
		}
	case float64:
		if m, ok := n["minimum"].(float64); ok && v < m {
			return false
		}
		if m, ok := n["maximum"].(float64); ok && v > m {
			return false
		}
	}
	return true
}

// TestSchemaKeywordsKnown makes sure the files use only keywords that the
// checker above evaluates (or that only annotate), so the value test covers
// every constraint.
func TestSchemaKeywordsKnown(t *testing.T) {
	known := map[string]bool{}
	for _, k := range strings.Fields(`$schema $id $defs $ref title description examples type properties required
		additionalProperties items minItems allOf anyOf if then const enum minLength maxLength pattern format minimum maximum
		maxProperties propertyNames`) {
		known[k] = true
	}
	// visit walks a schema; the keys of "properties" and "$defs" maps are
	// names, not keywords.
	var visit func(file string, x any, names bool)
	visit = func(file string, x any, names bool) {
		switch x := x.(type) {
		case schemaNode:
			for k, v := range x {
				if !names && !known[k] {
					t.Errorf("%s: keyword %q is not evaluated by the test checker", file, k)
				}
				if !names && k == "examples" {
					continue
				}
				visit(file, v, !names && (k == "properties" || k == "$defs"))
			}
		case []any:
			for _, v := range x {
				visit(file, v, false)
			}
		}
	}
	for name, f := range schemas(t) {
		visit(name, f, false)
	}
}

// mapProbes are values for the maps of strings (attributes).
func mapProbes() []schemaNode {
	many := schemaNode{}
	for i := range event.MaxAttributes + 1 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	full := schemaNode{}
	for i := range event.MaxAttributes {
		full[fmt.Sprintf("k%d", i)] = "v"
	}
	return []schemaNode{
		{}, {"region": "EMEA"}, {"region": ""}, {"Region": "x"}, {"": "x"}, {"1st": "x"}, {"a-b": "x"},
		{strings.Repeat("a", 40): "x"}, {strings.Repeat("a", 41): "x"},
		{"region": strings.Repeat("x", event.MaxAttributeValue)}, {"region": strings.Repeat("x", event.MaxAttributeValue+1)},
		full, many,
	}
}
