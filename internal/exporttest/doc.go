// Package exporttest checks every number of the API against an oracle on
// export-shaped input: CRM history as real exports carry it (dates without
// times, one CRM edit as several typed events at one instant, backward
// moves, re-entries, skipped stages, deals closed by a stage change and by
// closed_won/closed_lost, lost deals reopened and won, deals the CRM
// dates long before an export or a webhook first shows them, deals first
// seen in calls before their opportunity) and recorded calls
// with buyer and seller action items, published in shuffled order with
// duplicates.
//
// The events run through the real pipeline (embedded NATS JetStream, the
// ingest and derive workers, ClickHouse) and the answers come from the
// real HTTP handlers. The oracle folds the raw input events alone, in the
// test, by the definitions of DOMAIN.md and the README: it reads the
// ladder's configuration (stage mapping, activity and action-item rules,
// thresholds) but never derived events, derive.Summarize or stored rows.
//
// The package holds tests only.
package exporttest
