// Package deals is the deal read model: one deal's history as of a date
// (its facts, the steps it reached, its raw and derived events, misses,
// stakeholders, CRM stage history and open warnings), paged lists of deals
// filtered by step, owner, team, status, close period and warning, and the
// deal warnings a manager should look at today, summed by kind, owner and
// team.
//
// Lists read opportunity_state (schemas/clickhouse/0101_opportunity_state.sql)
// through a snapshot.View, as the metrics do: every filter is a condition
// on the per-deal row computed as of the date, and the page is cut in SQL.
// A list counts and orders the deals on their facts and computes the
// warnings a filter names, only those, then the warnings of the page's
// deals alone (reading every deal's miss and interaction arrays is what
// costs). States written before migration 0110 hold no deal.single_threaded
// times; while a tenant has such rows, lists join its current
// deal.single_threaded events of derived_events for them. One deal's page
// reads its stored input and derived events.
//
// Warnings are defined from the derived events (see WarningRules); a deal
// has a warning as of D only while it is open as of D.
package deals

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/param"
	"github.com/commitflow/commitflow/internal/snapshot"
	"github.com/commitflow/commitflow/internal/store"
)

// Reader answers the deal queries of one ClickHouse database.
type Reader struct {
	st   *store.Store
	conn driver.Conn
	pin  *snapshot.Pinner
	// maxThreads, when above 0, sets max_threads for every query.
	maxThreads int
}

// New returns a Reader of st, reading opportunity_state through pin's
// Views; nil pin means a Pinner of the Reader's own. Share the metrics'
// Pinner to share its cache. maxThreads, when above 0, sets max_threads
// for the list queries (see metrics.Options.MaxThreads).
func New(st *store.Store, pin *snapshot.Pinner, maxThreads int) *Reader {
	if pin == nil {
		pin = snapshot.New(st.Conn())
	}
	return &Reader{st: st, conn: st.Conn(), pin: pin, maxThreads: maxThreads}
}

// NotFoundError is a deal, or a whole tenant, of which nothing is stored;
// the API answers it with 404.
type NotFoundError struct {
	Tenant string
	// OpportunityID is the deal asked for; "" when the tenant itself is
	// unknown.
	OpportunityID string
	// UnknownTenant is set when the tenant has no deal at all.
	UnknownTenant bool
	// AsOf is set when the deal exists but had no event yet at this time.
	AsOf *time.Time
}

func (e *NotFoundError) Error() string {
	switch {
	case e.UnknownTenant && e.OpportunityID != "":
		return fmt.Sprintf("no deal %q: tenant %q has no data (unknown tenant, or nothing derived yet)", e.OpportunityID, e.Tenant)
	case e.UnknownTenant:
		return fmt.Sprintf("tenant %q has no data (unknown tenant, or nothing derived yet)", e.Tenant)
	case e.AsOf != nil:
		return fmt.Sprintf("deal %q of tenant %q has no event at or before as_of %s", e.OpportunityID, e.Tenant, e.AsOf.Format(time.RFC3339))
	}
	return fmt.Sprintf("no deal %q in tenant %q", e.OpportunityID, e.Tenant)
}

// Warning kinds.
const (
	WarnStalled            = "stalled"
	WarnSingleThreaded     = "single_threaded"
	WarnBuyerActionOverdue = "buyer_action_overdue"
	WarnCloseDatePushed    = "close_date_pushed"
	WarnNoNextStep         = "no_next_step"
)

// WarningKinds lists the warning kinds in a fixed order; the i-th is bit
// 1<<i of a deal's warning mask.
var WarningKinds = []string{WarnStalled, WarnSingleThreaded, WarnBuyerActionOverdue, WarnCloseDatePushed, WarnNoNextStep}

// PushedWindow is how long a close date pushed stays a warning.
const PushedWindow = 30 * 24 * time.Hour

// WarningRules are the definitions of the warnings in words.
var WarningRules = []string{
	"a warning holds as of as_of only while the deal is open as of as_of (its facts' status), from its derived events at or before as_of",
	"stalled: a deal.stalled at or after the reference time (the last commitment.gained, else deal.created, else the first derived event) and after the deal's last deal.closed (a reopened deal's stall clock restarts at the reopen) — the stalled deals of /v1/stalls; cleared by a later commitment.gained; since = the earliest such deal.stalled",
	"single_threaded: a deal.single_threaded (at or past single_threaded_from with fewer engaged buyer stakeholders than consensus needs); cleared when the consensus step itself is gained after it; since = the deal.single_threaded",
	"buyer_action_overdue: a commitment.missed buyer_action_overdue after the last buyer engagement (a commitment.gained, or an interaction.held whose interaction was not missed as no_buyer_present); since = the earliest such miss",
	"close_date_pushed: a commitment.missed close_date_pushed in the 30 days up to as_of (after as_of - 30 days); since = the latest",
	"no_next_step: the last interaction.held with a buyer present (not missed as no_buyer_present) ended as a continuation (missed as no_next_step or seller_only_actions) and no commitment.gained came after it; since = that interaction",
}

// listRules are the definitions of a deal row in words.
var listRules = []string{
	"a deal is listed as of as_of when it has a derived event at or before as_of; its facts (amount, currency, close date, stage, status, owner, team) are those after every input event at or before as_of",
	"step = highest step index of its commitment.gained at or before as_of (0 = none)",
	"days since commitment = floor((as_of - reference time) / 86400), the reference time being the last commitment.gained at or before as_of, else deal.created, else the first derived event",
	"close_from/close_to filter on the close date as of as_of: close_from <= close date < close_to",
	"deals ordered by amount desc (each in its own currency, never converted), then opportunity_id",
}

// common holds the checked parameters of every query.
type common struct {
	tenant string
	asOf   time.Time
	l      *ladder.Ladder
	steps  []string
	defs   metrics.Definitions
}

// maxTenantLen bounds the tenant name.
const maxTenantLen = 256

// minTime and maxTime bound the instants a DateTime column can hold.
var (
	minTime = time.Unix(1, 0).UTC()
	maxTime = time.Unix(1<<32-1, 0).UTC()
)

// check validates tenant, as_of (zero means now) and the ladder.
func check(tenant string, asOf time.Time, l *ladder.Ladder) (common, error) {
	var c common
	if tenant == "" {
		return c, param.Errorf("tenant", param.Required, "required")
	}
	if len(tenant) > maxTenantLen {
		return c, param.Errorf("tenant", param.OutOfRange, "longer than %d bytes", maxTenantLen)
	}
	if l == nil || l.Len() == 0 {
		return c, param.Errorf("ladder", param.Required, "required")
	}
	if asOf.IsZero() {
		asOf = time.Now()
	}
	asOf = asOf.UTC().Truncate(time.Second)
	if asOf.Before(minTime) || asOf.After(maxTime) {
		return c, param.Errorf("as_of", param.OutOfRange, "out of range %s..%s", minTime.Format(time.RFC3339), maxTime.Format(time.RFC3339))
	}
	c.tenant, c.asOf, c.l = tenant, asOf, l
	c.steps = make([]string, l.Len())
	for i := range c.steps {
		c.steps[i] = l.Key(i + 1)
	}
	c.defs = metrics.Definitions{Tenant: tenant, AsOf: asOf, LadderVersion: l.Version, Ladder: c.steps}
	return c, nil
}

// stepName is the ladder key of a 1-based step index, "" for 0.
func (c *common) stepName(i int) string {
	if i >= 1 && i <= len(c.steps) {
		return c.steps[i-1]
	}
	return ""
}

// queryCtx adds the settings every list query runs with: those of every
// read of opportunity_state (snapshot.QueryContext), with r's max_threads.
func (r *Reader) queryCtx(ctx context.Context) context.Context {
	return snapshot.QueryContext(ctx, r.maxThreads)
}

// knownTenant reports whether the tenant has any opportunity state.
func (r *Reader) knownTenant(ctx context.Context, tenant string) (bool, error) {
	var n uint64
	err := r.conn.QueryRow(ctx, `SELECT count() FROM (SELECT 1 FROM `+snapshot.Table+` WHERE tenant = @tenant LIMIT 1)`,
		clickhouse.Named("tenant", tenant)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up tenant %q: %w", tenant, err)
	}
	return n > 0, nil
}

// dateString renders a close date, nil for none.
func dateString(t time.Time) *string {
	if t.IsZero() || t.Unix() <= 0 {
		return nil
	}
	s := t.UTC().Format(time.DateOnly)
	return &s
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() || t.Unix() <= 0 {
		return nil
	}
	t = t.UTC()
	return &t
}
