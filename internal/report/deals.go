package report

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/commitflow/commitflow/internal/deals"
)

// dealListTables renders a page of the deal list.
func dealListTables(r *deals.ListResult, f formatter) (string, []table) {
	line := defsLine(r.Definitions) + fmt.Sprintf("  %d deals, page %d of %d a page", r.Total, r.Page, r.PageSize)
	return line, []table{dealRows(r.Deals, f)}
}

// warningsTables renders the deals with warnings: the page of deals, then
// the counts by kind, owner and team.
func warningsTables(r *deals.WarningsResult, f formatter) (string, []table) {
	line := defsLine(r.Definitions) + fmt.Sprintf("  %d deals with warnings, page %d", r.Total.Deals, r.Page)
	return line, []table{
		dealRows(r.Deals, f),
		warningCounts("by_kind", "kind", r.ByKind, f, f.text),
		warningCounts("by_owner", "owner", r.ByOwner, f, f.owner),
		warningCounts("by_team", "team", r.ByTeam, f, f.text),
	}
}

// dealRows is the table of deals of a list; a deal's warnings are its
// kinds separated by spaces.
func dealRows(rows []deals.Row, f formatter) table {
	t := table{name: "deals", header: []string{"opportunity_id", "name", "owner_id", "team", "amount", "currency", "close_date",
		"stage", "status", "step_index", "step", "days_since_commitment", "warnings"}}
	for _, d := range rows {
		kinds := make([]string, len(d.Warnings))
		for i, w := range d.Warnings {
			kinds[i] = w.Kind
		}
		closeDate := ""
		if d.CloseDate != nil {
			closeDate = *d.CloseDate
		}
		t.rows = append(t.rows, []string{d.OpportunityID, f.text(d.Name), f.owner(d.OwnerID), f.text(d.Team), f.amount(d.Amount), f.text(d.Currency),
			f.text(closeDate), f.text(d.Stage), f.text(d.Status), strconv.Itoa(d.StepIndex), f.text(d.Step), f.int(d.DaysSinceCommitment),
			f.text(strings.Join(kinds, " "))})
	}
	return t
}

// warningCounts is a breakdown of the deals with warnings: the deals, the
// deals of each kind, and their amount in each currency found in the
// breakdown (never added across currencies), one column each.
func warningCounts(name, keyName string, rows []deals.WarningCounts, f formatter, key func(string) string) table {
	var currencies []string
	for _, c := range rows {
		for cur := range c.AmountsByCurrency {
			currencies = append(currencies, cur)
		}
	}
	currencies = slices.Compact(slices.Sorted(slices.Values(currencies)))
	t := table{name: name, header: append([]string{keyName, "deals"}, deals.WarningKinds...)}
	for _, cur := range currencies {
		if cur == "" {
			cur = "none"
		}
		t.header = append(t.header, "amount_"+cur)
	}
	for _, c := range rows {
		row := []string{key(c.Key), f.int(c.Deals)}
		for _, k := range deals.WarningKinds {
			row = append(row, f.int(c.Kinds[k]))
		}
		for _, cur := range currencies {
			amount, ok := c.AmountsByCurrency[cur]
			if !ok {
				row = append(row, f.text(""))
				continue
			}
			row = append(row, f.amount(amount))
		}
		t.rows = append(t.rows, row)
	}
	return t
}
