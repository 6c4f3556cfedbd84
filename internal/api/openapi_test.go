package api

import (
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/param"
	apischema "github.com/commitflow/commitflow/schemas/api"
)

// openAPIDoc parses the embedded OpenAPI document.
func openAPIDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(apischema.OpenAPIYAML), &doc); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.0") {
		t.Fatalf("openapi version %q, want 3.0.x", v)
	}
	return doc
}

func mapAt(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		next, _ := m[k].(map[string]any)
		m = next
	}
	return m
}

// resolve follows a local $ref.
func resolve(t *testing.T, doc, node map[string]any) map[string]any {
	t.Helper()
	for node != nil {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		if !strings.HasPrefix(ref, "#/") {
			t.Fatalf("non-local $ref %q", ref)
		}
		next := mapAt(doc, strings.Split(strings.TrimPrefix(ref, "#/"), "/")...)
		if next == nil {
			t.Fatalf("dangling $ref %q", ref)
		}
		node = next
	}
	return node
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := openAPIDoc(t)
	documented := map[string]bool{}
	for path, item := range mapAt(doc, "paths") {
		for method := range item.(map[string]any) {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	s := &server{cfg: Config{}}
	registered := map[string]bool{}
	for _, rt := range s.routes() {
		registered[rt.pattern] = true
	}
	for r := range registered {
		if !documented[r] {
			t.Errorf("route %q is not in openapi.yaml", r)
		}
	}
	for d := range documented {
		if !registered[d] {
			t.Errorf("openapi.yaml documents %q, which the handler does not serve", d)
		}
	}
}

func TestOpenAPIParametersMatchEndpoints(t *testing.T) {
	doc := openAPIDoc(t)
	for _, e := range Endpoints() {
		op := mapAt(doc, "paths", e.Path, "get")
		if op == nil {
			t.Errorf("%s: no GET in openapi.yaml", e.Path)
			continue
		}
		var got []string
		for _, p := range op["parameters"].([]any) {
			got = append(got, resolve(t, doc, p.(map[string]any))["name"].(string))
		}
		want := []string{"tenant"}
		for _, p := range append(e.Params, FormatParams()...) {
			want = append(want, p.Name)
		}
		sort.Strings(got)
		sort.Strings(want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: openapi parameters %v, handler parameters %v", e.Path, got, want)
		}
	}
}

// TestOpenAPIErrorResponses checks that every metrics endpoint documents
// its 400 and its 503 with Retry-After.
func TestOpenAPIErrorResponses(t *testing.T) {
	doc := openAPIDoc(t)
	for _, e := range Endpoints() {
		responses := mapAt(doc, "paths", e.Path, "get", "responses")
		for _, code := range []string{"400", "503"} {
			if resolve(t, doc, mapAt(responses, code)) == nil {
				t.Errorf("%s: no %s response", e.Path, code)
			}
		}
		if mapAt(resolve(t, doc, mapAt(responses, "503")), "headers", "Retry-After") == nil {
			t.Errorf("%s: the 503 has no Retry-After header", e.Path)
		}
	}
}

// TestOpenAPIResponseFields checks that each endpoint's response schema
// lists exactly the JSON fields of its result type, all the way down.
func TestOpenAPIResponseFields(t *testing.T) {
	doc := openAPIDoc(t)
	results := map[string]reflect.Type{
		"funnel":        reflect.TypeFor[metrics.FunnelResult](),
		"stalls":        reflect.TypeFor[metrics.StallsResult](),
		"missed":        reflect.TypeFor[metrics.MissedResult](),
		"movement":      reflect.TypeFor[metrics.MovementResult](),
		"forecast":      reflect.TypeFor[forecast.Result](),
		"cycle-time":    reflect.TypeFor[metrics.CycleResult](),
		"stage-history": reflect.TypeFor[metrics.StageHistoryResult](),
	}
	for _, e := range Endpoints() {
		typ, ok := results[e.Name]
		if !ok {
			t.Fatalf("no result type for %s", e.Name)
		}
		schema := mapAt(doc, "paths", e.Path, "get", "responses", "200", "content", "application/json", "schema")
		compareSchema(t, doc, e.Name, answerType(typ), schema)
	}
}

func compareSchema(t *testing.T, doc map[string]any, path string, typ reflect.Type, schema map[string]any) {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	schema = resolve(t, doc, schema)
	if schema == nil {
		t.Errorf("%s: no schema", path)
		return
	}
	switch {
	case typ == reflect.TypeFor[time.Time]():
		if schema["type"] != "string" {
			t.Errorf("%s: time field has schema type %v, want string", path, schema["type"])
		}
	case typ.Kind() == reflect.Struct:
		props := schemaProperties(t, doc, schema)
		fields := jsonFields(typ)
		for name, ft := range fields {
			ps, ok := props[name]
			if !ok {
				t.Errorf("%s: field %q is missing from the schema", path, name)
				continue
			}
			compareSchema(t, doc, path+"."+name, ft, ps)
		}
		for name := range props {
			if _, ok := fields[name]; !ok {
				t.Errorf("%s: schema property %q is not in the JSON", path, name)
			}
		}
	case typ.Kind() == reflect.Map:
		if schema["type"] != "object" {
			t.Errorf("%s: map has schema type %v, want object", path, schema["type"])
			return
		}
		values, _ := schema["additionalProperties"].(map[string]any)
		compareSchema(t, doc, path+"{}", typ.Elem(), values)
	case typ.Kind() == reflect.Slice:
		if schema["type"] != "array" {
			t.Errorf("%s: slice has schema type %v, want array", path, schema["type"])
			return
		}
		items, _ := schema["items"].(map[string]any)
		compareSchema(t, doc, path+"[]", typ.Elem(), items)
	case typ.Kind() == reflect.String:
		if schema["type"] != "string" {
			t.Errorf("%s: schema type %v, want string", path, schema["type"])
		}
	case typ.Kind() == reflect.Bool:
		if schema["type"] != "boolean" {
			t.Errorf("%s: schema type %v, want boolean", path, schema["type"])
		}
	case typ.Kind() == reflect.Float64 || typ.Kind() == reflect.Float32:
		if schema["type"] != "number" {
			t.Errorf("%s: schema type %v, want number", path, schema["type"])
		}
	default: // integers
		if schema["type"] != "integer" {
			t.Errorf("%s: schema type %v, want integer", path, schema["type"])
		}
	}
}

// schemaProperties merges the properties of an object schema and its allOf
// parts.
func schemaProperties(t *testing.T, doc, schema map[string]any) map[string]map[string]any {
	t.Helper()
	props := map[string]map[string]any{}
	for name, p := range mapAt(schema, "properties") {
		props[name] = p.(map[string]any)
	}
	if all, ok := schema["allOf"].([]any); ok {
		for _, part := range all {
			for name, p := range schemaProperties(t, doc, resolve(t, doc, part.(map[string]any))) {
				props[name] = p
			}
		}
	}
	return props
}

// jsonFields returns the JSON field names of a struct type and their types,
// with embedded structs flattened as encoding/json does.
func jsonFields(typ reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for n, ft := range jsonFields(f.Type) {
				out[n] = ft
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func TestOpenAPIServed(t *testing.T) {
	h := New(Config{Open: true}, nil, nil, nil)
	rec := serve(h, "GET", "/v1/openapi.yaml", "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "openapi: 3.0") {
		t.Fatalf("GET /v1/openapi.yaml: %d %q", rec.Code, truncate(rec.Body.String()))
	}
}

// TestOpenAPIErrorCodes checks that the Error schema lists exactly the
// codes a 400 can carry (param.Codes).
func TestOpenAPIErrorCodes(t *testing.T) {
	doc := openAPIDoc(t)
	code := mapAt(doc, "components", "schemas", "Error", "properties", "code")
	var got []string
	for _, c := range code["enum"].([]any) {
		got = append(got, c.(string))
	}
	var want []string
	for _, c := range param.Codes {
		want = append(want, string(c))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("openapi Error.code enum %v, want %v", got, want)
	}
}
