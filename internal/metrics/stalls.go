package metrics

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/commitflow/commitflow/internal/fx"
	"github.com/commitflow/commitflow/internal/param"
	"github.com/commitflow/commitflow/internal/readmodel"
)

// StallsQuery asks where open deals sit and which are stalled, as of AsOf.
type StallsQuery struct {
	Tenant string
	// AsOf is the instant the answer is computed at; zero means now.
	AsOf time.Time
	// Page is the 1-based page of stalled deals (0 means 1); PageSize its
	// size (0 means DefaultPageSize, at most MaxPageSize).
	Page, PageSize int
	Ladder         []string
	LadderVersion  string
	// Currency is the currency to convert the amounts to with the
	// Querier's rate table; "" means its base currency.
	Currency string
}

// StallsResult is the open pipeline by highest step reached. Its scalar
// amounts follow the rule of FunnelCounts: one currency, converted, or nil.
type StallsResult struct {
	Definitions   Definitions `json:"definitions"`
	Open          int64       `json:"open"`
	OpenAmount    *float64    `json:"open_amount"`
	Stalled       int64       `json:"stalled"`
	StalledAmount *float64    `json:"stalled_amount"`
	// AmountsByCurrency holds the amounts per currency, unconverted.
	AmountsByCurrency map[string]StallAmounts `json:"amounts_by_currency,omitempty"`
	// Steps lists step 0 (no commitment yet) to the last ladder step, and
	// any higher step index found in the data.
	Steps    []StallStep   `json:"steps"`
	Page     int           `json:"page"`
	PageSize int           `json:"page_size"`
	Deals    []StalledDeal `json:"deals"`
}

// StallStep is the open deals whose highest step reached is StepIndex.
type StallStep struct {
	StepIndex  int      `json:"step_index"`
	Step       string   `json:"step"`
	Open       int64    `json:"open"`
	OpenAmount *float64 `json:"open_amount"`
	// DaysSinceCommitment is the histogram of days since the last
	// commitment (or since creation when none).
	DaysSinceCommitment []Bucket `json:"days_since_commitment"`
	Stalled             int64    `json:"stalled"`
	StalledAmount       *float64 `json:"stalled_amount"`
	// AmountsByCurrency holds the amounts per currency, unconverted.
	AmountsByCurrency map[string]StallAmounts `json:"amounts_by_currency,omitempty"`
}

// StallAmounts are the amounts of open and stalled deals in one currency.
type StallAmounts struct {
	OpenAmount    float64 `json:"open_amount"`
	StalledAmount float64 `json:"stalled_amount"`
}

func stallAmounts(a []float64) StallAmounts {
	return StallAmounts{OpenAmount: a[0], StalledAmount: a[1]}
}

// stallScalars returns the scalar amounts of by, as m says.
func stallScalars(m fx.Money, by map[string]StallAmounts) (open, stalled *float64) {
	return sum(m, by, func(a StallAmounts) float64 { return a.OpenAmount }),
		sum(m, by, func(a StallAmounts) float64 { return a.StalledAmount })
}

// StalledDeal is one stalled open deal, with its facts as of AsOf.
type StalledDeal struct {
	OpportunityID string `json:"opportunity_id"`
	OwnerID       string `json:"owner_id"`
	Team          string `json:"team"`
	// Amount is in the deal's own Currency ("" = none given), never
	// converted.
	Amount              float64   `json:"amount"`
	Currency            string    `json:"currency"`
	StepIndex           int       `json:"step_index"`
	Step                string    `json:"step"`
	DaysSinceCommitment int64     `json:"days_since_commitment"`
	StalledSince        time.Time `json:"stalled_since"`
}

var stallsRules = []string{
	"open = has a derived event at or before as_of and no deal.closed at or before as_of",
	"step = highest step index of its commitment.gained at or before as_of (0 = none)",
	"reference time = last commitment.gained at or before as_of, else deal.created, else the first derived event",
	"days since commitment = floor((as_of - reference time) / 86400)",
	"stalled = has a deal.stalled at or before as_of, at or after the reference time and after its last deal.closed at or before as_of (a reopened deal's stall clock restarts at the reopen); stalled_since = the earliest such",
	"amount, currency, owner and team are the facts as of as_of; deals ordered by amount desc (each in its own currency), opportunity_id",
}

// openDeals returns outer run over {rows}: one row per opportunity of
// the tenant's rows of from (opportunity_state [FINAL]) selected by
// prewhere and where that is open as of @asof, with its highest step,
// facts, reference time, first stall counted (ss, see
// readmodel.StallColumns) and days since the reference time. Times are
// UInt32 seconds, 0 meaning none. The open deals are selected first and
// the rule computed on them alone. With latest (shape.latestBy @asof)
// the facts and highest step are the latest_* columns and reached_steps,
// which saves reading every fact of every deal (at 10M raw events it
// reads 81 MB instead of ~290).
func openDeals(outer, from, prewhere, where string, latest bool) string {
	fi := readmodel.FactIndex("@asof")
	facts := fi + ` AS fi,
			amounts[fi] AS amt,
			` + curSQL("currencies", "fi") + ` AS cur,
			` + readmodel.FactRun("owner", "@asof") + ` AS a_owner,
			` + readmodel.FactRun("team", "@asof") + ` AS a_team,
			` + readmodel.HighestStep("@asof") + ` AS hi_step`
	cols, closed := "fact_times, amounts, currencies, owner_runs, owner_run_times, team_runs, team_run_times, reach", "fact_closed["+fi+"]"
	if latest {
		facts = `latest_amount AS amt,
			reinterpretAsUInt32(latest_currency) AS cur,
			latest_owner AS a_owner,
			latest_team AS a_team,
			reached_steps AS hi_step`
		cols, closed = "latest_amount, latest_currency, latest_owner, latest_team, reached_steps", "fact_closed[-1]"
	}
	return strings.Replace(outer, "{rows}", `SELECT opp_id, hi_step, amt, cur, a_owner, a_team, ref, ss, ss != 0 AS stalled, days
	FROM (
		SELECT opportunity_id AS opp_id,
			`+facts+`,
			`+readmodel.StallColumns+`
		FROM (
			SELECT opportunity_id, `+cols+`, gain_times,
				created_at, created_seen, first_at, close_times, stall_times
			FROM `+from+`
			`+prewhere+`
			WHERE `+where+`
				AND first_at != toDateTime(0) AND first_at <= toDateTime(@asof)
				AND `+closed+` = 0
		)
	)`, 1)
}

// Stalls computes the open pipeline by highest step and the stalled deals.
func (q *Querier) Stalls(ctx context.Context, sq StallsQuery) (*StallsResult, error) {
	c, err := validateCommon(sq.Tenant, sq.AsOf, sq.Ladder, sq.LadderVersion, 1)
	if err != nil {
		return nil, err
	}
	ask, err := q.checkCurrency(sq.Currency)
	if err != nil {
		return nil, err
	}
	page, size := sq.Page, sq.PageSize
	if page == 0 {
		page = 1
	}
	if size == 0 {
		size = DefaultPageSize
	}
	if page < 1 || page > 1_000_000 {
		return nil, param.Errorf("page", param.OutOfRange, "must be between 1 and 1000000")
	}
	if size < 1 || size > MaxPageSize {
		return nil, param.Errorf("page_size", param.OutOfRange, "must be between 1 and %d", MaxPageSize)
	}
	rows, err := readScan(ctx, q, c.tenant, func(s *scan) ([]stallsRow, error) {
		args := append([]any{
			clickhouse.Named("tenant", c.tenant),
			clickhouse.Named("asof", ts(c.asOf)),
			clickhouse.Named("upto", uint64(page*size)),
		}, s.args...)
		return queryRows(s, q.conn, "stalls", stallsSQL(s.shape, s.latestBy(ts(c.asOf))), args, (*stallsRow).dest)
	})
	if err != nil {
		return nil, err
	}
	return assembleStalls(c, rows, page, size, ask)
}

// stallsPage holds the stalled deals of one group, in the page's order
// (amount descending, then opportunity id), as parallel arrays.
const stallsPage = `arraySlice(arraySort(groupArrayIf((-amt, opp_id, a_owner, a_team, cur, days, ss), stalled)), 1, @upto) AS top`

// stallsSQL is the query of the stalls answer on sh, one pass over the
// open deals: the counts, amounts and histograms per highest step and
// currency, and beside them each group's first @upto stalled deals in the
// page's order (stallsRow); latest as openDeals takes it.
func stallsSQL(sh shape, latest bool) string {
	return `SELECT toUInt8(hi_step), toUInt64(sum(n0)), toUInt64(sum(n1)), ` + sumMapSQL("a0", "a1") + bucketSumsSQL() + `,
	arrayMap(x -> -tupleElement(x, 1), groupArrayArray(top) AS tops), arrayMap(x -> tupleElement(x, 2), tops),
	arrayMap(x -> tupleElement(x, 3), tops), arrayMap(x -> tupleElement(x, 4), tops),
	arrayMap(x -> tupleElement(x, 5), tops), arrayMap(x -> toInt64(tupleElement(x, 6)), tops),
	arrayMap(x -> toUInt32(tupleElement(x, 7)), tops)
	FROM ` + sh.fanout(func(where string) string {
		return openDeals(`SELECT hi_step, cur, count() AS n0, sum(amt) AS a0, countIf(stalled) AS n1, sumIf(amt, stalled) AS a1,
		`+stallsPage+bucketCountsSQL(bucketIndexSQL("days * 86400", "1"))+`
		FROM ({rows})
		GROUP BY hi_step, cur`, sh.from, sh.prewhere, where, latest)
	}) + `
	GROUP BY hi_step
	ORDER BY hi_step`
}

// stallsRow is one row of stallsSQL: the open deals whose highest step is
// step, and the first stalled ones among them.
type stallsRow struct {
	step          uint8
	open, stalled uint64
	// curs are the currencies of the open and stalled amounts sums[0] and
	// sums[1] (see sumMapSQL).
	curs []uint32
	sums [][]float64
	// hist counts the open deals per bucket of days since commitment.
	hist [len(bucketEdges)]uint64
	// The group's first stalled deals in the page's order, as parallel
	// arrays: amount, id, owner, team, currency (see curSQL), days since
	// commitment and stalled since (UInt32 seconds).
	amounts             []float64
	opps, owners, teams []string
	currencies          []uint32
	days                []int64
	since               []uint32
}

// dest returns the scan destinations of r's columns.
func (r *stallsRow) dest() []any {
	r.sums = make([][]float64, 2)
	dest := append([]any{&r.step, &r.open, &r.stalled}, sumMapDest(&r.curs, r.sums)...)
	for i := range r.hist {
		dest = append(dest, &r.hist[i])
	}
	return append(dest, &r.amounts, &r.opps, &r.owners, &r.teams, &r.currencies, &r.days, &r.since)
}

// assembleStalls makes the stalls answer of c from the rows of stallsSQL:
// every step from 0 to the ladder's last and any higher one found, the
// totals, and the deals of page (of size) among all the groups' stalled
// deals, amount descending then opportunity id; the scalar amounts as ask
// says.
func assembleStalls(c common, rows []stallsRow, page, size int, ask moneyAsk) (*StallsResult, error) {
	res := &StallsResult{Definitions: c.defs, Page: page, PageSize: size, Deals: []StalledDeal{}}
	res.Definitions.Rules = stallsRules
	found := map[int]StallStep{}
	var stalled []StalledDeal
	for _, r := range rows {
		i := int(r.step)
		st := StallStep{StepIndex: i, Open: int64(r.open), Stalled: int64(r.stalled),
			AmountsByCurrency: byCurrency(r.curs, r.sums, stallAmounts), DaysSinceCommitment: newBuckets()}
		for j := range r.hist {
			st.DaysSinceCommitment[j].Count = int64(r.hist[j])
		}
		found[i] = st
		for j := range r.amounts {
			stalled = append(stalled, StalledDeal{OpportunityID: r.opps[j], OwnerID: r.owners[j], Team: r.teams[j],
				Amount: r.amounts[j], Currency: curCode(r.currencies[j]), StepIndex: i, Step: stepName(c.ladder, i),
				DaysSinceCommitment: r.days[j], StalledSince: time.Unix(int64(r.since[j]), 0).UTC()})
		}
	}
	extra := map[int]bool{}
	for i := range found {
		extra[i] = true
	}
	for _, i := range stepRows(c.ladder, extra) {
		st, ok := found[i]
		if !ok {
			st = StallStep{StepIndex: i, DaysSinceCommitment: newBuckets()}
		}
		st.Step = stepName(c.ladder, i)
		res.Steps = append(res.Steps, st)
		res.Open += st.Open
		res.Stalled += st.Stalled
		for c, a := range st.AmountsByCurrency {
			if res.AmountsByCurrency == nil {
				res.AmountsByCurrency = map[string]StallAmounts{}
			}
			t := res.AmountsByCurrency[c]
			t.OpenAmount += a.OpenAmount
			t.StalledAmount += a.StalledAmount
			res.AmountsByCurrency[c] = t
		}
	}
	slices.SortFunc(stalled, func(a, b StalledDeal) int {
		if c := cmp.Compare(b.Amount, a.Amount); c != 0 {
			return c
		}
		return strings.Compare(a.OpportunityID, b.OpportunityID)
	})
	if offset, upto := (page-1)*size, page*size; offset < len(stalled) {
		res.Deals = stalled[offset:min(upto, len(stalled))]
	}
	present := map[string]bool{}
	addCurrencies(present, res.AmountsByCurrency)
	m, err := ask.money(c.asOf, present, &res.Definitions)
	if err != nil {
		return nil, err
	}
	res.OpenAmount, res.StalledAmount = stallScalars(m, res.AmountsByCurrency)
	for i := range res.Steps {
		st := &res.Steps[i]
		st.OpenAmount, st.StalledAmount = stallScalars(m, st.AmountsByCurrency)
	}
	return res, nil
}
