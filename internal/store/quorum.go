package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/commitflow/commitflow/internal/retry"
)

// Read-your-writes on a replicated cluster (issue 19 item 3). An INSERT
// through a Distributed table (insert_distributed_sync) is acknowledged
// once one replica of each shard has the rows; a later read through it
// may go to another replica that has not fetched them yet. Derivation
// reads a deal's history right after ingest acknowledged it, so on a
// cluster the inserts of the events and of the derived events (which
// derivation reads back to diff against) are quorum inserts of every
// replica of the shard: acknowledged only once each replica has the rows,
// so that whichever replica a read reaches holds everything acknowledged
// before it. The price: while a replica is down, these inserts fail (and
// their callers retry) until it is back.

// quorumTimeout bounds how long a quorum insert waits for the shard's
// other replicas to fetch its part (the server default is 10 minutes).
const quorumTimeout = time.Minute

// quorumBusyFor is how long a quorum insert is retried while the server
// refuses it because another one on the same table has not reached its
// quorum yet: ClickHouse before 20.10 (no insert_quorum_parallel) takes one
// quorum insert per table at a time, so concurrent writers take turns.
const quorumBusyFor = 10 * time.Second

// codeQuorumBusy is UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE: "Quorum for
// previous write has not been satisfied yet" or "Another quorum insert has
// been already started". It is raised before the part is committed.
const codeQuorumBusy = 286

// replicasPerShard returns the number of replicas of each shard of
// cluster, which must be the same for every shard.
func replicasPerShard(ctx context.Context, conn driver.Conn, cluster string) (int, error) {
	var lo, hi uint64
	err := conn.QueryRow(ctx, `SELECT min(n), max(n) FROM (SELECT shard_num, count() AS n FROM system.clusters WHERE cluster = ? GROUP BY shard_num)`,
		cluster).Scan(&lo, &hi)
	if err != nil {
		return 0, fmt.Errorf("replicas of cluster %s: %w", cluster, err)
	}
	if hi == 0 {
		return 0, fmt.Errorf("cluster %s: not in system.clusters of the server (remote_servers)", cluster)
	}
	if lo != hi {
		return 0, fmt.Errorf("cluster %s: shards have %d to %d replicas; commitflow needs the same number in every shard "+
			"(its inserts wait for every replica of the shard)", cluster, lo, hi)
	}
	return int(lo), nil
}

// replicated runs insert, an INSERT through a Distributed table, as a
// quorum insert of every replica of the shard when the store's cluster
// has more than one (see above); on one server or unreplicated shards it
// just runs insert. A refusal because another quorum insert of the table
// is under way is retried, with a short randomized back-off, for up to
// quorumBusyFor.
func (s *Store) replicated(ctx context.Context, insert func(ctx context.Context) error) error {
	if s.quorum < 2 {
		return insert(ctx)
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"insert_quorum":         s.quorum,
		"insert_quorum_timeout": int(quorumTimeout / time.Millisecond),
	}))
	// Waits of 5 ms doubling to 200 ms, each drawn from ±50% of that.
	r := retry.Policy{Initial: 7500 * time.Microsecond, Max: 300 * time.Millisecond, Jitter: 2.0 / 3, For: quorumBusyFor}.Start()
	for {
		err := insert(ctx)
		var ex *clickhouse.Exception
		if err == nil || !errors.As(err, &ex) || ex.Code != codeQuorumBusy {
			return err
		}
		wait, ok := r.Next()
		if !ok || retry.Sleep(ctx, wait) != nil {
			return err
		}
	}
}
