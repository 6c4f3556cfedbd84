package store

import (
	"context"
	"fmt"
	"sort"
	"time"
	"unsafe"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// RawEvent is one row of the events table: an input event as received.
// (Tenant, OpportunityID, Source, EventID) is its key; rows with the same
// key are one event, and the one with the highest StreamSeq wins.
type RawEvent struct {
	Tenant        string
	OpportunityID string
	Source        string
	EventID       string
	Type          string
	OccurredAt    time.Time // stored to the second
	ReceivedAt    time.Time // stored to the second
	StreamSeq     uint64    // JetStream stream sequence of the message
	Payload       []byte    // the canonical event JSON
}

const eventColumns = "tenant, opportunity_id, source, event_id, type, occurred_at, received_at, stream_seq, payload"

// inChunk bounds the ids bound into one IN list, so that queries stay
// well under ClickHouse's max_query_size (256 KiB by default).
const inChunk = 2000

// defaultScanChunk is how many opportunities ScanEvents reads per query.
const defaultScanChunk = 5000

// insertBlockRows is how many rows InsertEvents sends per data block. The
// rows go out in blocks of this size within one INSERT, which ClickHouse
// squashes into one part (min_insert_block_size_rows): the column buffers
// are reused from block to block instead of growing to hold the whole
// batch, and ClickHouse parses one block while the next is encoded.
const insertBlockRows = 4096

// InsertEvents inserts evs as one INSERT; on a replicated cluster it
// returns once every replica of the shards has them (see replicated).
// Inserting an event again is harmless: reads de-duplicate.
func (s *Store) InsertEvents(ctx context.Context, evs []RawEvent) error {
	if len(evs) == 0 {
		return nil
	}
	return s.replicated(ctx, func(ctx context.Context) error { return s.insertEvents(ctx, evs) })
}

func (s *Store) insertEvents(ctx context.Context, evs []RawEvent) error {
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO events ("+eventColumns+")")
	if err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	// Column by column, a block at a time: appending row by row boxes
	// every value into an interface and was a third of the worker's
	// allocations.
	var cols eventCols
	for start := 0; start < len(evs); start += insertBlockRows {
		if start > 0 {
			if err := batch.Flush(); err != nil {
				batch.Abort()
				return fmt.Errorf("insert events: send rows up to %d: %w", start-1, err)
			}
		}
		cols.fill(evs[start:min(start+insertBlockRows, len(evs))])
		for i, v := range cols.values() {
			if err := batch.Column(i).Append(v); err != nil {
				batch.Abort()
				return fmt.Errorf("insert events: rows %d..%d, column %d: %w", start, start+insertBlockRows-1, i, err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	return nil
}

// eventCols holds one block of RawEvents column by column, in the order of
// eventColumns; its slices are reused from block to block.
type eventCols struct {
	tenants, opportunities, sources, ids, types, payloads []string
	occurred, received                                    []time.Time
	seqs                                                  []uint64
}

func (c *eventCols) fill(evs []RawEvent) {
	c.tenants, c.opportunities, c.sources, c.ids, c.types, c.payloads =
		c.tenants[:0], c.opportunities[:0], c.sources[:0], c.ids[:0], c.types[:0], c.payloads[:0]
	c.occurred, c.received, c.seqs = c.occurred[:0], c.received[:0], c.seqs[:0]
	for i := range evs {
		e := &evs[i]
		c.tenants = append(c.tenants, e.Tenant)
		c.opportunities = append(c.opportunities, e.OpportunityID)
		c.sources = append(c.sources, e.Source)
		c.ids = append(c.ids, e.EventID)
		c.types = append(c.types, e.Type)
		c.occurred = append(c.occurred, e.OccurredAt)
		c.received = append(c.received, e.ReceivedAt)
		c.seqs = append(c.seqs, e.StreamSeq)
		// A view of the payload's bytes, not a copy: the column copies
		// them into its buffer before InsertEvents returns, and nothing
		// writes to them meanwhile.
		c.payloads = append(c.payloads, unsafe.String(unsafe.SliceData(e.Payload), len(e.Payload)))
	}
}

// values returns the columns in the order of eventColumns.
func (c *eventCols) values() []any {
	return []any{c.tenants, c.opportunities, c.sources, c.ids, c.types, c.occurred, c.received, c.seqs, c.payloads}
}

// CountEvents counts tenant's distinct events (by key), correct before and
// after merges.
func (s *Store) CountEvents(ctx context.Context, tenant string) (uint64, error) {
	var n uint64
	err := s.conn.QueryRow(ctx,
		`SELECT uniqExact(opportunity_id, source, event_id) FROM events WHERE tenant = ?`, tenant).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count events of %q: %w", tenant, err)
	}
	return n, nil
}

// LoadEvents returns the events of the given opportunities of tenant, one
// copy per key (the one with the highest stream sequence, see RawEvent),
// ordered by (opportunity_id, source, event_id).
func (s *Store) LoadEvents(ctx context.Context, tenant string, opportunityIDs []string) ([]RawEvent, error) {
	latest, _, err := s.LoadEventCopies(ctx, tenant, opportunityIDs)
	return latest, err
}

// StoredCopy is where a stored copy of an event is: its JetStream stream
// sequence and the month of its occurred_at (YYYYMM), which is the events
// table's partition.
type StoredCopy struct {
	Seq   uint64
	Month uint32
}

// StoredCopies returns, by opportunity, every stored copy of the events of
// tenant's opportunities opportunityIDs (an opportunity without stored
// events is absent). It reads three narrow columns where LoadEventCopies
// reads every column: looking up a thousand opportunities spread over a
// tenant's events reads about every granule of the table either way (at
// 10M events 0.4–0.5 s of ClickHouse's CPU here, against 18–26 s for the
// copies), so a caller that holds an opportunity's fresh copies learns
// from it whether anything else is stored, and in which months, before
// loading (LoadEventCopiesIn).
func (s *Store) StoredCopies(ctx context.Context, tenant string, opportunityIDs []string) (map[string][]StoredCopy, error) {
	out := map[string][]StoredCopy{}
	for _, ids := range chunks(uniqueSorted(opportunityIDs), inChunk) {
		rows, err := s.conn.Query(ctx, `SELECT opportunity_id, stream_seq, toYYYYMM(occurred_at) FROM events
WHERE tenant = ? AND opportunity_id IN ?`, tenant, groupSet(ids))
		if err != nil {
			return nil, fmt.Errorf("stored copies of %q: %w", tenant, err)
		}
		for rows.Next() {
			var (
				id string
				c  StoredCopy
			)
			if err := rows.Scan(&id, &c.Seq, &c.Month); err != nil {
				rows.Close()
				return nil, fmt.Errorf("stored copies of %q: %w", tenant, err)
			}
			out[id] = append(out[id], c)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("stored copies of %q: %w", tenant, err)
		}
	}
	return out, nil
}

// LoadEventCopies is LoadEvents that also returns the superseded copies
// still stored, ordered likewise: copies of a key with a lower stream
// sequence than the latest one's, which the table's merges have not
// dropped yet, or never will when their occurred_at put them in another
// monthly partition than the latest copy (merges stay within one).
// Derivation compares them with the latest to report conflicting
// duplicates. The rows are read without FINAL, so that the superseded
// ones come back too, and de-duplicated here by the rule of the table's
// engine, which FINAL applies.
func (s *Store) LoadEventCopies(ctx context.Context, tenant string, opportunityIDs []string) (latest, superseded []RawEvent, err error) {
	return s.loadEventCopies(ctx, tenant, opportunityIDs, nil)
}

// LoadEventCopiesIn is LoadEventCopies of the copies whose occurred_at
// falls in one of months (YYYYMM, see StoredCopies), none when months is
// empty. ClickHouse then reads those months' partitions alone: the table
// is sorted by opportunity within each of its parts, so every part is a
// granule read per opportunity looked up (at 10M events, one deal's copies
// read 450k rows and 0.9–1.4 s of ClickHouse's CPU from 64 parts, from
// its one month's 41k rows and 0.1 s).
func (s *Store) LoadEventCopiesIn(ctx context.Context, tenant string, opportunityIDs []string, months []uint32) (latest, superseded []RawEvent, err error) {
	if len(months) == 0 {
		return nil, nil, nil
	}
	return s.loadEventCopies(ctx, tenant, opportunityIDs, months)
}

func (s *Store) loadEventCopies(ctx context.Context, tenant string, opportunityIDs []string, months []uint32) (latest, superseded []RawEvent, err error) {
	where, inMonths := "", []any(nil)
	if months != nil {
		vs := make([]any, len(months))
		for i, m := range months {
			vs[i] = m
		}
		where, inMonths = " AND toYYYYMM(occurred_at) IN ?", []any{clickhouse.GroupSet{Value: vs}}
	}
	q := `SELECT ` + eventColumns + ` FROM events
WHERE tenant = ? AND opportunity_id IN ?` + where + `
ORDER BY opportunity_id, source, event_id, stream_seq DESC`
	for _, ids := range chunks(uniqueSorted(opportunityIDs), inChunk) {
		rows, err := s.conn.Query(ctx, q, append([]any{tenant, groupSet(ids)}, inMonths...)...)
		if err != nil {
			return nil, nil, fmt.Errorf("load events of %q: %w", tenant, err)
		}
		err = eachLatest(rows, func(e RawEvent, isLatest bool) error {
			if isLatest {
				latest = append(latest, e)
			} else {
				superseded = append(superseded, e)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("load events of %q: %w", tenant, err)
		}
	}
	return latest, superseded, nil
}

// ScanEvents calls fn once per opportunity of tenant, in opportunity_id
// order, with that opportunity's events ordered by (source, event_id), one
// copy per key as LoadEvents returns them. Memory stays flat: the opportunities are read in ranges of a
// few thousand, each streamed row by row. An error from fn stops the scan
// and is returned as is.
func (s *Store) ScanEvents(ctx context.Context, tenant string, fn func(opportunityID string, evs []RawEvent) error) error {
	bounds, err := s.scanBounds(ctx, tenant)
	if err != nil {
		return err
	}
	for i, lo := range bounds {
		q := `SELECT ` + eventColumns + ` FROM events WHERE tenant = ? AND opportunity_id >= ?`
		args := []any{tenant, lo}
		if i+1 < len(bounds) {
			q += ` AND opportunity_id < ?`
			args = append(args, bounds[i+1])
		}
		q += ` ORDER BY opportunity_id, source, event_id, stream_seq DESC`
		rows, err := s.conn.Query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("scan events of %q: %w", tenant, err)
		}
		var (
			cur   string
			group []RawEvent
			fnErr error
		)
		err = eachLatest(rows, func(e RawEvent, isLatest bool) error {
			if !isLatest {
				return nil
			}
			if len(group) > 0 && e.OpportunityID != cur {
				if fnErr = fn(cur, group); fnErr != nil {
					return fnErr
				}
				group = nil
			}
			cur = e.OpportunityID
			group = append(group, e)
			return nil
		})
		if fnErr != nil {
			return fnErr
		}
		if err != nil {
			return fmt.Errorf("scan events of %q: %w", tenant, err)
		}
		if len(group) > 0 {
			if err := fn(cur, group); err != nil {
				return err
			}
		}
	}
	return nil
}

// scanBounds returns the first opportunity id of every s.scanChunk
// opportunities of tenant: the lower bounds of ScanEvents' ranges.
func (s *Store) scanBounds(ctx context.Context, tenant string) ([]string, error) {
	rows, err := s.conn.Query(ctx,
		`SELECT opportunity_id FROM events WHERE tenant = ? GROUP BY opportunity_id ORDER BY opportunity_id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("scan events of %q: %w", tenant, err)
	}
	defer rows.Close()
	var bounds []string
	for n := 0; rows.Next(); n++ {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("scan events of %q: %w", tenant, err)
		}
		if n%s.scanChunk == 0 {
			bounds = append(bounds, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scan events of %q: %w", tenant, err)
	}
	return bounds, nil
}

// eachLatest scans rows of eventColumns, ordered by key and then by
// stream_seq descending, into fn and closes rows. fn learns whether a row
// is the latest copy of its key; further rows of the key with the same
// stream sequence (one message inserted twice) are skipped.
func eachLatest(rows driver.Rows, fn func(e RawEvent, isLatest bool) error) error {
	var prev RawEvent
	return eachEvent(rows, func(e RawEvent) error {
		sameKey := e.OpportunityID == prev.OpportunityID && e.Source == prev.Source && e.EventID == prev.EventID
		if sameKey && e.StreamSeq == prev.StreamSeq {
			return nil
		}
		isLatest := !sameKey
		if isLatest {
			prev.OpportunityID, prev.Source, prev.EventID = e.OpportunityID, e.Source, e.EventID
		}
		prev.StreamSeq = e.StreamSeq
		return fn(e, isLatest)
	})
}

// eachEvent scans rows of eventColumns into fn and closes rows.
func eachEvent(rows driver.Rows, fn func(RawEvent) error) error {
	defer rows.Close()
	for rows.Next() {
		var e RawEvent
		var payload string
		if err := rows.Scan(&e.Tenant, &e.OpportunityID, &e.Source, &e.EventID, &e.Type,
			&e.OccurredAt, &e.ReceivedAt, &e.StreamSeq, &payload); err != nil {
			return err
		}
		e.OccurredAt = e.OccurredAt.UTC()
		e.ReceivedAt = e.ReceivedAt.UTC()
		e.Payload = []byte(payload)
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Tenants lists the tenants that have events.
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	rows, err := s.conn.Query(ctx, `SELECT DISTINCT tenant FROM events ORDER BY tenant`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// groupSet renders ids as a parenthesised list for `col IN ?`, which uses
// the primary key index (clickhouse-go renders a plain []string as an
// array, which IN does not accept on 18.16).
func groupSet(ids []string) clickhouse.GroupSet {
	vs := make([]any, len(ids))
	for i, id := range ids {
		vs[i] = id
	}
	return clickhouse.GroupSet{Value: vs}
}

// uniqueSorted returns the distinct values of ids, sorted.
func uniqueSorted(ids []string) []string {
	out := append([]string(nil), ids...)
	sort.Strings(out)
	n := 0
	for i, id := range out {
		if i == 0 || id != out[n-1] {
			out[n] = id
			n++
		}
	}
	return out[:n]
}

// chunks splits ids into slices of at most n.
func chunks(ids []string, n int) [][]string {
	var out [][]string
	for len(ids) > n {
		out = append(out, ids[:n])
		ids = ids[n:]
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}

// SharedEventID is a source event id stored under more than one
// opportunity of one tenant: a producer sent one event under two
// opportunities, or two events under one id. The store cannot tell which
// copy is right, so both are stored and derived; operators see them in
// `commitflow verify`.
type SharedEventID struct {
	Tenant        string   `json:"tenant"`
	Source        string   `json:"source"`
	EventID       string   `json:"event_id"`
	Opportunities []string `json:"opportunities"`
}

// SharedEventIDs returns how many (tenant, source, event id) keys are
// stored under more than one opportunity, and the first limit of them in
// key order. Events without an opportunity are left out.
func (s *Store) SharedEventIDs(ctx context.Context, limit int) (uint64, []SharedEventID, error) {
	const shared = `SELECT tenant, source, event_id, arraySort(groupUniqArray(opportunity_id)) AS opps
FROM events WHERE opportunity_id != ''
GROUP BY tenant, source, event_id HAVING length(opps) > 1`
	var n uint64
	if err := s.conn.QueryRow(ctx, `SELECT count() FROM (`+shared+`)`).Scan(&n); err != nil {
		return 0, nil, fmt.Errorf("shared event ids: %w", err)
	}
	if n == 0 || limit <= 0 {
		return n, nil, nil
	}
	rows, err := s.conn.Query(ctx, shared+` ORDER BY tenant, source, event_id LIMIT ?`, limit)
	if err != nil {
		return 0, nil, fmt.Errorf("shared event ids: %w", err)
	}
	defer rows.Close()
	var out []SharedEventID
	for rows.Next() {
		var id SharedEventID
		if err := rows.Scan(&id.Tenant, &id.Source, &id.EventID, &id.Opportunities); err != nil {
			return 0, nil, fmt.Errorf("shared event ids: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("shared event ids: %w", err)
	}
	return n, out, nil
}
