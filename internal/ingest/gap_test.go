package ingest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/promtest"
)

// TestIngestDeliveryGap reproduces messages that the consumer delivered but
// the worker never received, as a Fetch that gives up on its wait time
// after a pause does: a second client pulls from the worker's own consumer
// generation now and then and drops what it gets. The consumer counts
// those messages as delivered to the generation; an acknowledgement of a
// later stream sequence (AckAll) would cover them although nothing stored
// them. Every event must still be stored, and the gaps counted.
func TestIngestDeliveryGap(t *testing.T) {
	ctx := t.Context()
	st := openStore(t, chtest.DSN(t))
	natsSrv, js := bustest.Start(t, bus.Options{})
	url := natsSrv.ClientURL()
	pub := bus.NewPublisher(js, bus.DefaultPartitions)
	evs := genEvents(20000, 17)

	reg := prometheus.NewRegistry()
	_, wjs := bustest.Connect(t, url)
	w, err := New(wjs, st, Config{BatchSize: 300, MaxWait: 100 * time.Millisecond, LeaseTTL: 3 * time.Second}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runWorker(t, w)
	// Wait for the worker's own generation (it rotates on taking the
	// lease): stealing from the declared one would be no gap.
	deadline := time.Now().Add(10 * time.Second)
	for currentInfo(t, js).Name == bus.IngestConsumerName(1) {
		if time.Now().After(deadline) {
			t.Fatal("the worker did not start its generation")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The thief pulls while events are being published, from whatever
	// generation is current, and never acknowledges.
	_, tjs := bustest.Connect(t, url)
	stolen := 0
	var wg sync.WaitGroup
	tctx, stopThief := context.WithCancel(ctx)
	wg.Go(func() {
		for tctx.Err() == nil {
			c, err := bus.CurrentIngest(tctx, tjs)
			if err != nil {
				continue
			}
			fb, err := c.Fetch(40, jetstream.FetchMaxWait(300*time.Millisecond))
			if err != nil {
				continue
			}
			for range fb.Messages() {
				stolen++
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	for i := 0; i < len(evs); i += 500 {
		if err := pub.PublishBatch(ctx, evs[i:min(i+500, len(evs))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopThief()
	wg.Wait()
	if stolen == 0 {
		t.Fatal("the thief received nothing: no delivery gap was made")
	}
	waitDrained(t, js, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	want := map[string]uint64{}
	for _, ev := range evs {
		want[ev.Tenant]++
	}
	for tenant, n := range want {
		if c, err := st.CountEvents(ctx, tenant); err != nil || c != n {
			t.Errorf("tenant %s: %d events stored (%v), want %d (%d messages stolen)", tenant, c, err, n, stolen)
		}
	}
	if g := promtest.Sum(t, reg, "commitflow_ingest_delivery_gaps_total"); g == 0 {
		t.Errorf("no delivery gap counted; %d messages stolen", stolen)
	}
	t.Logf("%d messages stolen", stolen)
}
