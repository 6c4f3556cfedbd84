package api

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/ingest"
	"github.com/commitflow/commitflow/internal/ingest/ingesttest"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// TestGatewayEndToEnd posts a HubSpot webhook, a Pipedrive webhook and
// canonical events through the running server, with an ingest worker
// moving them from embedded NATS into ClickHouse: each ends as rows of the
// events table; the HubSpot batch replayed is stored once; a HubSpot call
// with a bad signature is 401 and publishes nothing.
func TestGatewayEndToEnd(t *testing.T) {
	b := startBus(t)
	st := storetest.Open(t, store.Options{})
	ingesttest.Run(t, b.js, st, ingest.Config{})
	srv := gatewayServer(t, b.pub, nil)

	hubspot, err := os.ReadFile("../webhook/testdata/hubspot_deal_batch.json")
	if err != nil {
		t.Fatal(err)
	}
	path := "/v1/webhooks/hubspot"
	var res WebhookResult
	if code, _ := post(t, srv, path, string(hubspot), hubspotHeaders("wrong-secret", srv.URL+path, string(hubspot), time.Now()), &res); code != 401 {
		t.Fatalf("bad signature: %d, want 401", code)
	}
	if n := b.msgs(t); n != 0 {
		t.Fatalf("a refused webhook published %d messages", n)
	}
	for range 2 { // delivered, then replayed
		if code, _ := post(t, srv, path, string(hubspot), hubspotHeaders(hubSecret, srv.URL+path, string(hubspot), time.Now()), &res); code != 200 || res.Accepted != 8 {
			t.Fatalf("HubSpot webhook: %d %+v", code, res)
		}
	}

	pipedrive, err := os.ReadFile("../webhook/testdata/pipedrive_v1_deal_updated.json")
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", "/", nil)
	req.SetBasicAuth("commitflow", "pd-pass-1")
	if code, _ := post(t, srv, "/v1/webhooks/pipedrive", string(pipedrive), req.Header, &res); code != 200 || res.Accepted != 5 {
		t.Fatalf("Pipedrive webhook: %d %+v", code, res)
	}

	var er EventsResult
	if code, _ := post(t, srv, "/v1/events", ev("c1", "", "o1")+"\n"+ev("c2", "acme", "o2"), bearer(acmeToken), &er); code != http.StatusAccepted || er.Accepted != 2 {
		t.Fatalf("POST /v1/events: %d %+v", code, er)
	}

	want := map[string]uint64{"hubspot": 8, "pipedrive": 5, "api": 2}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := map[string]uint64{}
		rows, err := st.Conn().Query(t.Context(), `SELECT source, count() FROM events WHERE tenant = ? GROUP BY source`, "acme")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var source string
			var n uint64
			if err := rows.Scan(&source, &n); err != nil {
				t.Fatal(err)
			}
			got[source] = n
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		if len(got) == len(want) && got["hubspot"] == want["hubspot"] && got["pipedrive"] == want["pipedrive"] && got["api"] == want["api"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events rows by source %v, want %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var stage, opp string
	err = st.Conn().QueryRow(t.Context(), `SELECT opportunity_id, type FROM events WHERE tenant = ? AND source = 'hubspot' AND event_id = ?`,
		"acme", "deal-9876543210-1718445600000-1010-closed_lost_reason").Scan(&opp, &stage)
	if err != nil || opp != "9876543210" || stage != "opportunity.closed_lost" {
		t.Fatalf("the HubSpot closed_lost_reason row: %q %q %v", opp, stage, err)
	}
	if n := b.msgs(t); n != 15 {
		t.Fatalf("CF_EVENTS holds %d messages, want 15 (the replayed batch once)", n)
	}
}

// TestSalesforceGongEndToEnd posts Salesforce CDC messages and a Gong
// webhook through the running server into ClickHouse: a bad signature is
// 401 and publishes nothing; the CDC body, delivered twice, ends as one
// row per event; the gap event is in CF_DLQ, not in the store.
func TestSalesforceGongEndToEnd(t *testing.T) {
	b := startBus(t)
	st := storetest.Open(t, store.Options{})
	ingesttest.Run(t, b.js, st, ingest.Config{})
	srv := dlqGateway(t, b)

	cdc := readFixture(t, "salesforce_cdc_updates_pubsub.json")
	path := "/v1/webhooks/salesforce"
	var res WebhookResult
	if code, _ := post(t, srv, path, cdc, sfHeaders("wrong-secret", cdc), &res); code != 401 {
		t.Fatalf("bad signature: %d, want 401", code)
	}
	if n := b.msgs(t); n != 0 {
		t.Fatalf("a refused webhook published %d messages", n)
	}
	for range 2 { // delivered, then replayed
		if code, _ := post(t, srv, path, cdc, sfHeaders(sfSecret, cdc), &res); code != 200 || res.Accepted != 9 || len(res.Refused) != 1 {
			t.Fatalf("Salesforce CDC: %d %+v", code, res)
		}
	}
	created := readFixture(t, "salesforce_cdc_create_cometd.json")
	if code, _ := post(t, srv, path, created, sfHeaders(sfSecret, created), &res); code != 200 || res.Accepted != 1 {
		t.Fatalf("Salesforce CDC create: %d %+v", code, res)
	}
	gong := readFixture(t, "gong_webhook.json")
	if code, _ := post(t, srv, "/v1/webhooks/gong?key="+gongKey, gong, http.Header{}, &res); code != 200 || res.Accepted != 1 {
		t.Fatalf("Gong webhook: %d %+v", code, res)
	}

	want := map[string]uint64{"salesforce": 10, "gong": 1}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := map[string]uint64{}
		rows, err := st.Conn().Query(t.Context(), `SELECT source, count() FROM events WHERE tenant = ? GROUP BY source`, "acme")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var source string
			var n uint64
			if err := rows.Scan(&source, &n); err != nil {
				t.Fatal(err)
			}
			got[source] = n
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		if len(got) == len(want) && got["salesforce"] == want["salesforce"] && got["gong"] == want["gong"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events rows by source %v, want %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var typ string
	err := st.Conn().QueryRow(t.Context(), `SELECT type FROM events WHERE tenant = ? AND source = 'salesforce' AND event_id = ?`,
		"acme", "0004a6e1-6621-8c2d-3e4f-5a6b7c8d9e01-2-0065g00000FgHiJAAV-Probability").Scan(&typ)
	if err != nil || typ != "opportunity.probability_changed" {
		t.Fatalf("the probability set to 0: %q %v", typ, err)
	}
	if n := b.msgs(t); n != 11 {
		t.Fatalf("CF_EVENTS holds %d messages, want 11 (the replayed body once)", n)
	}
	if got := letters(t, b); len(got) != 1 || !strings.Contains(got[0], "GAP_UPDATE") {
		t.Fatalf("dead letters %q, want the gap event", got)
	}
}
