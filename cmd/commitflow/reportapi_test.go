package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/api"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/people"
	"github.com/commitflow/commitflow/internal/store"
)

const reportToken = "acme-report-token-0123456789"

// reportServer serves the API over the database at dsn, acme's token
// being reportToken; tweak adjusts its configuration.
func reportServer(t *testing.T, dsn string, tweak func(*api.Config)) *httptest.Server {
	t.Helper()
	st, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := api.Config{Tokens: map[string]string{reportToken: "acme"}, People: people.New(st.Conn())}
	if tweak != nil {
		tweak(&cfg)
	}
	srv := httptest.NewServer(api.New(cfg, metrics.New(st.Conn()), forecast.New(st.Conn()), nil))
	t.Cleanup(srv.Close)
	return srv
}

// TestReportAPI: report --api asks a running server and prints exactly
// what report prints from ClickHouse, in every format, with the owners'
// names in tables.
func TestReportAPI(t *testing.T) {
	dsn := reportDSN(t)
	st, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := people.New(st.Conn()).Import(context.Background(), "acme", []people.Person{{ID: "ann", Name: "Ann Example"}}); err != nil {
		t.Fatal(err)
	}
	srv := reportServer(t, dsn, nil)
	period := []string{"--from", "2024-01-01", "--to", "2024-04-01", "--as-of", "2024-04-01"}
	tests := [][]string{
		append([]string{"funnel", "--window-days", "30"}, period...),
		append([]string{"funnel", "--by", "owner", "--format", "csv"}, period...),
		{"stalls", "--as-of", "2024-04-01", "--format", "csv", "--table", "deals"},
		{"stalls", "--as-of", "2024-04-01"},
		append([]string{"missed", "--format", "json"}, period...),
		append([]string{"movement"}, period...),
		append([]string{"cycle-time", "--format", "csv"}, period...),
		{"stage-history", "--as-of", "2024-04-01"},
		{"forecast", "--as-of", "2024-04-01", "--backtest", "2024-02-01", "--draws", "100"},
		{"forecast", "--as-of", "2024-04-01", "--draws", "100", "--format", "csv", "--table", "model"},
	}
	for _, args := range tests {
		direct, err := runReport(append(args, "--clickhouse", dsn, "--tenant", "acme", "--log-level", "error")...)
		if err != nil {
			t.Fatalf("report %q: %v", args, err)
		}
		viaAPI, err := runReport(append(args, "--api", srv.URL, "--token", reportToken, "--log-level", "error")...)
		if err != nil {
			t.Fatalf("report %q --api: %v", args, err)
		}
		if viaAPI != direct {
			t.Errorf("report %q --api:\n%s\nwant, as from ClickHouse:\n%s", args, viaAPI, direct)
		}
	}
	out, err := runReport("stalls", "--as-of", "2024-04-01", "--table", "deals", "--api", srv.URL+"/", "--token", reportToken, "--tenant", "acme")
	if err != nil || !strings.Contains(out, "Ann Example (ann)") {
		t.Errorf("stalled deals by name: %v\n%s", err, out)
	}
}

// TestReportAPIErrors: what the server refuses is said clearly: a bad
// parameter names its flag, a missing or wrong token or tenant says so,
// and a busy server says when to retry.
func TestReportAPIErrors(t *testing.T) {
	dsn := reportDSN(t)
	srv := reportServer(t, dsn, nil)
	hold := make(chan struct{})
	held := make(chan struct{}, 1)
	busy := reportServer(t, dsn, func(c *api.Config) {
		c.MaxConcurrent, c.MaxQueued = 1, -1
		c.Hold = func(ctx context.Context) {
			held <- struct{}{}
			select {
			case <-hold:
			case <-ctx.Done():
			}
		}
	})
	stalls := []string{"stalls", "--as-of", "2024-04-01", "--log-level", "error", "--api"}
	tests := []struct {
		args []string
		want string
	}{
		{append(stalls, srv.URL, "--token", reportToken, "--currency", "EUR"), "report stalls: --currency: "},
		{append(stalls, srv.URL, "--tenant", "acme"), "report stalls: the server at " + srv.URL + " refused the request (401 Unauthorized): missing bearer token; pass its bearer token with --token (or COMMITFLOW_TOKEN)"},
		{append(stalls, srv.URL, "--token", "wrong-token-0123456789"), "(401 Unauthorized): unknown bearer token"},
		{append(stalls, srv.URL, "--token", reportToken, "--tenant", "globex"), "refused the request (403 Forbidden): the token does not grant this tenant"},
		{append(stalls, srv.URL), "--tenant (or COMMITFLOW_TENANT) must name a tenant"},
		{append(stalls, "ftp://example.com", "--token", reportToken), `--api: want an http or https URL, got "ftp://example.com"`},
		{append(stalls, srv.URL+"/nowhere", "--token", reportToken), "answered 404 Not Found"},
		{append(stalls, busy.URL, "--token", reportToken), "report stalls: the server at " + busy.URL + " is busy (503 Service Unavailable): "},
	}
	// The busy server holds its one slot for a report of its own.
	req, _ := http.NewRequest("GET", busy.URL+"/v1/stalls?as_of=2024-04-01", nil)
	req.Header.Set("Authorization", "Bearer "+reportToken)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("the busy server's slot was never taken")
	}
	defer close(hold)
	for _, tt := range tests {
		t.Setenv("COMMITFLOW_TENANT", "")
		t.Setenv("COMMITFLOW_TOKEN", "")
		_, err := runReport(tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("report %q: error\n%v\nwant it to say\n%s", tt.args, err, tt.want)
		}
	}
	_, err := runReport(append(stalls, busy.URL, "--token", reportToken)...)
	if err == nil || !strings.Contains(err.Error(), "; retry in ") || !strings.Contains(err.Error(), " seconds (Retry-After)") {
		t.Errorf("busy: %v", err)
	}
}
