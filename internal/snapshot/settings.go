package snapshot

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// blockSize is the max_block_size every read of Table runs with.
const blockSize = 8192

// QueryContext returns ctx carrying the settings every query reading
// Table runs with, the metrics', the deal lists' and the forecast's alike,
// on ClickHouse 18.16 as on current releases:
//
//   - optimize_move_to_prewhere = 0: a View may read with FINAL, and a
//     WHERE condition ClickHouse moved to PREWHERE would apply before FINAL
//     de-duplicates, dropping a row's newest version and resurrecting an
//     older one. The PREWHERE a View needs is written out (View.Prewhere).
//   - max_block_size = 8192: FINAL on 18.16 hands over blocks of up to
//     65,536 rows, over which the per-row array functions and ARRAY JOINs
//     run several times slower than over 8k-row ones (the metrics' missed
//     query 8.6 s against 2.2 s under load, the forecast's segment look-up
//     over 250k opportunities 1.5 s against 0.12 s).
//   - max_threads = maxThreads, when maxThreads is above 0: ClickHouse 18.x
//     sizes its default by physical cores and may pick 1 on a small
//     virtual machine, leaving parallel streams to run one after another.
//   - use_uncompressed_cache = 1: every answer reads the same columns of
//     the same parts, and decompressing them is much of its cost; from the
//     server's cache of decompressed blocks (uncompressed_cache_size) a
//     query at 10M raw events took ClickHouse a fifth to a third less CPU
//     (missed 533 -> 412 ms, the back-test's open deals 281 -> 192, the
//     funnel by owner 529 -> 446). The server skips the cache for a query
//     reading more than merge_tree_max_rows_to_use_cache rows (1M by
//     default): a tenant of more deals reads as before.
//
// The settings replace any settings on ctx; its other clickhouse.Context
// options stay, and View.Context keeps these.
func QueryContext(ctx context.Context, maxThreads int) context.Context {
	set := clickhouse.Settings{
		"optimize_move_to_prewhere": 0,
		"max_block_size":            blockSize,
		"use_uncompressed_cache":    1,
	}
	if maxThreads > 0 {
		set["max_threads"] = maxThreads
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(set))
}
