package store

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/commitflow/commitflow/internal/chtest"
)

// TestPoolsApart: derivation holds every connection of its pool with slow
// queries; a query of that pool waits for one and fails naming the pool,
// while the readiness probe's pool answers at once.
func TestPoolsApart(t *testing.T) {
	ctx := t.Context()
	dsn := chtest.DSN(t)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	s, err := Open(ctx, dsn+sep+"dial_timeout=1s", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	derive, err := s.Pool(ctx, "derive", 4)
	if err != nil {
		t.Fatal(err)
	}
	probe, err := s.Pool(ctx, "probe", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := derive.Conn().Exec(ctx, "SELECT sleep(3)"); err != nil {
				t.Errorf("slow query: %v", err)
			}
		})
	}
	defer wg.Wait()
	for derive.Conn().Stats().Open < 4 {
		time.Sleep(10 * time.Millisecond)
	}

	start := time.Now()
	if err := probe.Ping(ctx); err != nil {
		t.Fatalf("probe ping: %v", err)
	}
	if ok, err := probe.Migrated(ctx); err != nil || !ok {
		t.Fatalf("probe Migrated = %v, %v", ok, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the probe took %v while derivation held its pool", took)
	}

	err = derive.Conn().QueryRow(ctx, "SELECT 1").Scan(new(uint8))
	if !errors.Is(err, clickhouse.ErrAcquireConnTimeout) {
		t.Fatalf("a query of the saturated pool: %v, want ErrAcquireConnTimeout", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, `pool "derive"`) || !strings.Contains(msg, "all 4 of this pool's connections are in use") ||
		strings.Contains(msg, "increase the number of max open conn") {
		t.Errorf("saturated pool's error: %s", msg)
	}

	wg.Wait()
	if err := derive.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("the main pool after a sibling closed: %v", err)
	}
	if err := probe.Ping(ctx); err != nil {
		t.Errorf("the probe pool after a sibling closed: %v", err)
	}
	if probe.Database() != s.Database() {
		t.Errorf("probe database %q, main %q", probe.Database(), s.Database())
	}
}

func TestPoolErrorText(t *testing.T) {
	for _, tc := range []struct {
		busy int
		want string
	}{
		{16, `clickhouse pool "api": no connection free within 5s: all 16 of this pool's connections are in use by its own queries (other pools are not affected)`},
		{3, `clickhouse pool "api": could not connect to ClickHouse within 5s (3 of 16 connections in use)`},
	} {
		err := error(&poolError{pool: "api", wait: 5 * time.Second, busy: tc.busy, size: 16, err: clickhouse.ErrAcquireConnTimeout})
		if err.Error() != tc.want || !errors.Is(err, clickhouse.ErrAcquireConnTimeout) {
			t.Errorf("busy %d: %q", tc.busy, err)
		}
	}
}
