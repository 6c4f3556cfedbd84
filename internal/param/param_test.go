package param

import (
	"fmt"
	"testing"
)

func TestError(t *testing.T) {
	err := fmt.Errorf("funnel: %w", Errorf("page_size", OutOfRange, "must be between 1 and %d", 1000))
	e := As(err)
	if e == nil {
		t.Fatalf("As(%v) = nil", err)
	}
	if e.Param != "page_size" || e.Code != OutOfRange || e.Reason != "must be between 1 and 1000" {
		t.Errorf("got %+v", *e)
	}
	if got, want := err.Error(), "funnel: parameter page_size: must be between 1 and 1000"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if As(fmt.Errorf("other")) != nil {
		t.Error("As of an error without an *Error is not nil")
	}
}
