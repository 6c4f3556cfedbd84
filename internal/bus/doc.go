// Package bus is commitflow's NATS JetStream layer: an embedded server, the
// connection, the streams and consumers, the subject scheme and publishers.
//
// # Streams
//
//   - CF_EVENTS holds raw input events on cf.events.> (file storage, limits
//     retention, discard old, a duplicate window of 30 seconds by default).
//   - CF_DLQ holds messages the ingest worker refused, on cf.dlq.>, with the
//     original bytes and the reason in the Commitflow-Error header.
//   - CF_DERIVED holds derived events on cf.derived.>.
//
// # Subjects
//
// A raw event is published on
//
//	cf.events.<tenant>.<source>.<type>.<partition>
//
// where <type> is the event type with '.' replaced by '_' (so
// "opportunity.stage_changed" becomes "opportunity_stage_changed") and
// <partition> is a decimal number in [0, N):
//
//	partition = FNV-1a-32(tenant + "\x00" + opportunity_id) mod N
//
// Events without an opportunity id go to partition 0. Tenant and source are
// restricted by event.ValidToken, so they are always safe subject tokens.
//
// N (default 16) is fixed when CF_EVENTS is created and recorded in the
// stream's metadata under "commitflow.partitions"; producers read it with
// Partitions. Changing N later would move opportunities between partitions,
// so Declare keeps the existing value and logs the mismatch.
//
// # Consumers
//
// The durable pull consumer of the ingest worker reads every raw event
// (cf.events.>) and acknowledges with AckAll, one acknowledgement per stored
// batch. Only the holder of the ingest lease fetches from it, and the holder
// starts a new generation of it when it takes the lease (RotateIngest), so
// that a former holder's late acknowledgements cannot count. The raw store
// is order-independent and de-duplicates by event key, so what a former
// holder had fetched is simply delivered again.
//
// Every partition p has its own durable pull consumer "derive-pNN" (NN is p
// with two digits) filtered on cf.events.*.*.*.<p>. Because all events of
// one opportunity land on one partition, a single worker that owns a
// partition's consumer sees that opportunity's events in stream order, while
// N partitions spread the load over many workers.
//
// # De-duplication
//
// Publishers set Nats-Msg-Id to tenant:source:id, so republishing an event
// within the duplicate window is dropped by the server. Beyond the window a
// duplicate reaches the stream again and the store de-duplicates it. The
// window is short (30 seconds by default, a quarter of NATS's own) because
// the server holds its ids in memory, ~160 bytes each, which in the default
// embedded setup is heap of the commitflow process that its collector
// scans: a backfill fills the window at tens of thousands of ids a second.
package bus
