package deals

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/param"
	"github.com/commitflow/commitflow/internal/readmodel"
	"github.com/commitflow/commitflow/internal/snapshot"
)

// Limits of the list parameters.
const (
	// MaxPageSize is the largest page of deals.
	MaxPageSize = metrics.MaxPageSize
	// DefaultPageSize is the page size when none is given.
	DefaultPageSize = metrics.DefaultPageSize
	// MaxPage bounds page so that page*page_size cannot overflow.
	MaxPage = 1_000_000
)

// Filter selects deals as of a date. Empty fields select everything.
type Filter struct {
	// Step is the ladder key of the highest step reached.
	Step string `json:"step,omitempty"`
	// OwnerID and Team are the facts as of the date.
	OwnerID string `json:"owner,omitempty"`
	Team    string `json:"team,omitempty"`
	// Status is open, won or lost, as of the date.
	Status string `json:"status,omitempty"`
	// Stalled and SingleThreaded keep the deals with (true) or without
	// (false) that warning.
	Stalled        *bool `json:"stalled,omitempty"`
	SingleThreaded *bool `json:"single_threaded,omitempty"`
	// Warning is "any" or one of WarningKinds.
	Warning string `json:"warning,omitempty"`
	// CloseFrom and CloseTo bound the close date as of the date:
	// CloseFrom <= close date < CloseTo, dates at 00:00 UTC; a deal with
	// no close date is left out when either is set.
	CloseFrom *time.Time `json:"close_from,omitempty"`
	CloseTo   *time.Time `json:"close_to,omitempty"`
}

// ListQuery asks for a page of the deals Filter selects, as of AsOf.
type ListQuery struct {
	Tenant string
	// AsOf is the instant the answer is computed at; zero means now.
	AsOf   time.Time
	Ladder *ladder.Ladder
	Filter Filter
	// Page is 1-based (0 means 1); PageSize 0 means DefaultPageSize.
	Page, PageSize int
}

// ListResult is a page of deals.
type ListResult struct {
	Definitions metrics.Definitions `json:"definitions"`
	Filter      Filter              `json:"filter"`
	// Total is how many deals the filter selects.
	Total    int64 `json:"total"`
	Page     int   `json:"page"`
	PageSize int   `json:"page_size"`
	Deals    []Row `json:"deals"`
}

// Row is one deal of a list, with its facts as of the date.
type Row struct {
	OpportunityID string `json:"opportunity_id"`
	// Name is the deal's name in the CRM as of the date, "" if none was
	// sent.
	Name    string `json:"name"`
	OwnerID string `json:"owner_id"`
	Team    string `json:"team"`
	// Amount is in the deal's own Currency ("" = none given), never
	// converted.
	Amount              float64   `json:"amount"`
	Currency            string    `json:"currency"`
	CloseDate           *string   `json:"close_date"`
	Stage               string    `json:"stage"`
	Status              string    `json:"status"`
	StepIndex           int       `json:"step_index"`
	Step                string    `json:"step"`
	DaysSinceCommitment int64     `json:"days_since_commitment"`
	Warnings            []Warning `json:"warnings"`
}

// Warning is one open warning of a deal.
type Warning struct {
	Kind string `json:"kind"`
	// Since is when the event that raised it happened (see WarningRules).
	Since time.Time `json:"since"`
}

// WarningsQuery asks for the deals with warnings as of AsOf, summed by
// kind, owner and team, and a page of them.
type WarningsQuery struct {
	Tenant string
	// AsOf is the instant the answer is computed at; zero means now.
	AsOf   time.Time
	Ladder *ladder.Ladder
	// Kind is "" or "any" for every warning, else one of WarningKinds.
	Kind string
	// OwnerID and Team, when set, keep that owner's or team's deals.
	OwnerID, Team  string
	Page, PageSize int
}

// WarningsResult is the deals with warnings: counts and amounts in total,
// by kind, by owner and by team, and a page of the deals.
type WarningsResult struct {
	Definitions metrics.Definitions `json:"definitions"`
	Filter      Filter              `json:"filter"`
	// Total counts the deals with a warning (of Kind, if given).
	Total   WarningCounts   `json:"total"`
	ByKind  []WarningCounts `json:"by_kind"`
	ByOwner []WarningCounts `json:"by_owner"`
	ByTeam  []WarningCounts `json:"by_team"`
	// Page of the deals with a warning, ordered as every list.
	Page     int   `json:"page"`
	PageSize int   `json:"page_size"`
	Deals    []Row `json:"deals"`
}

// WarningCounts counts deals with warnings: Deals in all, Kinds per
// warning kind (a deal with two warnings counts once in Deals and once
// under each kind), and their amounts per currency, never added across
// currencies.
type WarningCounts struct {
	// Key is the warning kind, owner id or team of a breakdown row; ""
	// for the total.
	Key               string             `json:"key"`
	Deals             int64              `json:"deals"`
	Kinds             map[string]int64   `json:"kinds"`
	AmountsByCurrency map[string]float64 `json:"amounts_by_currency"`
}

// listQuery is a checked ListQuery.
type listQuery struct {
	common
	f          Filter
	step       int
	page, size int
}

func (c *common) checkFilter(f Filter) (int, error) {
	step := -1
	if f.Step != "" {
		step = c.l.Index(f.Step)
		if step == 0 {
			return 0, param.Errorf("step", param.Invalid, "%q is not a step of the ladder (%s)", f.Step, strings.Join(c.steps, ", "))
		}
	}
	switch f.Status {
	case "", "open", "won", "lost":
	default:
		return 0, param.Errorf("status", param.Invalid, "want open, won or lost, got %q", f.Status)
	}
	if f.Warning != "" && f.Warning != "any" && !slices.Contains(WarningKinds, f.Warning) {
		return 0, param.Errorf("warning", param.Invalid, "want any or one of %s, got %q", strings.Join(WarningKinds, ", "), f.Warning)
	}
	if f.CloseFrom != nil && f.CloseTo != nil && !f.CloseFrom.Before(*f.CloseTo) {
		return 0, param.Errorf("close_from", param.Conflict, "must be before close_to")
	}
	return step, nil
}

func checkPage(page, size int) (int, int, error) {
	if page == 0 {
		page = 1
	}
	if size == 0 {
		size = DefaultPageSize
	}
	if page < 1 || page > MaxPage {
		return 0, 0, param.Errorf("page", param.OutOfRange, "must be between 1 and %d", MaxPage)
	}
	if size < 1 || size > MaxPageSize {
		return 0, 0, param.Errorf("page_size", param.OutOfRange, "must be between 1 and %d", MaxPageSize)
	}
	return page, size, nil
}

// warnBit is the bit of a warning kind in a deal's mask.
func warnBit(kind string) int { return 1 << slices.Index(WarningKinds, kind) }

// warnConds are the conditions, over the columns of rowsSQL.deals, that a
// deal has each warning kind.
var warnConds = map[string]string{
	WarnStalled:            "is_open AND ss != 0",
	WarnSingleThreaded:     "is_open AND st != 0 AND NOT (cgain > st AND cgain <= @asof)",
	WarnBuyerActionOverdue: "is_open AND od != 0",
	WarnCloseDatePushed:    "is_open AND pd != 0",
	WarnNoNextStep:         "is_open AND nn != 0",
}

// maskSQL is the warning mask of kinds (bit i: WarningKinds[i]) over the
// columns of rowsSQL.deals.
func maskSQL(kinds ...string) string {
	terms := make([]string, len(kinds))
	for i, kind := range kinds {
		terms[i] = fmt.Sprintf("%d * (%s)", warnBit(kind), warnConds[kind])
	}
	return "toUInt8(" + strings.Join(terms, " + ") + ")"
}

// rowsSQL builds the per-deal queries of one View.
type rowsSQL struct {
	from, prewhere, where string
	// legacy is set when some rows of the View were written before
	// migration 0110 (single_threaded_filled = 0): their single-threaded
	// warning is read from derived_events, as before.
	legacy bool
}

// facts is the query of one row per deal of the tenant that exists as of
// @asof and meets cond, a condition on the columns below: the facts as of
// @asof, highest step, days since the reference time, is_open, and when
// each warning but single_threaded began (ss, od, pd, nn; times are UInt32
// seconds, 0 meaning none), with cgain (when the consensus step was
// gained) and st_state (the first deal.single_threaded at or before @asof
// in the state). ClickHouse computes only the columns a query names (it
// prunes the others from the subquery), those cond does not need only for
// the rows cond keeps; reading the miss and interaction arrays is what
// costs, so a query naming no warning is cheap.
func (q rowsSQL) facts(cond string) string {
	// ClickHouse 18.16 loses a column that a query names only inside a
	// lambda (it prunes it from the subquery below): no lambda here reads
	// anything but its arguments, and a per-row value a lambda needs is
	// passed as an argument array, replicate(value, array).
	return `SELECT opportunity_id AS opp_id,
		` + readmodel.FactIndex("@asof") + ` AS fi,
		amounts[fi] AS amt,
		currencies[fi] AS cur,
		` + readmodel.FactRun("owner", "@asof") + ` AS a_owner,
		` + readmodel.FactRun("team", "@asof") + ` AS a_team,
		stages[fi] AS a_stage,
		statuses[fi] AS a_status,
		close_dates[fi] AS a_close,
		fact_closed[fi] = 0 AS is_open,
		` + readmodel.HighestStep("@asof") + ` AS hi_step,
		` + readmodel.StallColumns + `,
		toUInt32(gained[@cstep]) AS cgain,
		toUInt32(arrayReduce('max', arrayFilter((t, r) -> r = 'close_date_pushed' AND t <= toDateTime(@asof) AND toUInt32(t) > @pushed_after, miss_times, miss_reasons))) AS pd,
		arrayFilter((i, r) -> r = 'no_buyer_present', miss_interactions, miss_reasons) AS nbp,
		arrayFilter((t, i, n) -> t <= toDateTime(@asof) AND NOT has(n, i), held_times, held_interactions, replicate(nbp, held_times)) AS bh_t,
		arrayFilter((o, t, i, n) -> t <= toDateTime(@asof) AND NOT has(n, i), held_outcomes, held_times, held_interactions, replicate(nbp, held_times)) AS bh_o,
		toUInt32(bh_t[length(bh_t)]) AS bh_last,
		greatest(lastc, bh_last) AS eng,
		toUInt32(arrayReduce('min', arrayFilter((t, r, e) -> r = 'buyer_action_overdue' AND t <= toDateTime(@asof) AND toUInt32(t) > e,
			miss_times, miss_reasons, replicate(eng, miss_times)))) AS od,
		if(bh_last != 0 AND bh_o[length(bh_o)] = 'continuation' AND lastc <= bh_last, bh_last, toUInt32(0)) AS nn,
		toUInt32(arrayReduce('min', arrayFilter(t -> t <= toDateTime(@asof), single_threaded_times))) AS st_state,
		single_threaded_filled AS st_filled
	FROM ` + q.from + `
	` + q.prewhere + `
	WHERE ` + q.where + ` AND fi > 0 AND ` + cond
}

// deals is facts(cond) with the single-threaded warning: st, when it began
// (0 = none), and w, the mask of the deal's warnings (see warnBit).
func (q rowsSQL) deals(cond string) string {
	st, join := "st_state", ""
	if q.legacy {
		st = "if(st_filled, st_state, st_events)"
		join = `ANY LEFT JOIN (
	SELECT opportunity_id AS opp_id, toUInt32(min(at)) AS st_events
	FROM (
		SELECT opportunity_id, id, argMax(occurred_at, version) AS at, argMax(retracted, version) AS r
		FROM derived_events
		WHERE tenant = @tenant AND type = 'deal.single_threaded'
		GROUP BY opportunity_id, id
	)
	WHERE r = 0 AND at <= toDateTime(@asof)
	GROUP BY opportunity_id
) USING opp_id`
	}
	return `SELECT opp_id, amt, cur, a_owner, a_team, a_stage, a_status, a_close, hi_step, days, is_open, cgain, ss, od, pd, nn,
	` + st + ` AS st, ` + maskSQL(WarningKinds...) + ` AS w
FROM (` + q.facts(cond) + `) ` + join
}

// filterSQL returns the conditions of f: on the facts (for facts or deals)
// and on the warnings (over deals; "" when f names no warning), with their
// arguments.
func filterSQL(f Filter, step int) (facts, warned string, args []any) {
	conds := []string{"1"}
	if step >= 0 {
		conds = append(conds, "hi_step = @f_step")
		args = append(args, clickhouse.Named("f_step", uint8(step)))
	}
	if f.OwnerID != "" {
		conds = append(conds, "a_owner = @f_owner")
		args = append(args, clickhouse.Named("f_owner", f.OwnerID))
	}
	if f.Team != "" {
		conds = append(conds, "a_team = @f_team")
		args = append(args, clickhouse.Named("f_team", f.Team))
	}
	if f.Status != "" {
		conds = append(conds, "a_status = @f_status")
		args = append(args, clickhouse.Named("f_status", f.Status))
	}
	if f.CloseFrom != nil || f.CloseTo != nil {
		conds = append(conds, "toUInt16(a_close) != 0")
	}
	if f.CloseFrom != nil {
		conds = append(conds, "a_close >= toDate(@f_close_from)")
		args = append(args, clickhouse.Named("f_close_from", f.CloseFrom.UTC().Format(time.DateOnly)))
	}
	if f.CloseTo != nil {
		conds = append(conds, "a_close < toDate(@f_close_to)")
		args = append(args, clickhouse.Named("f_close_to", f.CloseTo.UTC().Format(time.DateOnly)))
	}
	var warn []string
	open := false // some warning is required: only open deals can have one
	has := func(kind string, want bool) {
		if want {
			open = true
			warn = append(warn, "("+warnConds[kind]+")")
		} else {
			warn = append(warn, "NOT ("+warnConds[kind]+")")
		}
	}
	if f.Stalled != nil {
		has(WarnStalled, *f.Stalled)
	}
	if f.SingleThreaded != nil {
		has(WarnSingleThreaded, *f.SingleThreaded)
	}
	switch f.Warning {
	case "":
	case "any":
		open = true
		warn = append(warn, "w != 0")
	default:
		has(f.Warning, true)
	}
	if open {
		conds = append(conds, "is_open")
	}
	return strings.Join(conds, " AND "), strings.Join(warn, " AND "), args
}

// selectDeals is the query of the deals f's conditions select (see
// filterSQL): over facts alone when f names no warning.
func (q rowsSQL) selectDeals(facts, warned string) string {
	if warned == "" {
		return q.facts(facts)
	}
	return `SELECT * FROM (` + q.deals(facts) + `) WHERE ` + warned
}

// paged is an answer with a page of deals.
type paged interface {
	// rows are the page's deals.
	rows() *[]Row
}

func (res *ListResult) rows() *[]Row     { return &res.Deals }
func (res *WarningsResult) rows() *[]Row { return &res.Deals }

// readPage returns the answer fn builds with the queries over a View of
// c.tenant's rows, its context and arguments (those of the view and c, then
// extra), with the page of deals whose ids fn returns: read on the same
// View, then named. Like snapshot.Read it may run fn more than once and
// returns the last run's answer only: fn builds its answer in what it
// returns.
func readPage[T paged](ctx context.Context, r *Reader, c *common, extra []any, fn func(ctx context.Context, q rowsSQL, args []any) (T, []string, error)) (T, error) {
	var zero T
	res, err := snapshot.Read(ctx, r.pin, c.tenant, func(ctx context.Context, v *snapshot.View) (T, error) {
		qctx, err := v.Context(r.queryCtx(ctx))
		if err != nil {
			return zero, err
		}
		pushedAfter := c.asOf.Add(-PushedWindow).Unix()
		args := append([]any{
			clickhouse.Named("tenant", c.tenant),
			clickhouse.Named("asof", uint32(c.asOf.Unix())),
			clickhouse.Named("cstep", uint8(c.l.Index(c.l.Consensus.Step))),
			clickhouse.Named("pushed_after", uint32(max(pushedAfter, 0))),
		}, v.Args()...)
		q := rowsSQL{from: v.From(), prewhere: v.Prewhere(), where: "tenant = @tenant AND " + v.Where()}
		var unfilled uint64
		if err := r.conn.QueryRow(qctx, `SELECT count() FROM (SELECT 1 FROM `+q.from+` `+q.prewhere+`
WHERE `+q.where+` AND single_threaded_filled = 0 LIMIT 1)`, args...).Scan(&unfilled); err != nil {
			return zero, fmt.Errorf("deal states written before migration 0110: %w", err)
		}
		q.legacy = unfilled > 0
		args = append(args, extra...)
		res, ids, err := fn(qctx, q, args)
		if err != nil {
			return zero, err
		}
		if *res.rows(), err = r.page(qctx, c, q, args, ids); err != nil {
			return zero, err
		}
		return res, nil
	})
	if err != nil {
		return zero, err
	}
	if err := r.names(r.queryCtx(ctx), c.tenant, c.asOf, *res.rows()); err != nil {
		return zero, err
	}
	return res, nil
}

// pageIDs returns the ids of the deals of sel (a query of deals' facts,
// see selectDeals) ordered by amount desc then id, at offset, at most size
// of them.
func (r *Reader) pageIDs(ctx context.Context, sel string, args []any, offset, size int) ([]string, error) {
	res, err := r.conn.Query(ctx, `SELECT opp_id FROM (`+sel+`) ORDER BY amt DESC, opp_id LIMIT @offset, @size`,
		append(slices.Clip(args), clickhouse.Named("offset", uint64(offset)), clickhouse.Named("size", uint64(size)))...)
	if err != nil {
		return nil, fmt.Errorf("deals page: %w", err)
	}
	defer res.Close()
	var ids []string
	for res.Next() {
		var id string
		if err := res.Scan(&id); err != nil {
			return nil, fmt.Errorf("deals page scan: %w", err)
		}
		ids = append(ids, id)
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("deals page rows: %w", err)
	}
	return ids, nil
}

// group is the deals of one owner, team, currency and warning mask m: n
// of them, their amounts summing to amount.
type group struct {
	owner, team, cur string
	m                uint8
	n                uint64
	amount           float64
}

// rank reads, in one pass over sel (a query of deals with their facts and
// mask m, an expression over them), the groups of sel's deals with m != 0
// and the ids of those ordered by amount desc then id, at offset, at most
// size of them. Each group keeps its first offset+size ids, and the page
// is cut from their union: the order and the page are those of one ORDER
// BY, without a second pass to find the page (the warnings of every deal
// are what costs to compute).
func (r *Reader) rank(ctx context.Context, sel, m string, args []any, offset, size int) ([]group, []string, error) {
	var (
		owners, teams, curs, ids []string
		ms                       []uint8
		ns                       []uint64
		amounts                  []float64
	)
	err := r.conn.QueryRow(ctx, `SELECT groupArray(a_owner), groupArray(a_team), groupArray(cur), groupArray(m), groupArray(n), groupArray(s),
	arrayMap(x -> x.2, arraySlice(arraySort(groupArrayArray(top)), @offset + 1, @size))
FROM (
	SELECT a_owner, a_team, cur, `+m+` AS m, count() AS n, sum(amt) AS s,
		arraySlice(arraySort(groupArray((-amt, opp_id))), 1, @offset + @size) AS top
	FROM (`+sel+`)
	WHERE m != 0
	GROUP BY a_owner, a_team, cur, m
)`, append(slices.Clip(args), clickhouse.Named("offset", uint64(offset)), clickhouse.Named("size", uint64(size)))...).Scan(
		&owners, &teams, &curs, &ms, &ns, &amounts, &ids)
	if err != nil {
		return nil, nil, fmt.Errorf("rank deals: %w", err)
	}
	groups := make([]group, len(owners))
	for i := range groups {
		groups[i] = group{owner: owners[i], team: teams[i], cur: curs[i], m: ms[i], n: ns[i], amount: amounts[i]}
	}
	return groups, ids, nil
}

// page reads the deals ids, in that order, with their facts and warnings,
// computed for these deals alone. (Bound, not as an IN subquery picking
// them: that made the query ten times slower on ClickHouse 18.16.)
func (r *Reader) page(ctx context.Context, c *common, q rowsSQL, args []any, ids []string) ([]Row, error) {
	if len(ids) == 0 {
		return []Row{}, nil
	}
	set := make([]any, len(ids))
	for i, id := range ids {
		set[i] = id
	}
	res, err := r.conn.Query(ctx, `SELECT opp_id, amt, cur, a_owner, a_team, a_stage, a_status, a_close, hi_step, days, w, ss, st, od, pd, nn
FROM (`+q.deals("opportunity_id IN @page_ids")+`)
ORDER BY amt DESC, opp_id`, append(slices.Clip(args), clickhouse.Named("page_ids", clickhouse.GroupSet{Value: set}))...)
	if err != nil {
		return nil, fmt.Errorf("deals page: %w", err)
	}
	defer res.Close()
	out := []Row{}
	for res.Next() {
		var (
			d                  Row
			cur                string
			closeDate          time.Time
			hiStep, w          uint8
			ss, st, od, pd, nn uint32
		)
		if err := res.Scan(&d.OpportunityID, &d.Amount, &cur, &d.OwnerID, &d.Team, &d.Stage, &d.Status, &closeDate,
			&hiStep, &d.DaysSinceCommitment, &w, &ss, &st, &od, &pd, &nn); err != nil {
			return nil, fmt.Errorf("deals page scan: %w", err)
		}
		d.Currency = cur
		d.CloseDate = dateString(closeDate)
		d.StepIndex, d.Step = int(hiStep), c.stepName(int(hiStep))
		d.Warnings = warnings(w, [...]uint32{ss, st, od, pd, nn})
		out = append(out, d)
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("deals page rows: %w", err)
	}
	return out, nil
}

// warnings lists the warnings of mask w, since[i] being when
// WarningKinds[i] began.
func warnings(w uint8, since [5]uint32) []Warning {
	out := []Warning{}
	for i, kind := range WarningKinds {
		if w&(1<<i) != 0 {
			out = append(out, Warning{Kind: kind, Since: time.Unix(int64(since[i]), 0).UTC()})
		}
	}
	return out
}

// names fills in the deals' names: the name of the last opportunity
// event at or before asOf that gave one.
func (r *Reader) names(ctx context.Context, tenant string, asOf time.Time, rows []Row) error {
	if len(rows) == 0 {
		return nil
	}
	ids := make([]any, len(rows))
	for i := range rows {
		ids[i] = rows[i].OpportunityID
	}
	res, err := r.conn.Query(ctx, `SELECT opportunity_id, payload FROM events
WHERE tenant = @tenant AND opportunity_id IN @ids AND occurred_at <= toDateTime(@asof)
	AND type IN ('opportunity.created', 'opportunity.updated') AND position(payload, '"name"') > 0`,
		clickhouse.Named("tenant", tenant), clickhouse.Named("ids", clickhouse.GroupSet{Value: ids}),
		clickhouse.Named("asof", uint32(asOf.Unix())))
	if err != nil {
		return fmt.Errorf("deal names: %w", err)
	}
	defer res.Close()
	best := map[string]nameOf{}
	for res.Next() {
		var opp, payload string
		if err := res.Scan(&opp, &payload); err != nil {
			return fmt.Errorf("deal names: %w", err)
		}
		n, ok := eventName(payload)
		if !ok {
			continue
		}
		if b, seen := best[opp]; !seen || laterEvent(n.at, n.src, n.id, b.at, b.src, b.id) {
			best[opp] = n
		}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("deal names: %w", err)
	}
	for i := range rows {
		rows[i].Name = best[rows[i].OpportunityID].name
	}
	return nil
}

// nameOf is the name an opportunity event gives, with what orders it.
type nameOf struct {
	at      time.Time
	src, id string
	name    string
}

// eventName reads the deal name of an opportunity event's JSON.
func eventName(payload string) (nameOf, bool) {
	var e struct {
		ID         string    `json:"id"`
		Source     string    `json:"source"`
		OccurredAt time.Time `json:"occurred_at"`
		Payload    struct {
			Name string `json:"name"`
		} `json:"payload"`
	}
	if json.Unmarshal([]byte(payload), &e) != nil || e.Payload.Name == "" {
		return nameOf{}, false
	}
	return nameOf{e.OccurredAt, e.Source, e.ID, e.Payload.Name}, true
}

// laterEvent reports whether event a comes after event b in the fold's
// order (occurred_at, source, id).
func laterEvent(aAt time.Time, aSrc, aID string, bAt time.Time, bSrc, bID string) bool {
	if !aAt.Equal(bAt) {
		return aAt.After(bAt)
	}
	if aSrc != bSrc {
		return aSrc > bSrc
	}
	return aID > bID
}

// List answers a page of the deals lq.Filter selects. A bad parameter is a
// *param.Error naming it.
func (r *Reader) List(ctx context.Context, lq ListQuery) (*ListResult, error) {
	c, err := check(lq.Tenant, lq.AsOf, lq.Ladder)
	if err != nil {
		return nil, err
	}
	step, err := c.checkFilter(lq.Filter)
	if err != nil {
		return nil, err
	}
	page, size, err := checkPage(lq.Page, lq.PageSize)
	if err != nil {
		return nil, err
	}
	facts, warned, fargs := filterSQL(lq.Filter, step)
	offset := (page - 1) * size
	return readPage(ctx, r, &c, fargs, func(ctx context.Context, q rowsSQL, args []any) (*ListResult, []string, error) {
		res := &ListResult{Definitions: c.defs, Filter: lq.Filter, Page: page, PageSize: size}
		res.Definitions.Rules = append(slices.Clone(listRules), WarningRules...)
		sel := q.selectDeals(facts, warned)
		var (
			ids []string
			err error
		)
		if warned != "" {
			// The warnings cost: count and page in one pass.
			var groups []group
			if groups, ids, err = r.rank(ctx, sel, "toUInt8(1)", args, offset, size); err != nil {
				return nil, nil, err
			}
			for _, g := range groups {
				res.Total += int64(g.n)
			}
		} else {
			// Two cheap passes over the facts.
			var n uint64
			if err := r.conn.QueryRow(ctx, `SELECT count() FROM (`+sel+`)`, args...).Scan(&n); err != nil {
				return nil, nil, fmt.Errorf("count deals: %w", err)
			}
			if res.Total = int64(n); int64(offset) < res.Total {
				if ids, err = r.pageIDs(ctx, sel, args, offset, size); err != nil {
					return nil, nil, err
				}
			}
		}
		return res, ids, nil
	})
}

// Warnings answers the deals with warnings as of wq.AsOf, summed by kind,
// owner and team, and a page of them. A bad parameter is a *param.Error
// naming it.
func (r *Reader) Warnings(ctx context.Context, wq WarningsQuery) (*WarningsResult, error) {
	c, err := check(wq.Tenant, wq.AsOf, wq.Ladder)
	if err != nil {
		return nil, err
	}
	f := Filter{OwnerID: wq.OwnerID, Team: wq.Team, Warning: wq.Kind}
	if f.Warning == "" {
		f.Warning = "any"
	}
	if f.Warning != "any" && !slices.Contains(WarningKinds, f.Warning) {
		return nil, param.Errorf("kind", param.Invalid, "want any or one of %s, got %q", strings.Join(WarningKinds, ", "), f.Warning)
	}
	page, size, err := checkPage(wq.Page, wq.PageSize)
	if err != nil {
		return nil, err
	}
	facts, _, fargs := filterSQL(f, -1)
	// The mask counted: every warning, or only the one asked for.
	mask := "w"
	if f.Warning != "any" {
		mask = maskSQL(f.Warning)
	}
	return readPage(ctx, r, &c, fargs, func(ctx context.Context, q rowsSQL, args []any) (*WarningsResult, []string, error) {
		res := &WarningsResult{Definitions: c.defs, Filter: f, Page: page, PageSize: size}
		res.Definitions.Rules = append(slices.Clone(WarningRules),
			"total, by_kind, by_owner and by_team count each deal once in deals and once per kind in kinds; amounts_by_currency sums the deals' amounts per currency, never across currencies",
			"owner and team are the facts as of as_of; the deals are ordered by amount desc (each in its own currency), then opportunity_id")
		groups, ids, err := r.rank(ctx, q.deals(facts), mask, args, (page-1)*size, size)
		if err != nil {
			return nil, nil, fmt.Errorf("warnings: %w", err)
		}
		sum := newSummary(f.Warning)
		for _, g := range groups {
			sum.add(g.owner, g.team, g.cur, g.m, int64(g.n), g.amount)
		}
		res.Total, res.ByKind, res.ByOwner, res.ByTeam = sum.result()
		return res, ids, nil
	})
}

// summary accumulates the warnings' counts.
type summary struct {
	only                 string // "any" or the one kind counted
	total                WarningCounts
	kinds, owners, teams map[string]*WarningCounts
}

func newSummary(only string) *summary {
	return &summary{only: only, total: newCounts(""), kinds: map[string]*WarningCounts{},
		owners: map[string]*WarningCounts{}, teams: map[string]*WarningCounts{}}
}

func newCounts(key string) WarningCounts {
	return WarningCounts{Key: key, Kinds: map[string]int64{}, AmountsByCurrency: map[string]float64{}}
}

// add counts n deals of owner and team in currency cur with the warnings w
// and amounts summing to amount.
func (s *summary) add(owner, team, cur string, w uint8, n int64, amount float64) {
	get := func(m map[string]*WarningCounts, key string) *WarningCounts {
		if m[key] == nil {
			c := newCounts(key)
			m[key] = &c
		}
		return m[key]
	}
	targets := []*WarningCounts{&s.total, get(s.owners, owner), get(s.teams, team)}
	for i, kind := range WarningKinds {
		if w&(1<<i) == 0 || s.only != "any" && kind != s.only {
			continue
		}
		targets = append(targets, get(s.kinds, kind))
	}
	for _, t := range targets {
		t.Deals += n
		t.AmountsByCurrency[cur] += amount
		for i, kind := range WarningKinds {
			if w&(1<<i) != 0 && (s.only == "any" || kind == s.only) {
				t.Kinds[kind] += n
			}
		}
	}
}

// result returns the total and the breakdowns: kinds in WarningKinds
// order, owners and teams by deals desc, then key.
func (s *summary) result() (WarningCounts, []WarningCounts, []WarningCounts, []WarningCounts) {
	kinds := []WarningCounts{}
	for _, kind := range WarningKinds {
		if c := s.kinds[kind]; c != nil {
			kinds = append(kinds, *c)
		} else if s.only == "any" || s.only == kind {
			kinds = append(kinds, newCounts(kind))
		}
	}
	sorted := func(m map[string]*WarningCounts) []WarningCounts {
		out := make([]WarningCounts, 0, len(m))
		for _, c := range m {
			out = append(out, *c)
		}
		slices.SortFunc(out, func(a, b WarningCounts) int {
			if a.Deals != b.Deals {
				if a.Deals > b.Deals {
					return -1
				}
				return 1
			}
			return strings.Compare(a.Key, b.Key)
		})
		return out
	}
	return s.total, kinds, sorted(s.owners), sorted(s.teams)
}
