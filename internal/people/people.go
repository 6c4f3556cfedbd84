// Package people keeps the people of each tenant's CRM — the users who own
// deals — by the id the CRM gives them (the owner id the events carry):
// name, e-mail, team and manager. `commitflow import --format users`
// writes them from a users/owners export; the API looks up the people an
// answer names, once per answer, to show names beside the ids.
//
// People are reference data, not events: they derive nothing, belong to
// no opportunity and are replaced whole by a later export, so they are
// written directly to the ClickHouse table people (migration 0111), one
// row per person and change, the row of the greatest version being the
// person's record.
package people

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Person is one person of a tenant's CRM. The JSON form is what answers
// carry under "people", by ID.
type Person struct {
	// ID is the CRM's id of the user (Salesforce User Id, HubSpot owner
	// id, Pipedrive user id): the owner id of the deals.
	ID    string `json:"-"`
	Name  string `json:"name"`
	Email string `json:"email"`
	Team  string `json:"team"`
	// Manager is the id of the person's manager, "" when none is known.
	Manager string `json:"manager"`
}

// Directory reads and writes the people table.
type Directory struct {
	conn driver.Conn
	now  func() time.Time
}

// New returns a Directory on conn's database, migrated to 0111 or later.
func New(conn driver.Conn) *Directory {
	return &Directory{conn: conn, now: time.Now}
}

// lookupChunk bounds the ids of one lookup query.
const lookupChunk = 2000

// Lookup returns the people of tenant among ids, by id; an id of no known
// person is absent. It runs one query per 2000 distinct ids.
func (d *Directory) Lookup(ctx context.Context, tenant string, ids []string) (map[string]Person, error) {
	out := map[string]Person{}
	_, err := d.each(ctx, tenant, ids, func(p Person, _ uint64) { out[p.ID] = p })
	return out, err
}

// Counts says what an Import did.
type Counts struct {
	New, Changed, Unchanged int
}

// Import stores ps as tenant's people: a person not known yet, or known
// with other fields, is written; one known as is is left alone, so that
// importing the same export again writes nothing. People known but absent
// from ps are kept. ps must not name an id twice.
func (d *Directory) Import(ctx context.Context, tenant string, ps []Person) (Counts, error) {
	var c Counts
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	if dup := duplicate(ids); dup != "" {
		return c, fmt.Errorf("people of %q: id %q given twice", tenant, dup)
	}
	known := map[string]Person{}
	top, err := d.each(ctx, tenant, ids, func(p Person, _ uint64) { known[p.ID] = p })
	if err != nil {
		return c, err
	}
	// A version above every stored one, so that the new rows win even
	// if the clock went back since an earlier import.
	version := max(uint64(d.now().UnixNano()), top+1)
	var write []Person
	for _, p := range ps {
		old, ok := known[p.ID]
		switch {
		case !ok:
			c.New++
			write = append(write, p)
		case old != p:
			c.Changed++
			write = append(write, p)
		default:
			c.Unchanged++
		}
	}
	if len(write) == 0 {
		return c, nil
	}
	batch, err := d.conn.PrepareBatch(ctx, "INSERT INTO people (tenant, id, name, email, team, manager, version)")
	if err != nil {
		return c, fmt.Errorf("write people of %q: %w", tenant, err)
	}
	for _, p := range write {
		if err := batch.Append(tenant, p.ID, p.Name, p.Email, p.Team, p.Manager, version); err != nil {
			batch.Abort()
			return c, fmt.Errorf("write people of %q: %w", tenant, err)
		}
	}
	if err := batch.Send(); err != nil {
		return c, fmt.Errorf("write people of %q: %w", tenant, err)
	}
	return c, nil
}

// each calls fn with the current record of each of tenant's people among
// ids and its version, and returns the greatest version seen.
func (d *Directory) each(ctx context.Context, tenant string, ids []string, fn func(p Person, version uint64)) (uint64, error) {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	if len(ids) > 0 && ids[0] == "" {
		ids = ids[1:]
	}
	var top uint64
	for len(ids) > 0 {
		n := min(len(ids), lookupChunk)
		set := make([]any, n)
		for i, id := range ids[:n] {
			set[i] = id
		}
		ids = ids[n:]
		// argMax rather than FINAL: the same on every server version and
		// through a Distributed table, without merging whole parts.
		rows, err := d.conn.Query(ctx, `SELECT id, argMax(name, version), argMax(email, version), argMax(team, version),
    argMax(manager, version), max(version)
FROM people WHERE tenant = ? AND id IN ? GROUP BY id`, tenant, clickhouse.GroupSet{Value: set})
		if err != nil {
			return 0, fmt.Errorf("look up people of %q: %w", tenant, err)
		}
		for rows.Next() {
			var p Person
			var v uint64
			if err := rows.Scan(&p.ID, &p.Name, &p.Email, &p.Team, &p.Manager, &v); err != nil {
				rows.Close()
				return 0, fmt.Errorf("look up people of %q: %w", tenant, err)
			}
			fn(p, v)
			top = max(top, v)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return 0, fmt.Errorf("look up people of %q: %w", tenant, err)
		}
	}
	return top, nil
}

// duplicate returns an id ids hold twice, "" if none.
func duplicate(ids []string) string {
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			return id
		}
		seen[id] = true
	}
	return ""
}
