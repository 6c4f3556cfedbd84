package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/deals"
	"github.com/commitflow/commitflow/internal/param"
	"github.com/commitflow/commitflow/internal/people"
	"github.com/commitflow/commitflow/internal/report"
)

// The metrics endpoints and the deal and warnings lists answer CSV as well
// as JSON: format=csv, or a request whose Accept header prefers text/csv
// to application/json. The CSV is one table of the answer, as `commitflow
// report NAME --format csv --table TABLE` prints it (internal/report):
// table=NAME picks it, by default the answer's main table, the first of
// report.TableNames. Owners stay ids, as in the CLI's CSV. A CSV answer is
// made from the same answer as the JSON one, from the answer cache when
// there is one: format and table are not part of its key.

// FormatParams are the parameters that choose how an answer is written,
// taken by every metrics endpoint and by the deal and warnings lists
// besides their own.
func FormatParams() []Param {
	return []Param{
		{"format", "json (default) or csv; without it, an Accept header preferring text/csv to application/json asks for csv"},
		{"table", "with format=csv: the table of the answer to write (see each endpoint); default its main table, the first"},
	}
}

// representation is how an answer is to be written.
type representation struct {
	csv bool
	// table is the table a CSV holds; "" for the main one.
	table string
}

// negotiate reads how the answer of the report name (a metric, "deals"
// or "warnings") is to be written from the format and table parameters,
// which it removes from v, and from the Accept header.
func negotiate(r *http.Request, v url.Values, name string) (representation, error) {
	var rep representation
	for _, p := range FormatParams() {
		if len(v[p.Name]) > 1 {
			return rep, param.Errorf(p.Name, param.Repeated, "given more than once")
		}
	}
	format, table := strings.TrimSpace(v.Get("format")), strings.TrimSpace(v.Get("table"))
	v.Del("format")
	v.Del("table")
	switch format {
	case "":
		rep.csv = prefersCSV(r.Header.Values("Accept"))
	case "csv":
		rep.csv = true
	case "json":
	default:
		return rep, param.Errorf("format", param.Invalid, "want json or csv, got %q", truncate(format))
	}
	if table == "" {
		return rep, nil
	}
	names := report.TableNames(name)
	switch {
	case !rep.csv:
		return rep, param.Errorf("table", param.Conflict, "only with format=csv (a JSON answer holds every table)")
	case !slices.Contains(names, table):
		return rep, param.Errorf("table", param.Invalid, "want one of %s, got %q", strings.Join(names, ", "), truncate(table))
	}
	rep.table = table
	return rep, nil
}

// prefersCSV reports whether the Accept header values give text/csv a
// higher quality than application/json, each taking the quality of its
// most specific media range (text/csv, text/*, */*; application/json,
// application/*, */*). A tie, as under */* alone, is JSON.
func prefersCSV(accept []string) bool {
	quality := func(typ, sub string) float64 {
		best, specificity := 0.0, -1
		for _, h := range accept {
			for _, rng := range strings.Split(h, ",") {
				mt, params, _ := strings.Cut(rng, ";")
				t, s, _ := strings.Cut(strings.ToLower(strings.TrimSpace(mt)), "/")
				spec := -1
				switch {
				case t == typ && s == sub:
					spec = 2
				case t == typ && s == "*":
					spec = 1
				case t == "*" && s == "*":
					spec = 0
				}
				if spec <= specificity {
					continue
				}
				q := 1.0
				for _, p := range strings.Split(params, ";") {
					k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
					if strings.EqualFold(k, "q") {
						if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
							q = f
						}
					}
				}
				best, specificity = q, spec
			}
		}
		return best
	}
	return quality("text", "csv") > quality("application", "json")
}

// writeCSV answers 200 with the table rep names of res, the answer of the
// report name for tenant, as a CSV attachment named
// <name>[.<table>]-<tenant>-<as of>.csv, with a Link to each other table
// the answer holds. A table the answer does not hold is 400.
func (s *server) writeCSV(w http.ResponseWriter, r *http.Request, name, tenant string, res any, rep representation) {
	var buf bytes.Buffer
	err := report.Write(&buf, name, res, "csv", rep.table)
	if errors.Is(err, report.ErrNoTable) {
		writeError(w, r, s.logger, param.Errorf("table", param.Unsupported, "%s is not in this answer, which holds %s",
			rep.table, strings.Join(report.Tables(name, res), ", ")))
		return
	}
	if err != nil {
		writeError(w, r, s.logger, fmt.Errorf("api: %s as csv: %w", name, err))
		return
	}
	file := name
	if rep.table != "" && rep.table != report.TableNames(name)[0] {
		file += "." + rep.table
	}
	file += "-" + tenant + "-" + fileDate(answerAsOf(res)) + ".csv"
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="`+file+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	this := rep.table
	if this == "" {
		this = report.TableNames(name)[0]
	}
	for _, t := range report.Tables(name, res) {
		if t == this {
			continue
		}
		q := r.URL.Query()
		q.Set("format", "csv")
		q.Set("table", t)
		h.Add("Link", fmt.Sprintf(`<%s?%s>; rel="alternate"; type="text/csv"; title=%q`, r.URL.Path, q.Encode(), t))
	}
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes()) // the client may have gone; nothing left to tell it
}

// fileDate is t for a file name: YYYY-MM-DD at midnight UTC, else
// YYYY-MM-DDTHHMMSSZ (no colons, which some systems refuse in names).
func fileDate(t time.Time) string {
	t = t.UTC()
	if t.Equal(t.Truncate(24 * time.Hour)) {
		return t.Format(time.DateOnly)
	}
	return t.Format("2006-01-02T150405Z")
}

// answerAsOf is the date res, an answer of a metrics or list endpoint,
// was computed as of: every such answer is a pointer to a struct whose
// Definitions hold it in AsOf.
func answerAsOf(res any) time.Time {
	v := reflect.Indirect(reflect.ValueOf(res))
	if v.Kind() != reflect.Struct {
		return time.Time{}
	}
	if d := v.FieldByName("Definitions"); d.Kind() == reflect.Struct {
		if f := d.FieldByName("AsOf"); f.IsValid() && f.CanInterface() {
			asOf, _ := f.Interface().(time.Time)
			return asOf
		}
	}
	return time.Time{}
}

// newAnswer returns a new answer of the report name (a metric, "deals" or
// "warnings") to decode into, nil for an unknown name.
func newAnswer(name string) any {
	switch name {
	case "deals":
		return new(deals.ListResult)
	case "warnings":
		return new(deals.WarningsResult)
	}
	if e, err := endpoint(name); err == nil {
		return e.newAnswer()
	}
	return nil
}

// DecodeAnswer decodes body, the JSON answer of the report name (a metric,
// "deals" or "warnings"), into its result type (*metrics.FunnelResult,
// ..., *deals.WarningsResult), with the people it names by id.
func DecodeAnswer(name string, body []byte) (any, map[string]people.Person, error) {
	res := newAnswer(name)
	if res == nil {
		return nil, nil, fmt.Errorf("api: unknown report %q", name)
	}
	if err := json.Unmarshal(body, res); err != nil {
		return nil, nil, fmt.Errorf("api: decode the %s answer: %w", name, err)
	}
	var named struct {
		People map[string]people.Person `json:"people"`
	}
	if err := json.Unmarshal(body, &named); err != nil {
		return nil, nil, fmt.Errorf("api: decode the people of the %s answer: %w", name, err)
	}
	return res, named.People, nil
}
