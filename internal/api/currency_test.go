package api

import (
	"context"
	"log/slog"
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/fx"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// TestCurrencies serves deals in USD and EUR without and with a rate
// table: scalar amounts null beside the sums per currency, then converted
// to the table's base or to the currency asked for; the currency
// parameter refused where nothing can convert to it.
func TestCurrencies(t *testing.T) {
	plain, conv := twoCurrencyServers(t)

	type obj = map[string]any
	code, _, body, raw := get(t, plain, "/v1/stalls?as_of=2024-07-01", tokenAcme)
	by, _ := body["amounts_by_currency"].(obj)
	if code != 200 || body["open"] != 2.0 || body["open_amount"] != nil || len(by) != 2 ||
		by["USD"].(obj)["open_amount"] != 1000.0 || by["EUR"].(obj)["open_amount"] != 2000.0 {
		t.Fatalf("stalls in USD and EUR without rates: %d %s", code, raw)
	}
	if d := body["definitions"].(obj); d["currency"] != "" || d["converted"] != nil {
		t.Errorf("stalls definitions: %v", d)
	}
	for _, c := range []struct {
		path  string
		want  float64
		to    string
		rates string
	}{
		{"/v1/stalls?as_of=2024-07-01", 1000 + 2000*1.20, "USD", "2024-07-01"},
		{"/v1/stalls?as_of=2024-03-01", 1000 + 2000*1.10, "USD", "2024-03-01"},
		{"/v1/stalls?as_of=2024-07-01&currency=eur", 1000/1.20 + 2000, "EUR", "2024-07-01"},
		{"/v1/funnel?from=2024-01-01&to=2024-07-01&as_of=2024-03-01&currency=EUR", 1000/1.10 + 2000, "EUR", "2024-03-01"},
		{"/v1/movement?from=2024-01-01&to=2024-07-01&as_of=2024-08-01", 1000 + 2000*1.20, "USD", "2024-07-01"},
	} {
		code, _, body, raw := get(t, conv, c.path, tokenAcme)
		if code != 200 {
			t.Errorf("GET %s: %d %s", c.path, code, raw)
			continue
		}
		var amt any
		switch {
		case strings.HasPrefix(c.path, "/v1/stalls"):
			amt = body["open_amount"]
		case strings.HasPrefix(c.path, "/v1/funnel"):
			amt = body["steps"].([]any)[0].(obj)["reached_amount"]
		default:
			amt = body["total"].(obj)["new_amount"]
		}
		if x, ok := amt.(float64); !ok || math.Abs(x-c.want) > 1e-9 {
			t.Errorf("GET %s: amount %v, want %v", c.path, amt, c.want)
		}
		checkConverted(t, c.path, body, c.to, c.rates)
	}
	checkCurrencyRefused(t, []currencyRefusal{
		{plain, "/v1/funnel?" + period + "&currency=EUR", "no rate table"},
		{conv, "/v1/stalls?currency=CHF", "CHF is not in the rate table"},
		{conv, "/v1/missed?" + period + "&currency=EURO", "not an ISO 4217 currency code"},
		{conv, "/v1/movement?" + period + "&currency=" + strings.Repeat("x", 100), "not an ISO 4217 currency code"},
		{conv, "/v1/cycle-time?" + period + "&currency=EUR", "unknown parameter"},
	})
}

// twoCurrencyBook stores a 1000 USD deal and a 2000 EUR deal of tenant acme
// and returns the store, the ladder and a rate table in USD whose EUR rate
// changes on 2024-06-01.
func twoCurrencyBook(t *testing.T) (*store.Store, *ladder.Ladder, *fx.Table) {
	t.Helper()
	st := storetest.Open(t, store.Options{})
	l := ladder.Default()
	var rows []store.DerivedRow
	for _, o := range []struct {
		opp
		cur string
	}{
		{opp{"acme", "a-1", "ann", "east", 1000, "2024-01-05", []string{"2024-01-10"}, "", "", "", ""}, "USD"},
		{opp{"acme", "a-2", "bob", "west", 2000, "2024-01-08", []string{"2024-01-15"}, "", "", "", ""}, "EUR"},
	} {
		for _, r := range o.rows(l) {
			r.Currency = o.cur
			rows = append(rows, r)
		}
	}
	if err := st.InsertDerivedWithStates(context.Background(), rows, l.Len()); err != nil {
		t.Fatal(err)
	}
	tab, err := fx.Parse(strings.NewReader("date,currency,rate\n2024-01-01,EUR,1.10\n2024-06-01,EUR,1.20\n"), "USD")
	if err != nil {
		t.Fatal(err)
	}
	return st, l, tab
}

// twoCurrencyServers serves twoCurrencyBook to tokenAcme without a rate
// table (plain) and with it, metrics and forecasts converting (conv). Both
// close when t ends.
func twoCurrencyServers(t *testing.T) (plain, conv *httptest.Server) {
	t.Helper()
	st, l, tab := twoCurrencyBook(t)
	cfg := Config{Ladder: l, Tokens: map[string]string{tokenAcme: "acme"}}
	plain = httptest.NewServer(New(cfg, metrics.New(st.Conn()), forecast.New(st.Conn()), slog.New(slog.DiscardHandler)))
	t.Cleanup(plain.Close)
	conv = httptest.NewServer(New(cfg, metrics.NewWithOptions(st.Conn(), metrics.Options{Rates: tab}),
		forecast.NewWithOptions(st.Conn(), forecast.Options{Rates: tab}), slog.New(slog.DiscardHandler)))
	t.Cleanup(conv.Close)
	return plain, conv
}

// checkConverted checks that the definitions of body, the answer to GET
// path, say its amounts are in currency to, converted at the rates of
// ratesOn.
func checkConverted(t *testing.T, path string, body map[string]any, to, ratesOn string) {
	t.Helper()
	d := body["definitions"].(map[string]any)
	cv, _ := d["converted"].(map[string]any)
	if d["currency"] != to || cv["to"] != to || cv["rates_on"] != ratesOn {
		t.Errorf("GET %s: definitions currency %v, converted %v", path, d["currency"], cv)
	}
}

// currencyRefusal is a request whose currency parameter srv refuses with
// an error containing want.
type currencyRefusal struct {
	srv        *httptest.Server
	path, want string
}

// checkCurrencyRefused checks that each request is answered 400 on the
// currency parameter, with its error.
func checkCurrencyRefused(t *testing.T, rs []currencyRefusal) {
	t.Helper()
	for _, r := range rs {
		code, _, body, raw := get(t, r.srv, r.path, tokenAcme)
		if code != 400 || body["param"] != "currency" || !strings.Contains(raw, r.want) {
			t.Errorf("GET %s: %d %s, want 400 on currency: %s", r.path, code, raw, r.want)
		}
	}
}
