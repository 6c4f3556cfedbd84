package snapshot

import (
	"testing"

	"github.com/commitflow/commitflow/internal/goldentest"
)

// TestSummariesSQL compares the query of the Summaries of parts with its
// golden file.
func TestSummariesSQL(t *testing.T) {
	goldentest.Check(t, "summaries", summariesSQL)
}
