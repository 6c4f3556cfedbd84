// Package metrics computes the conversion numbers of the commitment ladder —
// funnel, stalls, missed commitments, pipeline movement, cycle time and CRM
// stage history — inside ClickHouse, from the derived events only.
//
// Every query reads opportunity_state (schemas/clickhouse/0101_opportunity_state.sql,
// internal/derive.State): one row per opportunity folding its current
// derived events (latest version, not retracted) into arrays, through a
// snapshot.View: the table's current parts without the rows a newer
// version replaces, the same rows for every query of one answer, without
// FINAL (or with FINAL where a View cannot do without it; see package
// snapshot). "As of D" questions become array arithmetic on that row
// (package readmodel holds the rules): the facts as of D are element
// arrayCount(t -> t <= D, fact_times) of each fact array (0: none yet),
// the snapshot of the latest derived event with occurred_at <= D, events
// of one second taken in fold order (their seq); reach_time(K) as of D is
// reach[K] when it is set and <= D; the highest step as of D is the number
// of steps reached by D; misses, interactions, stalls, regressions and
// closes are arrays filtered by time. Reading with FINAL, a query reads the
// tenant's rows in Options.Branches ranges of opportunity_id cut from a
// sample of the ids, as parallel streams, and merges their partial
// aggregates; without FINAL ClickHouse reads in parallel by itself.
//
// Every query runs with max_block_size 8192 (snapshot.QueryContext): on
// 18.16 the per-row array functions and ARRAY JOINs are several times
// slower over 65k-row blocks. Grouping by Strings is what 18.16 spends most
// on, so the funnel groups by numbers (the period's Date and the By value's
// cityHash64) and missed counts distinct interactions and deals as sums of
// per-miss flags stored with the state (migrations 0103, 0113). Amounts are
// summed per currency (currency.go); when every non-zero amount a View
// reads is in one currency the sums take it without reading each deal's
// (currencycache.go). The README has the current figures and what each
// answer costs.
//
// Each answer is made in three parts: a pure function builds its SQL from
// the parameters and the scan's shape (stallsSQL, funnelSQL, ...; the
// values go in bound @arguments), the rows are scanned into a plain row
// struct (stallsRow, ...) by queryRows, and a pure assemble function
// (assembleStalls, ...) does all the Go-side work: step names, missing
// steps, totals, amounts per currency and their scalars, sorting, pages.
// The SQL of a fixed set of parameters, through a View and with FINAL, is
// kept in testdata/golden (golden_test.go: a change of SQL shows up in
// review as a diff of those files; go test -run SQL -update rewrites
// them), and the assemble functions have table tests without ClickHouse
// (assemble_test.go). Results are plain structs with JSON tags, sorted
// deterministically, and each carries the Definitions it was computed
// with.
package metrics

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/fx"
	"github.com/commitflow/commitflow/internal/param"
	"github.com/commitflow/commitflow/internal/readmodel"
	"github.com/commitflow/commitflow/internal/snapshot"
)

// Querier runs metric queries against a ClickHouse connection holding the
// opportunity_state table.
type Querier struct {
	conn       driver.Conn
	pin        *snapshot.Pinner
	branches   int
	maxThreads int
	rates      *fx.Table
	parts      snapshot.Summaries
	// readCurrencies makes every scan read each deal's currency, as when
	// the amounts are in several, and readHistory every deal's facts as
	// of the date asked, never its latest_* columns (tests compare).
	readCurrencies, readHistory bool
	// codedKeys is how many By values a funnel breakdown keeps at most
	// for its query to count per outcome code (funnelSQL's perCode).
	codedKeys int
}

// defaultCodedKeys is a Querier's codedKeys: 20 values (the default top)
// monthly are a few thousand groups of a year's steps, a few hundred
// values tens of thousands.
const defaultCodedKeys = 100

// Options tunes a Querier.
type Options struct {
	// Branches is how many ranges of opportunity ids a query reads as
	// parallel streams when it reads with FINAL, 1 to 16; 0 means 4.
	Branches int
	// Pinner hands out the snapshots of opportunity_state the queries
	// read; nil means a Pinner of the Querier's own. Share one between
	// the Querier and the forecast to share its cache.
	Pinner *snapshot.Pinner
	// MaxThreads, when above 0, sets max_threads for every query.
	// ClickHouse 18.x sizes its default by physical cores and may pick 1
	// on a small virtual machine; setting it to the number of vCPUs lets
	// the branches run in parallel.
	MaxThreads int
	// Rates, when set, is the operator's rate table: the answers' scalar
	// amounts are then converted to the currency asked for (by default
	// its base) at the rates in force on as_of; without it they are the
	// plain sums when an answer's amounts are all in one currency, else
	// null. Amounts per currency are always given as well.
	Rates *fx.Table
}

// New returns a Querier reading through conn with default options. The
// database must have the migrations of schemas/clickhouse applied: the
// queries read opportunity_state, which derivation writes next to the
// derived events.
func New(conn driver.Conn) *Querier {
	return NewWithOptions(conn, Options{})
}

// NewWithOptions returns a Querier reading through conn.
func NewWithOptions(conn driver.Conn, opt Options) *Querier {
	b := opt.Branches
	if b <= 0 || b > 16 {
		b = 4
	}
	pin := opt.Pinner
	if pin == nil {
		pin = snapshot.New(conn)
	}
	return &Querier{conn: conn, pin: pin, branches: b, maxThreads: opt.MaxThreads, rates: opt.Rates, codedKeys: defaultCodedKeys}
}

// Definitions states the parameters and rules an answer was computed with.
type Definitions struct {
	Tenant        string     `json:"tenant"`
	AsOf          time.Time  `json:"as_of"`
	From          *time.Time `json:"from,omitempty"`
	To            *time.Time `json:"to,omitempty"`
	WindowDays    *int       `json:"window_days,omitempty"`
	By            string     `json:"by,omitempty"`
	Interval      string     `json:"interval,omitempty"`
	LadderVersion string     `json:"ladder_version"`
	Ladder        []string   `json:"ladder"`
	// Currency, in answers with amounts, is the currency of the scalar
	// amounts: the one currency of all the answer's amounts, or the one
	// they were converted to; "" when they are in several currencies
	// (the scalars are then null) or the CRM never gave one.
	Currency *string `json:"currency,omitempty"`
	// Converted, when the scalar amounts were converted, says to what and
	// at which rates.
	Converted *Conversion `json:"converted,omitempty"`
	// Top, in a breakdown that keeps only its largest By values, is how
	// many it keeps; OtherKeys counts the values merged into the other
	// groups.
	Top       int `json:"top,omitempty"`
	OtherKeys int `json:"other_keys,omitempty"`
	// Rules are the definitions in words.
	Rules []string `json:"rules"`
}

// setTop records a top-N breakdown's limit and what it merged.
func (d *Definitions) setTop(by string, top int, k keyset) {
	if by == "" || top == 0 {
		return
	}
	d.Top, d.OtherKeys = top, k.other
}

// Bucket is one bar of a days histogram: [MinDays, MaxDays), MaxDays nil
// meaning unbounded.
type Bucket struct {
	Label   string `json:"label"`
	MinDays int    `json:"min_days"`
	MaxDays *int   `json:"max_days"`
	Count   int64  `json:"count"`
}

// bucketEdges are the lower bounds, in days, of the histogram buckets.
var bucketEdges = [...]int{0, 7, 14, 30, 60, 90, 180}

// emptyBuckets is the empty histogram that newBuckets copies.
var emptyBuckets = func() [len(bucketEdges)]Bucket {
	var b [len(bucketEdges)]Bucket
	for i, lo := range bucketEdges {
		b[i].MinDays = lo
		if i+1 < len(bucketEdges) {
			hi := bucketEdges[i+1]
			b[i].MaxDays = &hi
			b[i].Label = fmt.Sprintf("%d-%dd", lo, hi)
		} else {
			b[i].Label = fmt.Sprintf("%dd+", lo)
		}
	}
	return b
}()

// newBuckets returns the empty histogram. Its MaxDays pointers are shared
// with every other histogram: never write through them.
func newBuckets() []Bucket {
	b := emptyBuckets
	return b[:]
}

// bucketIndexSQL returns an expression for the histogram bucket of the
// seconds expression secs: 0 to len(bucketEdges)-1, or len(bucketEdges)
// when cond is false or secs is negative (counted in no bucket).
func bucketIndexSQL(secs, cond string) string {
	s := fmt.Sprintf("multiIf(NOT (%s) OR %s < 0, %d", cond, secs, len(bucketEdges))
	for i := range bucketEdges[:len(bucketEdges)-1] {
		s += fmt.Sprintf(", %s < %d, %d", secs, bucketEdges[i+1]*86400, i)
	}
	return s + fmt.Sprintf(", %d)", len(bucketEdges)-1)
}

// bucketCountsSQL returns the SELECT expressions h0, h1, ... counting rows
// per bucket of the bucket index expression idx (see bucketIndexSQL). One
// sum of a comparison per bucket costs ClickHouse 18.16 less than one
// countIf of a range per bucket.
func bucketCountsSQL(idx string) string {
	s := ""
	for i := range bucketEdges {
		s += fmt.Sprintf(",\n\tsum(%s = %d) AS h%d", idx, i, i)
	}
	return s
}

// bucketSumsSQL returns the SELECT expressions summing the partial bucket
// counts h0, h1, ... of bucketCountsSQL.
func bucketSumsSQL() string {
	s := ""
	for i := range bucketEdges {
		s += fmt.Sprintf(",\n\ttoUInt64(sum(h%d))", i)
	}
	return s
}

// Limits of the query parameters.
const (
	// MaxPageSize is the largest page of stalled deals.
	MaxPageSize = 1000
	// DefaultPageSize is the page size used when none is given.
	DefaultPageSize = 50
	// MaxWindowDays bounds window_days.
	MaxWindowDays = 36500
	// MaxLadderSteps bounds the ladder length (step_index is a UInt8).
	MaxLadderSteps = 255
	maxTenantLen   = 256
)

// byElement returns the SQL of a breakdown dimension's value as of
// @asof, fi being the fact index then (an SQL expression), false if the
// dimension is unknown: owner, team, segment (from their runs,
// readmodel.FactRun), source, product, or attr.KEY, the free attribute
// KEY, whose name the queries bind as @by_attr (byAttr).
func byElement(by, fi string) (string, bool) {
	if k, ok := strings.CutPrefix(by, AttrPrefix); ok {
		return "attr_values[" + fi + "][indexOf(attr_keys[" + fi + "], @by_attr)]", event.ValidAttributeKey(k)
	}
	switch by {
	case "owner", "team", "segment":
		return readmodel.FactRun(by, "@asof"), true
	case "source":
		return "lead_sources[" + fi + "]", true
	case "product":
		return "products[" + fi + "]", true
	}
	return "", false
}

// latestElement returns the SQL of a breakdown dimension's value in a
// deal's latest_* columns (migration 0115; see shape.latestBy), false for
// a dimension without one (source, product: read them with byElement).
func latestElement(by string) (string, bool) {
	if _, ok := strings.CutPrefix(by, AttrPrefix); ok {
		return "latest_attr_values[indexOf(latest_attr_keys, @by_attr)]", true
	}
	switch by {
	case "owner":
		return "latest_owner", true
	case "team":
		return "latest_team", true
	case "segment":
		return "latest_segment", true
	}
	return "", false
}

// AttrPrefix starts a breakdown by a free attribute: attr.region.
const AttrPrefix = "attr."

// byAttr is the @by_attr argument: the attribute a breakdown reads, ""
// for none.
func byAttr(by string) driver.NamedValue {
	k, _ := strings.CutPrefix(by, AttrPrefix)
	if k == by {
		k = ""
	}
	return clickhouse.Named("by_attr", k)
}

// errBy is the input error of an unknown breakdown.
var errBy = param.Errorf("by", param.Invalid, "must be one of owner, team, segment, source, product, or attr.KEY (a free attribute, KEY in lower case letters, digits and _)")

// intervalFunc returns the ClickHouse function giving the start of a
// FunnelQuery.Interval period, false if the interval is unknown.
func intervalFunc(interval string) (string, bool) {
	switch interval {
	case "week":
		return "toMonday", true
	case "month":
		return "toStartOfMonth", true
	case "quarter":
		return "toStartOfQuarter", true
	}
	return "", false
}

// minTime and maxTime bound the instants a DateTime column can hold.
var (
	minTime = time.Unix(1, 0).UTC()
	maxTime = time.Unix(1<<32-1, 0).UTC()
)

// common holds the validated parameters every query has.
type common struct {
	tenant string
	asOf   time.Time
	ladder []string
	defs   Definitions
}

// validateCommon checks tenant, as_of and ladder; a zero asOf means now.
func validateCommon(tenant string, asOf time.Time, ladder []string, version string, minSteps int) (common, error) {
	var c common
	if tenant == "" {
		return c, param.Errorf("tenant", param.Required, "required")
	}
	if len(tenant) > maxTenantLen {
		return c, param.Errorf("tenant", param.OutOfRange, "longer than %d bytes", maxTenantLen)
	}
	if asOf.IsZero() {
		asOf = time.Now()
	}
	asOf = asOf.UTC().Truncate(time.Second)
	if err := checkTime("as_of", asOf); err != nil {
		return c, err
	}
	if len(ladder) < minSteps {
		return c, param.Errorf("ladder", param.Invalid, "needs at least %d steps", minSteps)
	}
	if len(ladder) > MaxLadderSteps {
		return c, param.Errorf("ladder", param.Invalid, "more than %d steps", MaxLadderSteps)
	}
	c.tenant, c.asOf, c.ladder = tenant, asOf, ladder
	c.defs = Definitions{
		Tenant:        tenant,
		AsOf:          asOf,
		LadderVersion: version,
		Ladder:        append([]string{}, ladder...),
	}
	return c, nil
}

func checkTime(name string, t time.Time) error {
	if t.Before(minTime) || t.After(maxTime) {
		return param.Errorf(name, param.OutOfRange, "out of range %s..%s", minTime.Format(time.RFC3339), maxTime.Format(time.RFC3339))
	}
	return nil
}

// ranged is the checked parameters of an answer over the events in
// [from, to) as of c.asOf, in the currency ask.
type ranged struct {
	c        common
	ask      moneyAsk
	from, to time.Time
}

// checkRanged checks the parameters of an answer over a range (missed,
// movement): validateCommon's, the currency and the range.
func (q *Querier) checkRanged(tenant string, asOf time.Time, ladder []string, version, currency string, from, to time.Time) (ranged, error) {
	var r ranged
	var err error
	if r.c, err = validateCommon(tenant, asOf, ladder, version, 1); err != nil {
		return r, err
	}
	if r.ask, err = q.checkCurrency(currency); err != nil {
		return r, err
	}
	r.from, r.to, err = validateRange(from, to)
	return r, err
}

// validateRange checks a required [from, to) range and returns it truncated
// to seconds in UTC.
func validateRange(from, to time.Time) (time.Time, time.Time, error) {
	if from.IsZero() {
		return from, to, param.Errorf("from", param.Required, "required")
	}
	if to.IsZero() {
		return from, to, param.Errorf("to", param.Required, "required")
	}
	from, to = from.UTC().Truncate(time.Second), to.UTC().Truncate(time.Second)
	if err := checkTime("from", from); err != nil {
		return from, to, err
	}
	if err := checkTime("to", to); err != nil {
		return from, to, err
	}
	if !from.Before(to) {
		return from, to, param.Errorf("from", param.Conflict, "must be before to")
	}
	return from, to, nil
}

// stepName is the ladder key of a 1-based step index, "" for 0 or an index
// outside the ladder.
func stepName(ladder []string, i int) string {
	if i >= 1 && i <= len(ladder) {
		return ladder[i-1]
	}
	return ""
}

// ts renders an instant as the UInt32 seconds the queries compare with.
func ts(t time.Time) uint32 { return uint32(t.Unix()) }

// sampleEvery is the sampling rate of the opportunity ids that splitKeys
// cuts ranges from: one id in sampleEvery, by hash.
const sampleEvery = 64

// splitKeys cuts the tenant's opportunity_state rows into up to q.branches
// ranges of opportunity_id of about equal size, from a sample of the ids.
// It returns the condition of each range, naming the bounds @b1, @b2, ...,
// and the bound arguments. Any bounds give a correct answer (the ranges
// partition all ids); good ones balance the branches.
func (q *Querier) splitKeys(ctx context.Context, tenant string) ([]string, []any, error) {
	if q.branches <= 1 {
		return []string{"1"}, nil, nil
	}
	rows, err := q.conn.Query(q.queryCtx(ctx), `SELECT DISTINCT opportunity_id FROM opportunity_state
WHERE tenant = @tenant AND cityHash64(opportunity_id) % @every = 0`,
		clickhouse.Named("tenant", tenant), clickhouse.Named("every", uint64(sampleEvery)))
	if err != nil {
		return nil, nil, fmt.Errorf("sample opportunity ids: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, nil, fmt.Errorf("sample opportunity ids: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("sample opportunity ids: %w", err)
	}
	slices.Sort(ids)
	var bounds []string
	for j := 1; j < q.branches; j++ {
		i := j * len(ids) / q.branches
		if i > 0 && i < len(ids) && (len(bounds) == 0 || bounds[len(bounds)-1] < ids[i]) {
			bounds = append(bounds, ids[i])
		}
	}
	args := make([]any, len(bounds))
	for j, b := range bounds {
		args[j] = clickhouse.Named("b"+itoa(j+1), b)
	}
	return keyRanges(len(bounds)), args, nil
}

// keyRanges returns the conditions of the n+1 ranges of opportunity_id
// that n bounds @b1 < @b2 < ... cut the ids into, in order.
func keyRanges(n int) []string {
	conds := make([]string, n+1)
	for j := range conds {
		var c []string
		if j > 0 {
			c = append(c, fmt.Sprintf("opportunity_id >= @b%d", j))
		}
		if j < n {
			c = append(c, fmt.Sprintf("opportunity_id < @b%d", j+1))
		}
		if len(c) == 0 {
			c = append(c, "1")
		}
		conds[j] = strings.Join(c, " AND ")
	}
	return conds
}

// scan is how the queries of one answer read opportunity_state: through
// one snapshot.View, so that they all see the same rows.
type scan struct {
	// ctx carries the query settings and the View's external table.
	ctx context.Context
	shape
	// args are the bound arguments of the key ranges and of the View.
	args []any
}

// shape is what the SQL of an answer depends on in the scan it reads,
// as plain strings: the SQL builders take a shape, and can be called (and
// their SQL compared with testdata/golden) without ClickHouse.
type shape struct {
	// from is the table expression to read, opportunity_state [FINAL].
	from string
	// prewhere is the View's clause leaving out superseded rows,
	// "PREWHERE ..." or "" (see snapshot.View.Prewhere).
	prewhere string
	// parts is the View's condition on the table's parts, "1" with FINAL
	// (snapshot.View.Where).
	parts string
	// conds are ranges of the sorting key read as parallel streams:
	// FINAL reads one stream per range; without FINAL ClickHouse reads in
	// parallel by itself and there is one range, all.
	conds []string
	// oneCurrency reports that every non-zero amount of the rows read is
	// in the currency cur (a curSQL number): see sumCurSQL. Known only for
	// a View (snapshot.Summaries), false with FINAL.
	oneCurrency bool
	cur         uint32
	// latest, when latestKnown, is the latest latest_at of the rows read
	// (UInt32 seconds): see latestBy. Known only for a View
	// (snapshot.Summaries).
	latest      uint32
	latestKnown bool
}

// latestBy reports whether every row read had its last event at or
// before asOf (UInt32 seconds), so that its facts and state as of asOf
// are its latest_* columns (migration 0115).
func (sh shape) latestBy(asOf uint32) bool { return sh.latestKnown && sh.latest <= asOf }

// readScan returns what fn returns on a scan of tenant's rows. Like
// snapshot.Read it may run fn more than once and returns the last run's
// value only: fn builds its answer in what it returns.
func readScan[T any](ctx context.Context, q *Querier, tenant string, fn func(s *scan) (T, error)) (T, error) {
	return snapshot.Read(ctx, q.pin, tenant, func(ctx context.Context, v *snapshot.View) (T, error) {
		s, err := q.scan(ctx, tenant, v)
		if err != nil {
			var zero T
			return zero, err
		}
		return fn(s)
	})
}

// scan returns the scan of tenant's rows on v.
func (q *Querier) scan(ctx context.Context, tenant string, v *snapshot.View) (*scan, error) {
	qctx, err := v.Context(q.queryCtx(ctx))
	if err != nil {
		return nil, err
	}
	s := &scan{ctx: qctx, shape: shape{from: v.From(), prewhere: v.Prewhere(), parts: v.Where(), conds: []string{"1"}}}
	if v.Final() {
		if s.conds, s.args, err = q.splitKeys(qctx, tenant); err != nil {
			return nil, err
		}
	} else {
		sum, _, err := q.parts.Of(q.queryCtx(ctx), q.conn, tenant, v)
		if err != nil {
			return nil, err
		}
		if !q.readCurrencies && len(sum.Currencies) <= 1 {
			s.oneCurrency = true
			if len(sum.Currencies) == 1 {
				s.cur = sum.Currencies[0]
			}
		}
		if !q.readHistory {
			s.latest, s.latestKnown = sum.Latest, true
		}
	}
	s.args = append(s.args, v.Args()...)
	return s, nil
}

// fanout returns the UNION ALL of branch(where) for each key range cond of
// sh.conds, where = "tenant = @tenant AND cond AND <the View's parts>":
// the condition selecting that range of the tenant's opportunity_state
// rows (one per opportunity, see
// schemas/clickhouse/0101_opportunity_state.sql) in sh.from. branch reads
// with sh.prewhere. The branches read disjoint ranges of the sorting key
// and run as parallel streams; per-opportunity work and partial
// aggregation belong inside branch.
func (sh shape) fanout(branch func(where string) string) string {
	parts := make([]string, len(sh.conds))
	for j, c := range sh.conds {
		parts[j] = branch("tenant = @tenant AND " + c + " AND " + sh.parts)
	}
	return "(\n" + strings.Join(parts, "\nUNION ALL\n") + "\n)"
}

// queryRows runs query on s and returns its rows, each scanned into a T
// through the destinations dest gives for it; what names the query in
// errors.
func queryRows[T any](s *scan, conn driver.Conn, what, query string, args []any, dest func(r *T) []any) ([]T, error) {
	rows, err := conn.Query(s.ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s query: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var r T
		if err := rows.Scan(dest(&r)...); err != nil {
			return nil, fmt.Errorf("%s scan: %w", what, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s rows: %w", what, err)
	}
	return out, nil
}

// queryCtx adds the settings every metrics query runs with: those of every
// read of opportunity_state (snapshot.QueryContext), with q's max_threads.
func (q *Querier) queryCtx(ctx context.Context) context.Context {
	return snapshot.QueryContext(ctx, q.maxThreads)
}

// ratio returns num/den, nil when den is zero.
func ratio(num, den float64) *float64 {
	if den == 0 {
		return nil
	}
	r := num / den
	return &r
}

// stepRows returns the step indexes reported for a per-step table: every
// step of the ladder from 0 (none) to len(ladder), plus any other index in
// extra, sorted.
func stepRows(ladder []string, extra map[int]bool) []int {
	out := make([]int, 0, len(ladder)+1)
	for i := 0; i <= len(ladder); i++ {
		out = append(out, i)
	}
	var more []int
	for i := range extra {
		if i > len(ladder) {
			more = append(more, i)
		}
	}
	slices.Sort(more)
	return append(out, more...)
}

func itoa(i int) string { return strconv.Itoa(i) }

func timePtr(t time.Time) *time.Time { return &t }
