package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/commitflow/commitflow/internal/store"
)

// rejectAfter is how many times in a row ClickHouse must reject a batch
// for its data before the worker looks for the rows it rejects.
const rejectAfter = 3

// systemicChunks is the fewest chunks of one bisection level that, all
// rejected, show that the fault is not in the rows.
const systemicChunks = 8

// errSystemic reports that ClickHouse rejects every part of a batch.
var errSystemic = errors.New("ClickHouse rejects every part of the batch")

// transientCodes are ClickHouse exception codes of a server that is busy,
// short of resources or cut off from its peers: the same rows go in later.
var transientCodes = map[int32]bool{
	3: true, 32: true, // UNEXPECTED_END_OF_FILE, ATTEMPT_TO_READ_AFTER_EOF
	159: true, 164: true, // TIMEOUT_EXCEEDED, READONLY
	202: true, 203: true, // TOO_MANY_SIMULTANEOUS_QUERIES, NO_FREE_CONNECTION
	209: true, 210: true, // SOCKET_TIMEOUT, NETWORK_ERROR
	225: true, 241: true, // NO_ZOOKEEPER, MEMORY_LIMIT_EXCEEDED
	242: true, 252: true, // TABLE_IS_READ_ONLY, TOO_MANY_PARTS
	285: true, 286: true, // TOO_FEW_LIVE_REPLICAS, UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
	319: true, 394: true, // UNKNOWN_STATUS_OF_INSERT, QUERY_WAS_CANCELLED
	425: true, 999: true, // SYSTEM_ERROR, KEEPER_EXCEPTION
}

// rejection returns the server's exception when ClickHouse refused an
// insert for what it holds rather than for the state it is in: the same
// rows would be refused again.
func rejection(err error) (*clickhouse.Exception, bool) {
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || transientCodes[ex.Code] {
		return nil, false
	}
	return ex, true
}

// isolate finds the rows of rows that ClickHouse rejects on their own,
// storing the others. It inserts the rows in halves, then quarters, and so
// on: a chunk that goes in is stored, a rejected one is split again, down
// to single rows. It returns the rejected rows' indexes with the server's
// errors, or an error when an insert fails otherwise (an outage: the
// caller retries the batch) or when every chunk of a level of at least
// systemicChunks is rejected (a fault of the table or the server, not of
// the rows: nothing is dead-lettered).
func (w *Worker) isolate(ctx context.Context, rows []store.RawEvent) (map[int]error, error) {
	type chunk struct{ lo, hi int }
	bad := map[int]error{}
	level := []chunk{{0, len(rows)}}
	for len(level) > 0 {
		var next []chunk
		rejected := 0
		for _, c := range level {
			err := w.st.InsertEvents(ctx, rows[c.lo:c.hi])
			if err == nil {
				continue
			}
			if _, ok := rejection(err); !ok {
				return nil, err
			}
			rejected++
			if c.hi-c.lo == 1 {
				bad[c.lo] = err
				continue
			}
			mid := (c.lo + c.hi) / 2
			next = append(next, chunk{c.lo, mid}, chunk{mid, c.hi})
		}
		if len(level) >= systemicChunks && rejected == len(level) {
			return nil, fmt.Errorf("all %d parts rejected: %w", len(level), errSystemic)
		}
		level = next
	}
	return bad, nil
}
