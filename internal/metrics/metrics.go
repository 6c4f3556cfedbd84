// Package metrics computes the conversion numbers of the commitment ladder —
// funnel, stalls, missed commitments and pipeline movement — inside
// ClickHouse, from the derived events only.
//
// Every query reads the tenant's current derived events (latest version,
// not retracted) that happened at or before as_of. It reads them from
// derived_metrics, a narrow copy of derived_events kept by a materialized
// view (schemas/clickhouse/0100_derived_metrics.sql) whose numeric sorting
// key makes FINAL cheaper and whose shards let a query read in parallel
// streams. Opportunities are grouped by cityHash64(opportunity_id) and
// events identified by (opportunity, id) hashes; a collision would merge
// two opportunities (odds about n²/2^65 for n opportunities of a tenant).
// Each derived row carries a snapshot of the opportunity's facts at its
// occurred_at, so the facts of an opportunity "as of" a date D are the
// snapshot of its latest derived event with occurred_at <= D, ties broken by
// the larger event id.
//
// Results are plain structs with JSON tags, sorted deterministically, and
// each carries the Definitions it was computed with.
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
)

// Querier runs metric queries against a ClickHouse connection holding the
// derived_events table.
type Querier struct {
	conn       driver.Conn
	branches   int
	maxThreads int
}

// Options tunes a Querier.
type Options struct {
	// Branches is how many shard ranges of derived_metrics a query reads
	// as parallel streams, 1 to 16; 0 means 4.
	Branches int
	// MaxThreads, when above 0, sets max_threads for every query.
	// ClickHouse 18.x sizes its default by physical cores and may pick 1
	// on a small virtual machine; setting it to the number of vCPUs lets
	// the branches run in parallel.
	MaxThreads int
}

// New returns a Querier reading through conn with default options. The
// database must have the migrations of schemas/clickhouse applied: the
// queries read derived_metrics, a copy of derived_events kept by a
// materialized view.
func New(conn driver.Conn) *Querier {
	return NewWithOptions(conn, Options{})
}

// NewWithOptions returns a Querier reading through conn.
func NewWithOptions(conn driver.Conn, opt Options) *Querier {
	b := opt.Branches
	if b <= 0 || b > shards {
		b = defaultBranches
	}
	return &Querier{conn: conn, branches: b, maxThreads: opt.MaxThreads}
}

// InputError reports a query parameter that is missing or invalid. The API
// maps it to 400 Bad Request.
type InputError struct {
	Param  string `json:"param"`
	Reason string `json:"reason"`
}

func (e *InputError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Param, e.Reason)
}

func inputErr(param, format string, args ...any) error {
	return &InputError{Param: param, Reason: fmt.Sprintf(format, args...)}
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
	// Rules are the definitions in words.
	Rules []string `json:"rules"`
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

// newBuckets returns the empty histogram.
func newBuckets() []Bucket {
	b := make([]Bucket, len(bucketEdges))
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
}

// bucketCountsSQL returns the SELECT expressions h0, h1, ... counting rows
// whose seconds expression falls in each bucket, restricted by cond.
func bucketCountsSQL(secs, cond string) string {
	s := ""
	for i, lo := range bucketEdges {
		c := fmt.Sprintf("%s AND %s >= %d", cond, secs, lo*86400)
		if i+1 < len(bucketEdges) {
			c += fmt.Sprintf(" AND %s < %d", secs, bucketEdges[i+1]*86400)
		}
		s += fmt.Sprintf(",\n\tcountIf(%s) AS h%d", c, i)
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

// byColumn returns the derived_events column a FunnelQuery.By dimension
// reads, false if the dimension is unknown.
func byColumn(by string) (string, bool) {
	switch by {
	case "owner":
		return "owner_id", true
	case "team":
		return "team", true
	case "segment":
		return "segment", true
	case "source":
		return "lead_source", true
	case "product":
		return "product", true
	}
	return "", false
}

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

// Derived event types and reasons as they are stored.
const (
	typeGained     = "commitment.gained"
	typeMissed     = "commitment.missed"
	typeStalled    = "deal.stalled"
	typeRegressed  = "stage.regressed"
	typeClosed     = "deal.closed"
	typeCreated    = "deal.created"
	typeInteracted = "interaction.held"
)

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
		return c, inputErr("tenant", "required")
	}
	if len(tenant) > maxTenantLen {
		return c, inputErr("tenant", "longer than %d bytes", maxTenantLen)
	}
	if asOf.IsZero() {
		asOf = time.Now()
	}
	asOf = asOf.UTC().Truncate(time.Second)
	if err := checkTime("as_of", asOf); err != nil {
		return c, err
	}
	if len(ladder) < minSteps {
		return c, inputErr("ladder", "needs at least %d steps", minSteps)
	}
	if len(ladder) > MaxLadderSteps {
		return c, inputErr("ladder", "more than %d steps", MaxLadderSteps)
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

func checkTime(param string, t time.Time) error {
	if t.Before(minTime) || t.After(maxTime) {
		return inputErr(param, "out of range %s..%s", minTime.Format(time.RFC3339), maxTime.Format(time.RFC3339))
	}
	return nil
}

// validateRange checks a required [from, to) range and returns it truncated
// to seconds in UTC.
func validateRange(from, to time.Time) (time.Time, time.Time, error) {
	if from.IsZero() {
		return from, to, inputErr("from", "required")
	}
	if to.IsZero() {
		return from, to, inputErr("to", "required")
	}
	from, to = from.UTC().Truncate(time.Second), to.UTC().Truncate(time.Second)
	if err := checkTime("from", from); err != nil {
		return from, to, err
	}
	if err := checkTime("to", to); err != nil {
		return from, to, err
	}
	if !from.Before(to) {
		return from, to, inputErr("from", "must be before to")
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

// shards is the number of shards of derived_metrics (see
// schemas/clickhouse/0100_derived_metrics.sql).
const shards = 16

// defaultBranches is how many shard ranges a query reads in parallel.
const defaultBranches = 4

// fanout returns a FROM source: the UNION ALL of perBranch run once per
// range of shards, with {src} in perBranch replaced by that range's current
// derived events. Per-opportunity aggregation (GROUP BY opp_hash) belongs
// inside perBranch: an opportunity lives in one shard, and the branches run
// as parallel streams.
//
// A source row is a derived event of tenant @tenant, not retracted, with
// occurred_at <= @limit, in its latest version; ts is occurred_at in UInt32
// seconds and ord orders events by (occurred_at, id). cols are the further
// columns to read. The filters on retracted and occurred_at apply after
// FINAL has collapsed each event to its latest version (they are not in the
// sorting key, and queryCtx disables moving them to PREWHERE), so a
// retraction or a moved occurred_at in a later version is honoured.
func (q *Querier) fanout(cols, perBranch string) string {
	n := q.branches
	parts := make([]string, n)
	for j := range parts {
		lo, hi := j*shards/n, (j+1)*shards/n
		src := fmt.Sprintf(`(
		SELECT opp_hash, opportunity_id, type, toUInt32(occurred_at) AS ts, ord, %s
		FROM derived_metrics FINAL
		WHERE tenant = @tenant AND shard >= %d AND shard < %d
			AND retracted = 0 AND toUInt32(occurred_at) <= @limit
	)`, cols, lo, hi)
		parts[j] = strings.Replace(perBranch, "{src}", src, 1)
	}
	return "(\n" + strings.Join(parts, "\nUNION ALL\n") + "\n)"
}

// queryCtx adds the settings every metrics query runs with.
func (q *Querier) queryCtx(ctx context.Context) context.Context {
	set := clickhouse.Settings{
		// WHERE must stay after FINAL: a condition moved to PREWHERE
		// would drop a row's newest version and resurrect an older one.
		"optimize_move_to_prewhere": 0,
	}
	if q.maxThreads > 0 {
		set["max_threads"] = q.maxThreads
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(set))
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
