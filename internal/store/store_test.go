package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/derive"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// openMigrated opens a store on a fresh database and migrates it.
func openMigrated(t testing.TB) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, chtest.DSN(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMigrateIdempotent(t *testing.T) {
	ctx := context.Background()
	dsn := chtest.DSN(t)
	s, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ok, err := s.Migrated(ctx); err != nil || ok {
		t.Fatalf("Migrated on an empty database = %v, %v", ok, err)
	}
	applied, err := s.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := Migrations()
	if len(applied) != len(ms) || applied[0] != "0001_events.sql" {
		t.Fatalf("first Migrate applied %v", applied)
	}
	if ok, err := s.Migrated(ctx); err != nil || !ok {
		t.Fatalf("Migrated after Migrate = %v, %v", ok, err)
	}
	// Again, and from another connection: nothing to do.
	if applied, err := s.Migrate(ctx); err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate = %v, %v", applied, err)
	}
	s2, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if applied, err := s2.Migrate(ctx); err != nil || len(applied) != 0 {
		t.Fatalf("Migrate from a second store = %v, %v", applied, err)
	}
	var n uint64
	if err := s.Conn().QueryRow(ctx, "SELECT count() FROM schema_migrations").Scan(&n); err != nil || n != uint64(len(ms)) {
		t.Fatalf("schema_migrations has %d rows (%v), want %d", n, err, len(ms))
	}
	// A migration added later is applied on its own.
	more := append(append([]Migration(nil), ms...), Migration{Version: 9999, Name: "extra", File: "9999_extra.sql",
		SQL: "CREATE TABLE IF NOT EXISTS extra (a UInt8) ENGINE = MergeTree ORDER BY a;\n", Checksum: "x"})
	if applied, err := s.migrate(ctx, more); err != nil || !reflect.DeepEqual(applied, []string{"9999_extra.sql"}) {
		t.Fatalf("migrate with a new migration = %v, %v", applied, err)
	}
}

func TestMigrateRefusesChangedChecksum(t *testing.T) {
	s := openMigrated(t)
	ms, _ := Migrations()
	ms[1].SQL += "\n-- edited\n"
	ms[1].Checksum = "0123456789abcdef"
	_, err := s.migrate(context.Background(), ms)
	if err == nil || !strings.Contains(err.Error(), "0002_derived_events.sql") || !strings.Contains(err.Error(), "must not change") {
		t.Fatalf("migrate with a changed file = %v", err)
	}
}

func TestOpenCreatesDatabase(t *testing.T) {
	ctx := context.Background()
	u, err := url.Parse(chtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path += "_new"
	s, err := Open(ctx, u.String(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		s.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+s.Database())
		s.Close()
	}()
	if want := strings.TrimPrefix(u.Path, "/"); s.Database() != want {
		t.Fatalf("Database() = %q, want %q", s.Database(), want)
	}
	if major, _ := s.ServerVersion(); major < 18 {
		t.Fatalf("server major version %d", major)
	}
}

func TestOpenRejectsBadCluster(t *testing.T) {
	_, err := Open(context.Background(), "clickhouse://127.0.0.1:1/default", Options{Cluster: "a;b"})
	if err == nil || !strings.Contains(err.Error(), "not an identifier") {
		t.Fatalf("Open = %v", err)
	}
}

func ev(tenant, opp, id string, seq uint64, at time.Time) RawEvent {
	return RawEvent{Tenant: tenant, OpportunityID: opp, Source: "crm", EventID: id, Type: "opportunity.created",
		OccurredAt: at, ReceivedAt: at.Add(time.Minute), StreamSeq: seq, Payload: []byte(`{"id":"` + id + `"}`)}
}

func TestInsertEventsDeduplicates(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	at := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	first := []RawEvent{ev("t1", "o1", "e1", 1, at), ev("t1", "o1", "e2", 2, at), ev("t1", "o2", "e3", 3, at), ev("t2", "o1", "e1", 4, at)}
	if err := s.InsertEvents(ctx, first); err != nil {
		t.Fatal(err)
	}
	// Redelivery of e1 and e3: same keys, later stream sequence, separate part.
	again := []RawEvent{ev("t1", "o1", "e1", 11, at), ev("t1", "o2", "e3", 13, at)}
	if err := s.InsertEvents(ctx, again); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertEvents(ctx, nil); err != nil {
		t.Fatal(err)
	}
	n, err := s.CountEvents(ctx, "t1")
	if err != nil || n != 3 {
		t.Fatalf("CountEvents(t1) = %d, %v; want 3", n, err)
	}
	if n, err := s.CountEvents(ctx, "nobody"); err != nil || n != 0 {
		t.Fatalf("CountEvents(nobody) = %d, %v", n, err)
	}
	got, err := s.LoadEvents(ctx, "t1", []string{"o2", "o1", "o1", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	want := []RawEvent{ev("t1", "o1", "e1", 11, at), ev("t1", "o1", "e2", 2, at), ev("t1", "o2", "e3", 13, at)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadEvents =\n%+v\nwant\n%+v", got, want)
	}
	if got, err := s.LoadEvents(ctx, "t1", nil); err != nil || len(got) != 0 {
		t.Fatalf("LoadEvents(no ids) = %v, %v", got, err)
	}
	tenants, err := s.Tenants(ctx)
	if err != nil || !reflect.DeepEqual(tenants, []string{"t1", "t2"}) {
		t.Fatalf("Tenants = %v, %v", tenants, err)
	}
}

func TestLoadEventsManyIDs(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	at := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	var evs []RawEvent
	var ids []string
	for i := 0; i < 2*inChunk+7; i++ {
		opp := fmt.Sprintf("opportunity-with-a-longish-id-%06d", i)
		ids = append(ids, opp)
		evs = append(evs, ev("t", opp, "e", uint64(i), at))
	}
	if err := s.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadEvents(ctx, "t", ids)
	if err != nil || len(got) != len(evs) {
		t.Fatalf("LoadEvents = %d events, %v; want %d", len(got), err, len(evs))
	}
}

func TestScanEventsGroupsByOpportunity(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	s.scanChunk = 3 // several range queries, with groups on both sides of a bound
	at := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	want := map[string]int{}
	var evs []RawEvent
	for i := 0; i < 10; i++ {
		opp := fmt.Sprintf("o%02d", i)
		for j := 0; j <= i%4; j++ {
			// Spread over months: rows of one opportunity sit in several partitions.
			evs = append(evs, ev("t", opp, fmt.Sprintf("e%d", j), uint64(100*i+j), at.AddDate(0, j, 0)))
			want[opp]++
		}
	}
	evs = append(evs, ev("other", "o00", "x", 1, at))
	if err := s.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertEvents(ctx, evs[:5]); err != nil { // duplicates
		t.Fatal(err)
	}
	var order []string
	got := map[string]int{}
	err := s.ScanEvents(ctx, "t", func(opp string, group []RawEvent) error {
		order = append(order, opp)
		for i, e := range group {
			if e.OpportunityID != opp || e.Tenant != "t" {
				t.Errorf("group %s holds %s/%s", opp, e.Tenant, e.OpportunityID)
			}
			if i > 0 && group[i-1].EventID >= e.EventID {
				t.Errorf("group %s not in key order", opp)
			}
		}
		got[opp] += len(group)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ScanEvents counts %v, want %v", got, want)
	}
	if len(order) != 10 || order[0] != "o00" || order[9] != "o09" {
		t.Fatalf("ScanEvents visited %v", order)
	}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Fatalf("ScanEvents order %v", order)
		}
	}

	stop := errors.New("stop")
	calls := 0
	err = s.ScanEvents(ctx, "t", func(string, []RawEvent) error {
		calls++
		if calls == 4 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 4 {
		t.Fatalf("ScanEvents with a failing fn = %v after %d calls", err, calls)
	}
	if err := s.ScanEvents(ctx, "nobody", func(string, []RawEvent) error { t.Fatal("called"); return nil }); err != nil {
		t.Fatal(err)
	}
}

func derived(opp, id string, kind derive.Kind) derive.Derived {
	return derive.Derived{
		Tenant: "t", OpportunityID: opp, ID: id, Type: kind,
		OccurredAt: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		Step:       "explore", StepIndex: 2, Reason: derive.MissNoNextStep, InteractionID: "call-1",
		Evidence: []string{"crm/e1", "gong/c1"},
		Snapshot: derive.Snapshot{Amount: 12500.5, CloseDate: time.Date(2024, 9, 30, 0, 0, 0, 0, time.UTC),
			Stage: "Discovery", Probability: 0.2, Status: "open", OwnerID: "u1", Team: "east", Segment: "mid",
			LeadSource: "web", Product: "core", Currency: "GBP", Attrs: []derive.Attr{{Key: "region", Value: "EMEA"}}},
		Value: 3, Detail: `{"k":1}`, LadderVersion: "v1",
	}
}

func TestDerivedRetraction(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	a := derived("o1", "a", derive.CommitmentGained)
	b := derived("o1", "b", derive.CommitmentMissed)
	c := derived("o2", "c", derive.DealStalled)
	c.Evidence, c.CloseDate, c.Step, c.StepIndex = nil, time.Time{}, "", 0
	other := derived("o1", "z", derive.DealClosed)
	other.Tenant = "u"
	rows := []DerivedRow{{Derived: a, Version: 1}, {Derived: b, Version: 1}, {Derived: c, Version: 1}, {Derived: other, Version: 1}}
	if err := s.InsertDerived(ctx, rows); err != nil {
		t.Fatal(err)
	}
	got, err := s.CurrentDerived(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if want := []derive.Derived{a, b, c}; !reflect.DeepEqual(got, want) {
		t.Fatalf("CurrentDerived =\n%+v\nwant\n%+v", got, want)
	}

	// Retract b in a separate insert (a separate part, not merged yet).
	if err := s.InsertDerived(ctx, []DerivedRow{{Derived: b, Version: 2, Retracted: true}}); err != nil {
		t.Fatal(err)
	}
	byOpp, err := s.LoadDerived(ctx, "t", []string{"o1", "o2", "o3"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]derive.Derived{"o1": {a}, "o2": {c}}
	if !reflect.DeepEqual(byOpp, want) {
		t.Fatalf("LoadDerived after retraction =\n%+v\nwant\n%+v", byOpp, want)
	}
	if got, _ := s.CurrentDerived(ctx, "t"); len(got) != 2 {
		t.Fatalf("CurrentDerived after retraction has %d rows", len(got))
	}

	// A later version brings it back, with new facts.
	b.Value = 4
	if err := s.InsertDerived(ctx, []DerivedRow{{Derived: b, Version: 3}}); err != nil {
		t.Fatal(err)
	}
	byOpp, err = s.LoadDerived(ctx, "t", []string{"o1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (map[string][]derive.Derived{"o1": {a, b}}); !reflect.DeepEqual(byOpp, want) {
		t.Fatalf("LoadDerived after re-gain =\n%+v\nwant\n%+v", byOpp, want)
	}
	// A stale retraction (lower version) arriving late changes nothing.
	if err := s.InsertDerived(ctx, []DerivedRow{{Derived: b, Version: 2, Retracted: true}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.CurrentDerived(ctx, "t"); len(got) != 3 {
		t.Fatalf("CurrentDerived after a stale retraction has %d rows", len(got))
	}

	// WithDerived names the tenant's opportunities with any derived row,
	// one whose every row is retracted too.
	d := derived("o4", "d", derive.CommitmentGained)
	if err := s.InsertDerived(ctx, []DerivedRow{{Derived: d, Version: 2, Retracted: true}}); err != nil {
		t.Fatal(err)
	}
	with, err := s.WithDerived(ctx, "t", []string{"o1", "o2", "o3", "o4", "o1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]bool{"o1": true, "o2": true, "o4": true}; !reflect.DeepEqual(with, want) {
		t.Fatalf("WithDerived = %v, want %v", with, want)
	}
}

func TestInsertDerivedRejectsStepIndex(t *testing.T) {
	s := openMigrated(t)
	d := derived("o", "x", derive.CommitmentGained)
	d.StepIndex = 300
	if err := s.InsertDerived(context.Background(), []DerivedRow{{Derived: d}}); err == nil {
		t.Fatal("step index 300 accepted")
	}
}

// TestStoreOutlivesServerRestart: a Store keeps working after ClickHouse
// went away and came back; inserts fail while it is down.
func TestStoreOutlivesServerRestart(t *testing.T) {
	ctx := context.Background()
	srv := chtest.Server(t)
	s, err := Open(ctx, srv.DSN(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.InsertEvents(ctx, []RawEvent{ev("t", "o", "1", 1, at)}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("stop took %v", time.Since(t0))
	t0 = time.Now()
	down, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = s.InsertEvents(down, []RawEvent{ev("t", "o", "2", 2, at)})
	cancel()
	if err == nil {
		t.Fatal("insert succeeded while ClickHouse was down")
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("ping succeeded while ClickHouse was down")
	}
	t.Logf("failing calls took %v", time.Since(t0))
	t0 = time.Now()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restart took %v", time.Since(t0))
	if err := s.InsertEvents(ctx, []RawEvent{ev("t", "o", "2", 2, at)}); err != nil {
		t.Fatalf("insert after restart: %v", err)
	}
	if n, err := s.CountEvents(ctx, "t"); err != nil || n != 2 {
		t.Fatalf("CountEvents = %d, %v; want 2", n, err)
	}
	if ok, err := s.Migrated(ctx); err != nil || !ok {
		t.Fatalf("Migrated after restart = %v, %v", ok, err)
	}
}

// BenchmarkInsertEvents inserts batches of 50,000 events; it reports rows/s.
func BenchmarkInsertEvents(b *testing.B) {
	ctx := context.Background()
	s := openMigrated(b)
	const batch = 50000
	payload := []byte(strings.Repeat(`{"type":"activity.logged","x":"abcdefgh"}`, 8))
	evs := make([]RawEvent, batch)
	at := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := range evs {
			n := i*batch + j
			evs[j] = RawEvent{Tenant: "bench", OpportunityID: fmt.Sprintf("opp-%07d", n/20), Source: "crm",
				EventID: fmt.Sprintf("ev-%09d", n), Type: "activity.logged", OccurredAt: at.Add(time.Duration(n) * time.Minute),
				ReceivedAt: at, StreamSeq: uint64(n), Payload: payload}
		}
		b.StartTimer()
		if err := s.InsertEvents(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
}

func TestOpenOpportunities(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	at := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	evs := []RawEvent{ev("t", "o1", "e1", 1, at), ev("t", "o1", "e2", 2, at), ev("t", "o2", "e3", 3, at),
		ev("t", "o3", "e4", 4, at), ev("u", "o1", "e5", 5, at), ev("t", "", "e6", 6, at)}
	if err := s.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	closed := func(opp, id, status string) derive.Derived {
		d := derived(opp, id, derive.DealClosed)
		d.Status, d.Snapshot.Status = status, status
		return d
	}
	won := closed("o2", "closed-o2", "won")
	reopened := closed("o3", "closed-o3", "lost")
	otherTenant := closed("o1", "closed-u-o1", "lost")
	otherTenant.Tenant = "u"
	// o4 was lost and then reopened by a stage change: open again.
	lostThenOpen := closed("o4", "closed-o4", "lost")
	again := derived("o4", "reopened-o4", derive.DealReopened)
	again.OccurredAt = lostThenOpen.OccurredAt.Add(time.Hour)
	if err := s.InsertDerivedWithStates(ctx, []DerivedRow{{Derived: won, Version: 1}, {Derived: reopened, Version: 1},
		{Derived: otherTenant, Version: 1}, {Derived: derived("o1", "gained", derive.CommitmentGained), Version: 1},
		{Derived: lostThenOpen, Version: 1}, {Derived: again, Version: 1}}, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertDerivedWithStates(ctx, []DerivedRow{{Derived: reopened, Version: 2, Retracted: true}}, 10); err != nil {
		t.Fatal(err)
	}
	got, err := s.OpenOpportunities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []OpportunityRef{{"t", "o1"}, {"t", "o3"}, {"t", "o4"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("OpenOpportunities = %v, want %v", got, want)
	}
}
