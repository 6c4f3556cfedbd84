package api

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/fx"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/param"
)

// Param documents one query parameter of an endpoint.
type Param struct {
	Name string
	Doc  string
}

// errDateRange is ParseDate's error for a date outside 1971..2105.
var errDateRange = errors.New("out of range (1971..2105)")

// ParseDate parses YYYY-MM-DD (midnight UTC) or RFC 3339 (converted to
// UTC) and checks that it lies in 1971..2105.
func ParseDate(s string) (time.Time, error) {
	var t time.Time
	var err error
	// An unescaped '+' of a zone offset arrives as a space.
	if len(s) > 19 && s[10] == 'T' && s[len(s)-6] == ' ' {
		s = s[:len(s)-6] + "+" + s[len(s)-5:]
	}
	if len(s) == len(time.DateOnly) {
		t, err = time.Parse(time.DateOnly, s)
	} else {
		t, err = time.Parse(time.RFC3339, s)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("want a date YYYY-MM-DD or an RFC 3339 time, got %q", truncate(s))
	}
	t = t.UTC()
	if y := t.Year(); y < 1971 || y > 2105 {
		return time.Time{}, fmt.Errorf("%s is %w", s, errDateRange)
	}
	return t, nil
}

// parseQuery parses a raw query string as url.ParseQuery does, but refuses
// what url.ParseQuery would drop: a malformed %-escape (in a name or a
// value) or a ';' is a *param.Error naming the parameter, where
// Request.URL.Query() would read the request as if that parameter were
// absent.
func parseQuery(raw string) (url.Values, error) {
	v := url.Values{}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			return nil, param.Errorf(truncate(rawName), param.Invalid, "malformed %%-escape in the parameter name")
		}
		if strings.Contains(pair, ";") {
			return nil, param.Errorf(truncate(name), param.Invalid, "';' in the query string: separate parameters with '&' and escape ';' as %%3B")
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, param.Errorf(truncate(name), param.Invalid, "malformed %%-escape in %q", truncate(rawValue))
		}
		v[name] = append(v[name], value)
	}
	return v, nil
}

// parser reads url.Values, keeping the first error.
type parser struct {
	v   url.Values
	err error
}

// newParser checks that v holds only the named parameters (and tenant,
// which authentication handles), each at most once.
func newParser(v url.Values, params []Param) *parser {
	p := &parser{v: v}
	known := map[string]bool{"tenant": true}
	for _, prm := range params {
		known[prm.Name] = true
	}
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		switch {
		case !known[name]:
			p.fail(truncate(name), param.Unknown, "unknown parameter")
		case len(v[name]) > 1:
			p.fail(name, param.Repeated, "given more than once")
		}
	}
	return p
}

// fail records the *param.Error of the parameter name, unless one is
// recorded already.
func (p *parser) fail(name string, code param.Code, format string, args ...any) {
	if p.err == nil {
		p.err = param.Errorf(name, code, format, args...)
	}
}

// str returns the parameter's value, or "" when it is absent.
func (p *parser) str(name string) string { return strings.TrimSpace(p.v.Get(name)) }

// date returns the parameter as a time, or def when it is absent.
func (p *parser) date(name string, def time.Time) time.Time {
	s := p.str(name)
	if s == "" {
		return def
	}
	t, err := ParseDate(s)
	if err != nil {
		code := param.Invalid
		if errors.Is(err, errDateRange) {
			code = param.OutOfRange
		}
		p.fail(name, code, "%v", err)
		return def
	}
	return t
}

// asOf returns the as_of parameter, or now (UTC, to the second) when it
// is absent. The API resolves an absent as_of here, once per parse, so
// that the answer and the checks against it (a back-test before as_of)
// see one instant; the metric packages read a zero AsOf as now too.
func (p *parser) asOf() time.Time {
	return p.date("as_of", time.Now().UTC().Truncate(time.Second))
}

// integer returns the parameter as an int in [min, max], or def when it is
// absent.
func (p *parser) integer(name string, def, min, max int) int {
	s := p.str(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		p.fail(name, param.Invalid, "want an integer, got %q", truncate(s))
		return def
	}
	if n < min || n > max {
		p.fail(name, param.OutOfRange, "%d is out of range (%d..%d)", n, min, max)
		return def
	}
	return n
}

// top returns the top parameter of a breakdown: DefaultTop when absent,
// 0 for "all".
func (p *parser) top(name string) int {
	if p.str(name) == "all" {
		return 0
	}
	return p.integer(name, DefaultTop, 1, maxTop)
}

// enum returns the parameter, which must be one of allowed, or def when it
// is absent.
func (p *parser) enum(name, def string, allowed ...string) string {
	s := p.str(name)
	if s == "" {
		return def
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	p.fail(name, param.Invalid, "want one of %s, got %q", strings.Join(allowed, ", "), truncate(s))
	return def
}

// by returns a breakdown dimension: owner, team, segment, source, product,
// or attr.KEY (a free attribute); "" when absent.
func (p *parser) by(name string) string {
	s := p.str(name)
	if s == "" {
		return ""
	}
	if k, ok := strings.CutPrefix(s, metrics.AttrPrefix); ok && event.ValidAttributeKey(k) {
		return s
	}
	if slices.Contains([]string{"owner", "team", "segment", "source", "product"}, s) {
		return s
	}
	p.fail(name, param.Invalid, "want one of owner, team, segment, source, product, or attr.KEY (a free attribute: KEY in lower case letters, digits and _), got %q", truncate(s))
	return ""
}

// currency returns the parameter as an ISO 4217 code in upper case, or ""
// when it is absent. Whether the rate table converts it is the metrics'
// check.
func (p *parser) currency(name string) string {
	s := p.str(name)
	if s == "" {
		return ""
	}
	code, err := fx.Code(s)
	if err != nil {
		p.fail(name, param.Invalid, "%q is not an ISO 4217 currency code (want three letters, e.g. USD)", truncate(s))
		return ""
	}
	return code
}

// before checks that a is before b.
func (p *parser) before(a, b time.Time, aName, bName string) {
	if !a.IsZero() && !b.IsZero() && !a.Before(b) {
		p.fail(aName, param.Conflict, "%s must be before %s", aName, bName)
	}
}

// truncate shortens s for an error message.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// breakdown returns the by, top and interval parameters of an answer
// broken down by a dimension and grouped by period.
func (p *parser) breakdown() (by string, top int, interval string) {
	return p.by("by"), p.top("top"), p.enum("interval", "", "week", "month", "quarter")
}

// period returns the required from and to of a period [from, to), from
// before to.
func (p *parser) period() (from, to time.Time) {
	from, to = p.requiredDate("from"), p.requiredDate("to")
	p.before(from, to, "from", "to")
	return from, to
}

// requiredDate is date for a parameter that must be given.
func (p *parser) requiredDate(name string) time.Time {
	if p.str(name) == "" {
		p.fail(name, param.Required, "required")
		return time.Time{}
	}
	return p.date(name, time.Time{})
}
