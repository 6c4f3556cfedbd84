package store

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func TestSplitStatements(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"one", "SELECT 1;\n", []string{"SELECT 1"}},
		{"no trailing semicolon", "SELECT 1", []string{"SELECT 1"}},
		{"two", "CREATE TABLE a (x UInt8)\nENGINE = Memory;\n\nSELECT 2;", []string{"CREATE TABLE a (x UInt8)\nENGINE = Memory", "SELECT 2"}},
		{"semicolon inside a line stays", "SELECT 'a;b' AS x;\n", []string{"SELECT 'a;b' AS x"}},
		{"comments only are dropped", "-- header\nSELECT 1;\n-- trailer\n", []string{"-- header\nSELECT 1"}},
		{"empty rendered statement", "SELECT 1;\n\n;\n", []string{"SELECT 1"}},
		{"trailing spaces after semicolon", "SELECT 1;  \nSELECT 2;\r\n", []string{"SELECT 1", "SELECT 2"}},
		{"comment kept with its statement", "-- c\nSELECT 1;", []string{"-- c\nSELECT 1"}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SplitStatements(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SplitStatements(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

const sample = `CREATE TABLE IF NOT EXISTS {{table "events"}} {{on_cluster}} (
    tenant {{lowcard "String"}},
    seq    UInt64
) ENGINE = {{engine "events" "ReplacingMergeTree" "seq"}}
ORDER BY tenant;

{{distributed "events" "cityHash64(tenant)"}};
`

func TestRenderSingleServer(t *testing.T) {
	got, err := Render(sample, Dialect{Database: "db", Major: 18, Minor: 16})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`CREATE TABLE IF NOT EXISTS events  (
    tenant String,
    seq    UInt64
) ENGINE = ReplacingMergeTree(seq)
ORDER BY tenant`}
	if stmts := SplitStatements(got); !reflect.DeepEqual(stmts, want) {
		t.Errorf("got %q\nwant %q", stmts, want)
	}
}

func TestRenderLowCardinality(t *testing.T) {
	got, err := Render(sample, Dialect{Major: 24, Minor: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "tenant LowCardinality(String),") {
		t.Errorf("24.3 did not get LowCardinality:\n%s", got)
	}
}

func TestRenderCluster(t *testing.T) {
	got, err := Render(sample, Dialect{Cluster: "prod", Database: "commitflow", Major: 24, Minor: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CREATE TABLE IF NOT EXISTS `commitflow`.`events_local` ON CLUSTER `prod` (\n" +
			"    tenant LowCardinality(String),\n" +
			"    seq    UInt64\n" +
			") ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/commitflow/events', '{replica}', seq)\n" +
			"ORDER BY tenant",
		"CREATE TABLE IF NOT EXISTS `commitflow`.`events` ON CLUSTER `prod` AS `commitflow`.`events_local`\n" +
			"ENGINE = Distributed(`prod`, 'commitflow', 'events_local', cityHash64(tenant))",
	}
	if stmts := SplitStatements(got); !reflect.DeepEqual(stmts, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(stmts, "\n;\n"), strings.Join(want, "\n;\n"))
	}
}

func TestRenderRealMigrations(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 2 || ms[0].File != "0001_events.sql" || ms[1].File != "0002_derived_events.sql" {
		t.Fatalf("migrations: %+v", ms)
	}
	for _, m := range ms {
		single, err := Render(m.SQL, Dialect{Database: "d", Major: 18, Minor: 16})
		if err != nil {
			t.Fatalf("%s: %v", m.File, err)
		}
		if strings.Contains(single, "{{") || strings.Contains(single, "ON CLUSTER") || strings.Contains(single, "Replicated") {
			t.Errorf("%s single-server rendering:\n%s", m.File, single)
		}
		cluster, err := Render(m.SQL, Dialect{Cluster: "c1", Database: "d", Major: 24})
		if err != nil {
			t.Fatalf("%s: %v", m.File, err)
		}
		for _, stmt := range SplitStatements(cluster) {
			if (strings.Contains(stmt, "CREATE TABLE") || strings.Contains(stmt, "ALTER TABLE")) && !strings.Contains(stmt, "ON CLUSTER `c1`") {
				t.Errorf("%s: cluster statement without ON CLUSTER:\n%s", m.File, stmt)
			}
		}
	}
	// The raw and derived tables are sharded by opportunity, so FINAL on
	// the Distributed table sees every version of a row on one shard.
	for _, m := range ms[:2] {
		cluster, _ := Render(m.SQL, Dialect{Cluster: "c1", Database: "d"})
		if !strings.Contains(cluster, "cityHash64(tenant, opportunity_id))") {
			t.Errorf("%s is not sharded by (tenant, opportunity_id):\n%s", m.File, cluster)
		}
	}
}

func TestRenderRejects(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		d    Dialect
	}{
		{"cluster not an identifier", sample, Dialect{Cluster: "prod; DROP TABLE x", Database: "d"}},
		{"cluster with quote", sample, Dialect{Cluster: "a`b", Database: "d"}},
		{"cluster without database", sample, Dialect{Cluster: "prod"}},
		{"bad table", `{{table "a b"}}`, Dialect{}},
		{"not a MergeTree", `{{engine "t" "Memory"}}`, Dialect{}},
		{"unknown placeholder", `{{nope}}`, Dialect{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := Render(tt.sql, tt.d); err == nil {
				t.Errorf("Render succeeded:\n%s", got)
			}
		})
	}
}

func TestValidCluster(t *testing.T) {
	for _, ok := range []string{"prod", "_c", "cluster_1"} {
		if err := ValidCluster(ok); err != nil {
			t.Errorf("ValidCluster(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1c", "a-b", "a b", "a.b", "é"} {
		if err := ValidCluster(bad); err == nil {
			t.Errorf("ValidCluster(%q) accepted", bad)
		}
	}
}

func TestLoadMigrationsRejectsBadNames(t *testing.T) {
	tests := map[string]fstest.MapFS{
		"bad name":          {"1_x.sql": {Data: []byte("SELECT 1")}},
		"duplicate version": {"0001_a.sql": {Data: []byte("SELECT 1")}, "0001_b.sql": {Data: []byte("SELECT 1")}},
	}
	for name, fsys := range tests {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ms, err := loadMigrations(fstest.MapFS{
		"0002_b.sql": {Data: []byte("SELECT 2")},
		"0001_a.sql": {Data: []byte("SELECT 1")},
	})
	if err != nil || len(ms) != 2 || ms[0].Name != "a" || ms[1].Version != 2 || ms[0].Checksum == ms[1].Checksum {
		t.Fatalf("loadMigrations = %+v, %v", ms, err)
	}
}

// TestRenderSkipsExistingColumns renders a column-adding migration for a
// database that has the column already: nothing to run.
func TestRenderSkipsExistingColumns(t *testing.T) {
	sql := `{{if not (has_column "t" "c")}}
ALTER TABLE {{table "t"}} {{on_cluster}} ADD COLUMN c UInt8;
{{end}}
{{if not (has_distributed_column "t" "c")}}
ALTER TABLE {{distributed_table "t"}} {{on_cluster}} ADD COLUMN c UInt8;
{{end}}`
	for _, tt := range []struct {
		d    Dialect
		want int
	}{
		{Dialect{}, 1},
		{Dialect{Columns: map[string]bool{"t.c": true}}, 0},
		// On a cluster the migrator syncs the Distributed table itself.
		{Dialect{Cluster: "c1", Database: "d"}, 1},
		{Dialect{Cluster: "c1", Database: "d", Columns: map[string]bool{"t_local.c": true}}, 0},
	} {
		got, err := Render(sql, tt.d)
		if err != nil {
			t.Fatalf("%+v: %v", tt.d, err)
		}
		if n := len(SplitStatements(got)); n != tt.want {
			t.Errorf("%+v: %d statements, want %d:\n%s", tt.d, n, tt.want, got)
		}
	}
}
