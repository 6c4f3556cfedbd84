package derive

import "slices"

// Diff compares two derived sets of the same opportunity by id and content.
// added holds the events of cur that old lacks or had with other content
// (to be stored again); retracted holds the events of old whose id cur no
// longer has (to be retracted). Both keep the order of their input. When
// old is empty, added is cur itself, not a copy.
func Diff(old, cur []Derived) (added, retracted []Derived) {
	if len(old) == 0 {
		return cur, nil
	}
	prev := make(map[string]int, len(old))
	for i := range old {
		prev[old[i].ID] = i
	}
	seen := make(map[string]bool, len(cur))
	for i := range cur {
		d := &cur[i]
		seen[d.ID] = true
		if j, ok := prev[d.ID]; ok && Equal(&old[j], d) {
			continue
		}
		added = append(added, *d)
	}
	for i := range old {
		if !seen[old[i].ID] {
			retracted = append(retracted, old[i])
		}
	}
	return added, retracted
}

// Equal reports whether two derived events have the same content; times are
// compared as instants.
func Equal(a, b *Derived) bool {
	return a.Tenant == b.Tenant && a.OpportunityID == b.OpportunityID && a.ID == b.ID &&
		a.Type == b.Type && a.OccurredAt.Equal(b.OccurredAt) && a.Seq == b.Seq && a.Step == b.Step &&
		a.StepIndex == b.StepIndex && a.Reason == b.Reason && a.InteractionID == b.InteractionID &&
		slices.Equal(a.Evidence, b.Evidence) && a.Amount == b.Amount && a.Currency == b.Currency &&
		a.CloseDate.Equal(b.CloseDate) && a.Stage == b.Stage && a.Probability == b.Probability &&
		a.Status == b.Status && a.OwnerID == b.OwnerID && a.Team == b.Team &&
		a.Segment == b.Segment && a.LeadSource == b.LeadSource && a.Product == b.Product && slices.Equal(a.Attrs, b.Attrs) &&
		a.ForecastCategory == b.ForecastCategory &&
		a.Value == b.Value && a.Detail == b.Detail && a.LadderVersion == b.LadderVersion
}
