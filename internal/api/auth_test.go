package api

import (
	"strings"
	"testing"
)

// TestParseTokensStatesRule: a refused token's error says the whole rule, so
// that an operator who wrote the README's token=tenant example with a short
// token learns what a token must be.
func TestParseTokensStatesRule(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"short", "secret=acme", "token of 6 bytes is shorter than 16"},
		{"space", "0123456789 abcdef=acme", "has a space"},
		{"non-ASCII", "0123456789abcdefé=acme", "non-ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTokens(tt.in)
			if err == nil {
				t.Fatalf("ParseTokens(%q) accepted", tt.in)
			}
			for _, want := range []string{tt.want, "at least 16 bytes of printable ASCII without spaces, commas or '='"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("ParseTokens(%q) error = %q, want it to say %q", tt.in, err, want)
				}
			}
		})
	}
}
