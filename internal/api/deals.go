package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/commitflow/commitflow/internal/deals"
	"github.com/commitflow/commitflow/internal/param"
)

// Parameters of the deal endpoints.
var (
	paramDealAsOf   = Param{"as_of", "answer as it would have been at this time (YYYY-MM-DD or RFC 3339); default now"}
	paramDealsPage  = Param{"page", "1-based page of the deal list; default 1"}
	paramDealsSize  = Param{"page_size", fmt.Sprintf("deals per page, 1..%d; default %d", deals.MaxPageSize, deals.DefaultPageSize)}
	paramDealsOwner = Param{"owner", "only the deals of this owner id (as of as_of)"}
	paramDealsTeam  = Param{"team", "only the deals of this team (as of as_of)"}
)

// DealListParams are the parameters of GET /v1/deals.
func DealListParams() []Param {
	return []Param{
		paramDealAsOf, paramDealsPage, paramDealsSize, paramDealsOwner, paramDealsTeam,
		{"step", "only the deals whose highest step reached is this ladder step (its key)"},
		{"status", "open, won or lost (as of as_of)"},
		{"stalled", "true: only stalled deals; false: only deals not stalled"},
		{"single_threaded", "true: only single-threaded deals; false: only the others"},
		{"warning", "any, or one warning kind: " + joinKinds()},
		{"close_from", "only deals whose close date (as of as_of) is on or after this date"},
		{"close_to", "only deals whose close date (as of as_of) is before this date"},
	}
}

// WarningsParams are the parameters of GET /v1/warnings.
func WarningsParams() []Param {
	return []Param{
		paramDealAsOf, paramDealsPage, paramDealsSize, paramDealsOwner, paramDealsTeam,
		{"kind", "any (default), or one warning kind: " + joinKinds()},
	}
}

// DealParams are the parameters of GET /v1/deals/{id}.
func DealParams() []Param { return []Param{paramDealAsOf} }

func joinKinds() string {
	s := ""
	for i, k := range deals.WarningKinds {
		if i > 0 {
			s += ", "
		}
		s += k
	}
	return s
}

// ParseDealList parses the parameters of GET /v1/deals for the scope s.
func ParseDealList(v url.Values, s Scope) (deals.ListQuery, error) {
	p := newParser(v, DealListParams())
	page, size := p.dealsPage()
	q := deals.ListQuery{
		Tenant: s.Tenant, Ladder: s.Ladder, AsOf: p.asOf(), Page: page, PageSize: size,
		Filter: deals.Filter{
			Step:           p.str("step"),
			OwnerID:        p.str("owner"),
			Team:           p.str("team"),
			Status:         p.enum("status", "", "open", "won", "lost"),
			Stalled:        p.boolean("stalled"),
			SingleThreaded: p.boolean("single_threaded"),
			Warning:        p.enum("warning", "", append([]string{"any"}, deals.WarningKinds...)...),
		},
	}
	if from := p.date("close_from", time.Time{}); !from.IsZero() {
		q.Filter.CloseFrom = &from
	}
	if to := p.date("close_to", time.Time{}); !to.IsZero() {
		q.Filter.CloseTo = &to
	}
	if q.Filter.CloseFrom != nil && q.Filter.CloseTo != nil {
		p.before(*q.Filter.CloseFrom, *q.Filter.CloseTo, "close_from", "close_to")
	}
	return q, p.err
}

// ParseWarnings parses the parameters of GET /v1/warnings for the scope s.
func ParseWarnings(v url.Values, s Scope) (deals.WarningsQuery, error) {
	p := newParser(v, WarningsParams())
	page, size := p.dealsPage()
	q := deals.WarningsQuery{
		Tenant: s.Tenant, Ladder: s.Ladder, AsOf: p.asOf(), Page: page, PageSize: size,
		OwnerID: p.str("owner"),
		Team:    p.str("team"),
		Kind:    p.enum("kind", "any", append([]string{"any"}, deals.WarningKinds...)...),
	}
	return q, p.err
}

// dealsPage returns the page and page_size parameters of a deal list.
func (p *parser) dealsPage() (page, size int) {
	return p.integer("page", 1, 1, deals.MaxPage), p.integer("page_size", deals.DefaultPageSize, 1, deals.MaxPageSize)
}

// boolean returns the parameter as true or false, nil when it is absent.
func (p *parser) boolean(name string) *bool {
	switch p.str(name) {
	case "":
		return nil
	case "true":
		b := true
		return &b
	case "false":
		b := false
		return &b
	}
	p.fail(name, param.Invalid, "want true or false, got %q", truncate(p.str(name)))
	return nil
}

// dealRoutes are the deal endpoints.
func (s *server) dealRoutes() []route {
	return []route{
		{"GET /v1/deals", s.authed(s.dealList("deals", dealQuery(ParseDealList, (*deals.Reader).List)))},
		{"GET /v1/deals/{id}", s.authed(s.deal)},
		{"GET /v1/warnings", s.authed(s.dealList("warnings", dealQuery(ParseWarnings, (*deals.Reader).Warnings)))},
	}
}

// dealRun answers a parsed deal query from the read model.
type dealRun func(ctx context.Context, rd *deals.Reader) (any, error)

// dealQuery binds a deal list's parser to the Reader method that answers
// it.
func dealQuery[Q, R any](parse func(url.Values, Scope) (Q, error), query func(*deals.Reader, context.Context, Q) (*R, error)) func(url.Values, Scope) (dealRun, error) {
	return func(v url.Values, s Scope) (dealRun, error) {
		q, err := parse(v, s)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, rd *deals.Reader) (any, error) {
			res, err := query(rd, ctx, q)
			if err != nil {
				return nil, err
			}
			return res, nil
		}, nil
	}
}

// dealList serves the deal list of the report name (deals or warnings),
// whose parameters prepare parses, as JSON or CSV.
func (s *server) dealList(name string, prepare func(url.Values, Scope) (dealRun, error)) func(w http.ResponseWriter, r *http.Request, tenant string, v url.Values) {
	return func(w http.ResponseWriter, r *http.Request, tenant string, v url.Values) {
		w.Header().Add("Vary", "Accept")
		rep, err := negotiate(r, v, name)
		if err != nil {
			writeError(w, r, s.logger, err)
			return
		}
		run, err := prepare(v, Scope{Tenant: tenant, Ladder: s.cfg.Ladder.For(tenant)})
		if err != nil {
			writeError(w, r, s.logger, err)
			return
		}
		s.answerDeals(w, r, tenant, name, rep, run)
	}
}

func (s *server) deal(w http.ResponseWriter, r *http.Request, tenant string, v url.Values) {
	p := newParser(v, DealParams())
	q := deals.DealQuery{Tenant: tenant, Ladder: s.cfg.Ladder.For(tenant), OpportunityID: r.PathValue("id"), AsOf: p.asOf()}
	if p.err != nil {
		writeError(w, r, s.logger, p.err)
		return
	}
	s.answerDeals(w, r, tenant, "deal", representation{}, func(ctx context.Context, rd *deals.Reader) (any, error) {
		return rd.Deal(ctx, q)
	})
}

// answerDeals runs a deal query as a report: holding a query slot, within
// the query timeout, after checking that the tenant's states were derived
// with its ladder in force. A deal or tenant of which nothing is stored is
// 404. The answer, of the report name, is written as rep says.
func (s *server) answerDeals(w http.ResponseWriter, r *http.Request, tenant, name string, rep representation, run func(ctx context.Context, rd *deals.Reader) (any, error)) {
	if s.cfg.Deals == nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "this server has no deal read model configured"})
		return
	}
	res, err := func() (any, error) {
		release, err := s.limit.acquire(r.Context())
		if err != nil {
			return nil, err
		}
		defer release()
		if s.cfg.Hold != nil {
			s.cfg.Hold(r.Context())
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
		defer cancel()
		if s.q != nil {
			if err := s.q.CheckLadder(ctx, tenant, s.cfg.Ladder.For(tenant).Version); err != nil {
				return nil, err
			}
		}
		return run(ctx, s.cfg.Deals)
	}()
	switch {
	case err != nil:
		writeError(w, r, s.logger, err)
	case rep.csv:
		s.writeCSV(w, r, name, tenant, res, rep)
	default:
		s.writeNamed(w, r, tenant, res)
	}
}
