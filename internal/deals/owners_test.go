package deals

import (
	"slices"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/event"
)

// TestTimelineOwners: an input event of the timeline lists the owner ids
// its summary names, so that the answer's people can name them.
func TestTimelineOwners(t *testing.T) {
	tests := []struct {
		payload event.Payload
		want    []string
	}{
		{&event.Opportunity{Stage: "Prospecting", OwnerID: "005A"}, []string{"005A"}},
		{&event.Opportunity{Stage: "Prospecting"}, nil},
		{&event.OwnerChange{From: "005A", To: "005B"}, []string{"005A", "005B"}},
		{&event.OwnerChange{To: "005B"}, []string{"005B"}},
		{&event.StageChange{To: "Qualification"}, nil},
	}
	for _, tt := range tests {
		tl := timeline([]event.Event{{ID: "e1", Payload: tt.payload}}, nil)
		if got := tl[0].Owners; !slices.Equal(got, tt.want) {
			t.Errorf("%T %+v: owners %v, want %v (summary %q)", tt.payload, tt.payload, got, tt.want, tl[0].Summary)
		}
		for _, id := range tt.want {
			if !strings.Contains(tl[0].Summary, id) {
				t.Errorf("summary %q does not name %s", tl[0].Summary, id)
			}
		}
	}
}
