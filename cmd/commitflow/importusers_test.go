package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/people"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// TestImportUsers imports a users export into ClickHouse twice (the second
// time nothing is written), then one with a refused row and a change, and
// refuses a file with --strict.
func TestImportUsers(t *testing.T) {
	ctx := context.Background()
	dsn := chtest.DSN(t)
	st := storetest.OpenDSN(t, dsn, store.Options{})
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(args ...string) (string, error) {
		var out, errs bytes.Buffer
		err := runImport(ctx, append([]string{"--format", "users", "--clickhouse", dsn, "--tenant", "acme"}, args...), &out, &errs)
		return out.String(), err
	}
	first := write("users.csv", "id,name,email,team,manager\nu1,Ada Lovelace,ada@x.io,EMEA,u3\nu2,Grace Hopper,grace@x.io,AMER,u3\n")
	second := write("users2.csv", "Id,Name,Email,Department,ManagerId\nu1,Ada Lovelace,ada@x.io,EMEA,u3\nu2,Grace B. Hopper,grace@x.io,AMER,u3\n,No Id,n@x.io,,\n")

	tests := []struct {
		args []string
		out  string
		err  string
	}{
		{[]string{first}, first + " (CSV): 2 rows read, 2 people new, 0 changed, 0 unchanged, 0 rows refused\n", ""},
		{[]string{first}, first + " (CSV): 2 rows read, 0 people new, 0 changed, 2 unchanged, 0 rows refused\n", ""},
		{[]string{"--strict", second}, second + " (CSV): 3 rows read, 0 people new, 0 changed, 0 unchanged, 1 rows refused\n  line 4: no id\n", "line 4: no id (--strict: nothing imported)"},
		{[]string{second}, second + " (CSV): 3 rows read, 0 people new, 1 changed, 1 unchanged, 1 rows refused\n  line 4: no id\n", ""},
	}
	for i, tt := range tests {
		out, err := run(tt.args...)
		if out != tt.out {
			t.Errorf("import %d printed\n%s\nwant\n%s", i+1, out, tt.out)
		}
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("import %d: error %v, want %q", i+1, err, tt.err)
		}
	}
	got, err := people.New(st.Conn()).Lookup(ctx, "acme", []string{"u1", "u2"})
	if err != nil {
		t.Fatal(err)
	}
	if got["u2"].Name != "Grace B. Hopper" || got["u1"].Manager != "u3" || len(got) != 2 {
		t.Errorf("people stored: %+v", got)
	}
	if _, err := run(write("notusers.json", `{"deals": []}`)); err == nil || !strings.Contains(err.Error(), "HubSpot /crm/v3/owners") {
		t.Errorf("a JSON file of no users: %v", err)
	}
}

// TestReportNames: once a users import names an owner, `commitflow report`
// tables show the name beside the id; csv keeps the id alone.
func TestReportNames(t *testing.T) {
	dsn := reportDSN(t) // owner ann
	users := filepath.Join(t.TempDir(), "users.csv")
	if err := os.WriteFile(users, []byte("id,name,email,team,manager\nann,Ann Example,ann@x.io,east,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	if err := runImport(context.Background(), []string{"--format", "users", "--clickhouse", dsn, "--tenant", "acme", users}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	base := []string{"stalls", "--clickhouse", dsn, "--tenant", "acme", "--as-of", "2024-04-01", "--log-level", "error", "--table", "deals"}
	got, err := runReport(base...)
	if err != nil || !strings.Contains(got, "Ann Example (ann)") {
		t.Errorf("report stalls: %v\n%s", err, got)
	}
	got, err = runReport(append(base, "--format", "csv")...)
	if err != nil || strings.Contains(got, "Ann Example") || !strings.Contains(got, ",ann,") {
		t.Errorf("report stalls --format csv: %v\n%s", err, got)
	}
}
