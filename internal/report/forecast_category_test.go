package report

import (
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/forecast"
)

// TestForecastPipelineByCategory: the forecast's pipeline table lists the
// breakdown by CRM forecast category (by=forecast_category) beside the
// others.
func TestForecastPipelineByCategory(t *testing.T) {
	res := answer(t, "forecast", "forecast").(*forecast.Result)
	amount := 1000.0
	res.Pipeline.ByForecastCategory = []forecast.Group{{Key: "Commit", Deals: 2, Amount: &amount, Expected: &amount, CRMWeighted: &amount}}
	var b strings.Builder
	if err := Write(&b, "forecast", res, "csv", "pipeline"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\nforecast_category,Commit,2,") {
		t.Errorf("no forecast_category row in the pipeline table:\n%s", b.String())
	}
}
