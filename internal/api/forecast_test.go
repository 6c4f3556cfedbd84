package api

import (
	"context"
	"log/slog"
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/metrics"
)

// TestForecastCurrencies serves the forecast of a 1000 USD deal and a
// 2000 EUR deal without and with a rate table: null scalars beside the
// figures per currency, then converted at the rates of as_of to the
// table's base or to the currency asked for; the currency parameter
// refused where nothing can convert to it.
func TestForecastCurrencies(t *testing.T) {
	plain, conv := twoCurrencyServers(t)

	type obj = map[string]any
	code, _, body, raw := get(t, plain, "/v1/forecast?as_of=2024-07-01&draws=100", tokenAcme)
	if code != 200 {
		t.Fatalf("forecast: %d %s", code, raw)
	}
	total := body["pipeline"].(obj)["total"].(obj)
	by, _ := total["amounts_by_currency"].(obj)
	if total["deals"] != 2.0 || total["amount"] != nil || total["expected"] != nil || total["crm_weighted"] != nil || total["p10"] != nil ||
		len(by) != 2 || by["USD"].(obj)["amount"] != 1000.0 || by["EUR"].(obj)["amount"] != 2000.0 || by["EUR"].(obj)["p10"] == nil {
		t.Fatalf("forecast in USD and EUR without rates: %s", raw)
	}
	if d := body["definitions"].(obj); d["currency"] != "" || d["converted"] != nil || !strings.Contains(d["currencies"].(string), "never added") {
		t.Errorf("forecast definitions: %v", d)
	}
	for _, c := range []struct {
		path  string
		want  float64
		to    string
		rates string
	}{
		{"/v1/forecast?as_of=2024-07-01&draws=100", 1000 + 2000*1.20, "USD", "2024-07-01"},
		{"/v1/forecast?as_of=2024-03-01&draws=100", 1000 + 2000*1.10, "USD", "2024-03-01"},
		{"/v1/forecast?as_of=2024-07-01&draws=100&currency=eur", 1000/1.20 + 2000, "EUR", "2024-07-01"},
	} {
		code, _, body, raw := get(t, conv, c.path, tokenAcme)
		if code != 200 {
			t.Errorf("GET %s: %d %s", c.path, code, raw)
			continue
		}
		total := body["pipeline"].(obj)["total"].(obj)
		if x, ok := total["amount"].(float64); !ok || math.Abs(x-c.want) > 1e-9 || total["p10"] == nil {
			t.Errorf("GET %s: amount %v, p10 %v; want %v and a spread", c.path, total["amount"], total["p10"], c.want)
		}
		checkConverted(t, c.path, body, c.to, c.rates)
	}
	checkCurrencyRefused(t, []currencyRefusal{
		{plain, "/v1/forecast?currency=EUR", "no rate table"},
		{conv, "/v1/forecast?currency=CHF", "CHF is not in the rate table"},
		{conv, "/v1/forecast?currency=EURO", "not an ISO 4217 currency code"},
	})
}

// TestForecastKeptModel serves forecasts with the model kept as run does
// (--forecast-models): each answer equals the one of a server that fits
// every time, fitted_at and history_to say which fit answered, and the
// queries sharing a model share its fit.
func TestForecastKeptModel(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cfg := Config{Ladder: f.l, Tokens: map[string]string{tokenAcme: "acme"}}
	plain := httptest.NewServer(New(cfg, metrics.New(f.st.Conn()), forecast.New(f.st.Conn()), slog.New(slog.DiscardHandler)))
	defer plain.Close()
	models := forecast.NewModelCache(forecast.ModelCacheOptions{})
	kept := httptest.NewServer(New(cfg, metrics.New(f.st.Conn()), forecast.NewWithOptions(f.st.Conn(), forecast.Options{Models: models}), slog.New(slog.DiscardHandler)))
	defer kept.Close()
	var fitted string
	for i, p := range []string{
		"/v1/forecast?as_of=2024-07-01&draws=200",
		"/v1/forecast?as_of=2024-07-01&draws=200&by=owner",
		"/v1/forecast?as_of=2024-07-01&close_period=quarter",
	} {
		want, got := fetch(ctx, plain, p, tokenAcme), fetch(ctx, kept, p, tokenAcme) // fitted_at replaced
		if got.code != 200 || got.raw != want.raw {
			t.Errorf("GET %s with a kept model: %d, %s", p, got.code, difference(got.raw, want.raw))
		}
		_, _, body, _ := get(t, kept, p, tokenAcme)
		model, _ := body["model"].(map[string]any)
		if model["history_to"] != "2024-07-01T00:00:00Z" {
			t.Errorf("GET %s: history_to %v", p, model["history_to"])
		}
		at, _ := model["fitted_at"].(string)
		if i == 0 {
			fitted = at
		}
		if at == "" || at != fitted {
			t.Errorf("GET %s: fitted_at %q, want the first fit's %q", p, at, fitted)
		}
	}
	if n := models.Fits(); n != 1 {
		t.Errorf("%d fits, want 1", n)
	}
}
