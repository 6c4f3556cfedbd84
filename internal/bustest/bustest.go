// Package bustest gives tests a real NATS JetStream: an embedded server
// (internal/bus) on a free loopback port, clients connected to it as
// commitflow connects, and waits on commitflow's consumers. Everything it
// starts stops when the test ends. Only tests import it.
package bustest

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
)

// Server starts an embedded NATS server with JetStream on a free loopback
// port, storing under a temporary directory. It is shut down when t ends.
func Server(t testing.TB) *bus.Embedded {
	t.Helper()
	srv, err := bus.StartEmbedded(t.Context(), t.TempDir(), "127.0.0.1:-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// Connect connects to the NATS server at url with bus.Connect. The
// connection is closed when t ends.
func Connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, js, err := bus.Connect(t.Context(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, js
}

// Start starts a Server, connects to it and declares commitflow's streams
// and consumers with o.
func Start(t testing.TB, o bus.Options) (*bus.Embedded, jetstream.JetStream) {
	t.Helper()
	srv := Server(t)
	_, js := Connect(t, srv.ClientURL())
	if err := bus.Declare(t.Context(), js, o); err != nil {
		t.Fatal(err)
	}
	return srv, js
}

// WaitDrained waits until the ingest consumer and the derive consumers of
// partitions 0 to partitions-1 have nothing pending or unacknowledged. A
// consumer that cannot be read (not created yet, or the ingest generation
// being rotated by a worker taking the lease) is asked again. It fails t
// when they are not drained within the given time.
func WaitDrained(t testing.TB, js jetstream.JetStream, partitions int, within time.Duration) {
	t.Helper()
	ctx := t.Context()
	deadline := time.Now().Add(within)
	for p := -1; p < partitions; p++ { // -1: the ingest consumer
		for {
			var c jetstream.Consumer
			var err error
			if p < 0 {
				c, err = bus.CurrentIngest(ctx, js)
			} else {
				c, err = js.Consumer(ctx, bus.EventsStream, bus.DeriveConsumer(p))
			}
			var info *jetstream.ConsumerInfo
			if err == nil {
				info, err = c.Info(ctx)
			}
			if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
				break
			}
			if time.Now().After(deadline) {
				if err != nil {
					t.Fatalf("consumer of partition %d (-1: ingest) not drained after %s: %v", p, within, err)
				}
				t.Fatalf("consumer %s not drained after %s: %d pending, %d unacknowledged", info.Name, within, info.NumPending, info.NumAckPending)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// AckIngest acknowledges the ingest consumer's messages up to stream
// sequence seq (AckAll), as the ingest worker does once they are stored.
func AckIngest(t testing.TB, js jetstream.JetStream, seq uint64) {
	t.Helper()
	ctx := t.Context()
	c, err := bus.CurrentIngest(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(int(seq), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if md.Sequence.Stream == seq {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("ingest consumer: sequence %d not delivered (%v)", seq, batch.Error())
}
