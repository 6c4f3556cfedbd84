package store

import (
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
	"github.com/commitflow/commitflow/internal/chtest"
)

// TestDSNSettings: settings of every type in the DSN reach a server that
// takes settings as strings. A server that takes them only in binary form
// (ClickHouse 18.16) gets the integers, and Open refuses the others with
// an error naming each and saying where they go instead, rather than every
// query failing with "unsupported data type"; the same when Open has to
// create the database first.
func TestDSNSettings(t *testing.T) {
	ctx := t.Context()
	dsn := chtest.DSN(t)
	plain, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	v, err := plain.conn.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	asStrings := v.Revision > proto.DBMS_MIN_REVISION_WITH_SETTINGS_SERIALIZED_AS_STRINGS
	t.Logf("server %s, protocol revision %d, settings as strings: %v", v.Version, v.Revision, asStrings)

	want := map[string]string{"max_threads": "3", "load_balancing": "in_order", "totals_auto_threshold": "0.25"}
	all := "?max_threads=3&load_balancing=in_order&totals_auto_threshold=0.25"
	check := func(t *testing.T, s *Store, names ...string) {
		t.Helper()
		for _, name := range names {
			var got string
			if err := s.Conn().QueryRow(ctx, "SELECT value FROM system.settings WHERE name = ?", name).Scan(&got); err != nil {
				t.Fatalf("read setting %s: %v", name, err)
			}
			if got != want[name] {
				t.Errorf("setting %s = %q, want %q", name, got, want[name])
			}
		}
	}

	// An integer setting passes to any server.
	s, err := Open(ctx, dsn+"?max_threads=3", Options{})
	if err != nil {
		t.Fatal(err)
	}
	check(t, s, "max_threads")
	s.Close()

	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	newDB := *u
	newDB.Path += "_new"
	for _, d := range []string{dsn + all, newDB.String() + all} {
		s, err := Open(ctx, d, Options{})
		if asStrings {
			if err != nil {
				t.Fatalf("Open(%s): %v", d, err)
			}
			check(t, s, "max_threads", "load_balancing", "totals_auto_threshold")
			if err := s.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(strings.TrimPrefix(newDB.Path, "/"))); err != nil {
				t.Error(err)
			}
			s.Close()
			continue
		}
		if err == nil {
			s.Close()
			t.Fatalf("Open(%s) took string settings a server of revision %d cannot be sent", d, v.Revision)
		}
		// Named: the two the server cannot be sent, not max_threads.
		for _, part := range []string{"DSN settings load_balancing=in_order, totals_auto_threshold=0.25:", "users.xml", "18.16"} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("Open(%s) error = %v\nwant it to say %q", d, err, part)
			}
		}
	}
}

// TestMultiHostDSN: a DSN with several hosts connects through the first that
// answers, here the second after a closed port, and keeps the DSN's own
// connection options.
func TestMultiHostDSN(t *testing.T) {
	ctx := t.Context()
	dsn := chtest.DSN(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	multi := strings.Replace(dsn, "://", "://"+dead+",", 1) + "?dial_timeout=2s&max_open_conns=3"

	chopt, err := parseDSN(multi)
	if err != nil {
		t.Fatal(err)
	}
	if len(chopt.Addr) != 2 || chopt.Addr[0] != dead || chopt.DialTimeout.String() != "2s" || chopt.MaxOpenConns != 3 {
		t.Errorf("parseDSN(%s): addr %v, dial timeout %s, max open %d", multi, chopt.Addr, chopt.DialTimeout, chopt.MaxOpenConns)
	}
	if r := redact(strings.Replace(multi, "://", "://u:secret@", 1)); strings.Contains(r, "secret") || !strings.Contains(r, dead) {
		t.Errorf("redact = %s", r)
	}

	s, err := Open(ctx, multi, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", multi, err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := s.Pool(ctx, "probe", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if ok, err := p.Migrated(ctx); err != nil || !ok {
		t.Fatalf("Migrated through the second host = %v, %v", ok, err)
	}
}
