package main

import (
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/bus"
)

// TestClaimMember: a run's lease member name is stable for its data
// directory while it holds the lock; a second process (here a second claim)
// gets a name of its own, and the stable name is free again once released.
func TestClaimMember(t *testing.T) {
	dir := t.TempDir()
	first, release, err := claimMember(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first, "host-") {
		t.Fatalf("first claim %q, want the stable host name", first)
	}
	second, release2, err := claimMember(dir)
	if err != nil {
		t.Fatal(err)
	}
	if second == first || strings.HasPrefix(second, "host-") {
		t.Fatalf("second claim while the first holds the lock: %q (first %q), want a random name", second, first)
	}
	for _, name := range []string{first, second} {
		if !bus.ValidMember(name) {
			t.Errorf("member name %q is not a valid lease member", name)
		}
	}
	release2()
	release()
	again, release3, err := claimMember(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer release3()
	if again != first {
		t.Fatalf("claim after release %q, want %q", again, first)
	}
	other, release4, err := claimMember(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer release4()
	if other == first {
		t.Fatalf("another data directory got the same name %q", other)
	}
}
