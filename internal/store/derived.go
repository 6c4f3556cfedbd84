package store

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/commitflow/commitflow/internal/derive"
)

// DerivedRow is a derived event as stored: the row with the highest
// Version for an id wins, and a winning row with Retracted set means the
// event no longer holds.
type DerivedRow struct {
	derive.Derived
	Version   uint64
	Retracted bool
}

const derivedColumns = `tenant, opportunity_id, id, type, occurred_at, seq, step, step_index, reason, interaction_id, evidence,
amount, currency, close_date, stage, probability, status, owner_id, team, segment, lead_source, product, forecast_category,
attr_keys, attr_values, value, detail, ladder_version`

// epoch stands for a zero time.Time in DateTime and Date columns.
var epoch = time.Unix(0, 0).UTC()

func orEpoch(t time.Time) time.Time {
	if t.IsZero() || t.Before(epoch) {
		return epoch
	}
	return t
}

func fromEpoch(t time.Time) time.Time {
	if t.Unix() <= 0 {
		return time.Time{}
	}
	return t.UTC()
}

// InsertDerived inserts rows as one batch; on a replicated cluster it
// returns once every replica of the shards has them (see replicated), as
// derivation reads them back to diff against.
func (s *Store) InsertDerived(ctx context.Context, rows []DerivedRow) error {
	if len(rows) == 0 {
		return nil
	}
	return s.replicated(ctx, func(ctx context.Context) error { return s.insertDerived(ctx, rows) })
}

func (s *Store) insertDerived(ctx context.Context, rows []DerivedRow) error {
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO derived_events ("+derivedColumns+", version, retracted)")
	if err != nil {
		return fmt.Errorf("insert derived events: %w", err)
	}
	for i := range rows {
		r := &rows[i]
		if r.StepIndex < 0 || r.StepIndex > 255 {
			batch.Abort()
			return fmt.Errorf("insert derived events: %s: step index %d out of range 0..255", r.ID, r.StepIndex)
		}
		if r.Seq < 0 || r.Seq > math.MaxUint32 {
			batch.Abort()
			return fmt.Errorf("insert derived events: %s: seq %d out of range", r.ID, r.Seq)
		}
		evidence := r.Evidence
		if evidence == nil {
			evidence = []string{}
		}
		var retracted uint8
		if r.Retracted {
			retracted = 1
		}
		attrKeys, attrValues := attrColumns(r.Attrs)
		closeDate := orEpoch(r.CloseDate)
		closeDate = time.Date(closeDate.Year(), closeDate.Month(), closeDate.Day(), 0, 0, 0, 0, time.UTC)
		if err := batch.Append(r.Tenant, r.OpportunityID, r.ID, string(r.Type), orEpoch(r.OccurredAt), uint32(r.Seq),
			r.Step, uint8(r.StepIndex), r.Reason, r.InteractionID, evidence,
			r.Amount, r.Currency, closeDate, r.Stage, r.Probability, r.Status, r.OwnerID, r.Team, r.Segment, r.LeadSource, r.Product, r.ForecastCategory,
			attrKeys, attrValues, r.Value, r.Detail, r.LadderVersion, r.Version, retracted); err != nil {
			batch.Abort()
			return fmt.Errorf("insert derived events: row %d (%s): %w", i, r.ID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert derived events: %w", err)
	}
	return nil
}

// WithDerived returns which of tenant's opportunities opportunityIDs have
// derived events stored, retracted ones included. Like StoredCopies it reads
// one narrow column, a fraction of what LoadDerived reads.
func (s *Store) WithDerived(ctx context.Context, tenant string, opportunityIDs []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, ids := range chunks(uniqueSorted(opportunityIDs), inChunk) {
		rows, err := s.conn.Query(ctx, `SELECT DISTINCT opportunity_id FROM derived_events
WHERE tenant = ? AND opportunity_id IN ?`, tenant, groupSet(ids))
		if err != nil {
			return nil, fmt.Errorf("opportunities with derived events of %q: %w", tenant, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("opportunities with derived events of %q: %w", tenant, err)
			}
			out[id] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("opportunities with derived events of %q: %w", tenant, err)
		}
	}
	return out, nil
}

// LoadDerived returns the current, non-retracted derived events of the
// given opportunities of tenant, by opportunity id, each list ordered by
// id.
//
// The opportunities are selected in PREWHERE: with FINAL, 18.16 moves no
// condition there by itself and reads every column of the granules the
// key selects before merging them (at 10M events, a thousand deals' 24k
// rows took 10 s of ClickHouse CPU, with PREWHERE 1.8 s). Every version
// of a row has the same tenant and opportunity_id (the table's sorting
// key), so FINAL still picks among all of them; retracted is not in the
// key and stays in WHERE, applied to the version FINAL picked.
func (s *Store) LoadDerived(ctx context.Context, tenant string, opportunityIDs []string) (map[string][]derive.Derived, error) {
	out := map[string][]derive.Derived{}
	for _, ids := range chunks(uniqueSorted(opportunityIDs), inChunk) {
		rows, err := s.conn.Query(ctx, `SELECT `+derivedColumns+` FROM derived_events FINAL
PREWHERE tenant = ? AND opportunity_id IN ?
WHERE retracted = 0
ORDER BY opportunity_id, id`, tenant, groupSet(ids))
		if err != nil {
			return nil, fmt.Errorf("load derived events of %q: %w", tenant, err)
		}
		err = eachDerived(rows, func(d derive.Derived) {
			out[d.OpportunityID] = append(out[d.OpportunityID], d)
		})
		if err != nil {
			return nil, fmt.Errorf("load derived events of %q: %w", tenant, err)
		}
	}
	return out, nil
}

// CurrentDerived returns all of tenant's current, non-retracted derived
// events, ordered by (opportunity_id, id).
func (s *Store) CurrentDerived(ctx context.Context, tenant string) ([]derive.Derived, error) {
	rows, err := s.conn.Query(ctx, `SELECT `+derivedColumns+` FROM derived_events FINAL
WHERE tenant = ? AND retracted = 0
ORDER BY opportunity_id, id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("current derived events of %q: %w", tenant, err)
	}
	var out []derive.Derived
	err = eachDerived(rows, func(d derive.Derived) { out = append(out, d) })
	if err != nil {
		return nil, fmt.Errorf("current derived events of %q: %w", tenant, err)
	}
	return out, nil
}

// eachDerived scans rows of derivedColumns into fn and closes rows.
func eachDerived(rows driver.Rows, fn func(derive.Derived)) error {
	defer rows.Close()
	for rows.Next() {
		var (
			d         derive.Derived
			typ       string
			attrKeys  []string
			attrVals  []string
			seq       uint32
			stepIndex uint8
		)
		if err := rows.Scan(&d.Tenant, &d.OpportunityID, &d.ID, &typ, &d.OccurredAt, &seq,
			&d.Step, &stepIndex, &d.Reason, &d.InteractionID, &d.Evidence,
			&d.Amount, &d.Currency, &d.CloseDate, &d.Stage, &d.Probability, &d.Status, &d.OwnerID, &d.Team, &d.Segment, &d.LeadSource, &d.Product, &d.ForecastCategory,
			&attrKeys, &attrVals, &d.Value, &d.Detail, &d.LadderVersion); err != nil {
			return err
		}
		d.Attrs = attrs(attrKeys, attrVals)
		d.Type = derive.Kind(typ)
		d.Seq = int(seq)
		d.StepIndex = int(stepIndex)
		d.OccurredAt = fromEpoch(d.OccurredAt)
		// A Date comes back at midnight in the server's time zone: keep
		// its calendar day, at midnight UTC.
		if y, m, day := d.CloseDate.Date(); y > 1970 || m > 1 || day > 1 {
			d.CloseDate = time.Date(y, m, day, 0, 0, 0, 0, time.UTC)
		} else {
			d.CloseDate = time.Time{}
		}
		if len(d.Evidence) == 0 {
			d.Evidence = nil
		}
		fn(d)
	}
	return rows.Err()
}

// OpportunityRef names one opportunity of one tenant.
type OpportunityRef struct {
	Tenant        string
	OpportunityID string
}

// OpenOpportunities lists the opportunities of every tenant that are open in
// their current state: never closed, or reopened since their last close
// (the status of their last facts), ordered by (tenant, opportunity_id).
func (s *Store) OpenOpportunities(ctx context.Context) ([]OpportunityRef, error) {
	rows, err := s.conn.Query(ctx, `SELECT tenant, opportunity_id FROM opportunity_state FINAL
WHERE (empty(close_times) OR statuses[length(statuses)] = 'open') AND opportunity_id != ''
ORDER BY tenant, opportunity_id`)
	if err != nil {
		return nil, fmt.Errorf("open opportunities: %w", err)
	}
	defer rows.Close()
	var out []OpportunityRef
	for rows.Next() {
		var o OpportunityRef
		if err := rows.Scan(&o.Tenant, &o.OpportunityID); err != nil {
			return nil, fmt.Errorf("open opportunities: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("open opportunities: %w", err)
	}
	return out, nil
}

// attrColumns splits attributes into the key and value columns.
func attrColumns(as []derive.Attr) (keys, values []string) {
	keys, values = make([]string, len(as)), make([]string, len(as))
	for i, a := range as {
		keys[i], values[i] = a.Key, a.Value
	}
	return keys, values
}

// attrs joins the key and value columns; nil for none.
func attrs(keys, values []string) []derive.Attr {
	if len(keys) == 0 || len(keys) != len(values) {
		return nil
	}
	out := make([]derive.Attr, len(keys))
	for i := range keys {
		out[i] = derive.Attr{Key: keys[i], Value: values[i]}
	}
	return out
}
