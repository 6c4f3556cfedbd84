package ingest

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/event"
)

// TestIngestSubjectMismatch publishes valid events on subjects that are not
// theirs: another tenant's (a producer allowed to publish only on acme's
// subjects writing globex's events), another source or type, a partition
// that does not exist or is not the event's, and too few tokens. Each is
// dead-lettered with a reason naming what differs, and none is stored; the
// events on their own subjects are stored.
func TestIngestSubjectMismatch(t *testing.T) {
	ctx := t.Context()
	st := openStore(t, chtest.DSN(t))
	_, js := bustest.Start(t, bus.Options{})
	n, err := bus.Partitions(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(js, n)

	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	ev := func(i int, tenant string) event.Event {
		return event.Event{ID: fmt.Sprint("m", i), Tenant: tenant, Source: "salesforce", Type: event.StageChanged,
			OccurredAt: at, OpportunityID: fmt.Sprint("006M", i), Payload: &event.StageChange{To: "Proposal"}}
	}
	marshal := func(e event.Event) []byte {
		b, err := event.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	subject := func(e event.Event, tenant, source, typ string, part int) string {
		return fmt.Sprintf("cf.events.%s.%s.%s.%d", tenant, source, typ, part)
	}
	var bads []malformed
	add := func(e event.Event, subj, field string) {
		bads = append(bads, malformed{subject: subj, data: marshal(e), field: field})
	}
	g := ev(1, "globex")
	add(g, subject(g, "acme", "salesforce", "opportunity_stage_changed", bus.Partition("globex", g.OpportunityID, n)), `tenant "acme"`)
	e := ev(2, "acme")
	p := bus.Partition("acme", e.OpportunityID, n)
	add(e, subject(e, "acme", "hubspot", "opportunity_stage_changed", p), `source "hubspot"`)
	e = ev(3, "acme")
	p = bus.Partition("acme", e.OpportunityID, n)
	add(e, subject(e, "acme", "salesforce", "opportunity_created", p), `opportunity_created`)
	e = ev(4, "acme")
	add(e, subject(e, "acme", "salesforce", "opportunity_stage_changed", 999), "999")
	e = ev(5, "acme")
	p = bus.Partition("acme", e.OpportunityID, n)
	add(e, subject(e, "acme", "salesforce", "opportunity_stage_changed", (p+1)%n), "partition")
	e = ev(6, "acme")
	add(e, "cf.events.acme", "tokens")
	for i, b := range bads {
		if err := pub.PublishRaw(ctx, b.subject, fmt.Sprint("mismatch-", i), b.data); err != nil {
			t.Fatal(err)
		}
	}
	good := []event.Event{ev(10, "acme"), ev(11, "globex")}
	if err := pub.PublishBatch(ctx, good); err != nil {
		t.Fatal(err)
	}

	drain(t, js, st, Config{BatchSize: 100, MaxWait: 50 * time.Millisecond}, prometheus.NewRegistry(), 30*time.Second)
	for _, tenant := range []string{"acme", "globex"} {
		if c, err := st.CountEvents(ctx, tenant); err != nil || c != 1 {
			t.Errorf("tenant %s: %d events stored (%v), want only its one event on its own subject", tenant, c, err)
		}
	}
	checkDLQ(t, js, bads)
}
