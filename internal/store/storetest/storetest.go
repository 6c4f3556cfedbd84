// Package storetest opens migrated stores for tests, on the test
// ClickHouse server that internal/chtest provides.
package storetest

import (
	"context"
	"testing"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/store"
)

// Open returns a store on a fresh database of the test server, with every
// migration applied. The store is closed and the database dropped when t
// ends.
func Open(t testing.TB, opts store.Options) *store.Store {
	t.Helper()
	return OpenDSN(t, chtest.DSN(t), opts)
}

// OpenDSN opens the store at dsn and applies every migration. The store is
// closed when t ends.
func OpenDSN(t testing.TB, dsn string, opts store.Options) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate store: %v", err)
	}
	return st
}
