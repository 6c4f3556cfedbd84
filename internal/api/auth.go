package api

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/param"
)

// ParseTokens parses a token list of the form "token1=tenant1,token2=tenant2"
// (the COMMITFLOW_TOKENS format) into a map from bearer token to tenant.
// Blank entries are ignored; tokens must be at least 16 bytes of printable
// ASCII without spaces, commas or '=', and tenants must be valid event
// tenant names. An empty s gives an empty map.
func ParseTokens(s string) (map[string]string, error) {
	tokens := make(map[string]string)
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		tok, tenant, ok := strings.Cut(entry, "=")
		tok, tenant = strings.TrimSpace(tok), strings.TrimSpace(tenant)
		switch {
		case !ok:
			return nil, fmt.Errorf("tokens: entry %d: want token=tenant", i+1)
		case len(tok) < minTokenLen:
			return nil, fmt.Errorf("tokens: entry %d: token of %d bytes is shorter than %d: %s", i+1, len(tok), minTokenLen, tokenRule)
		case !printableToken(tok):
			return nil, fmt.Errorf("tokens: entry %d: token has a space, a control or a non-ASCII character: %s", i+1, tokenRule)
		case !event.ValidToken(tenant):
			return nil, fmt.Errorf("tokens: entry %d: invalid tenant %q", i+1, tenant)
		}
		if _, dup := tokens[tok]; dup {
			return nil, fmt.Errorf("tokens: entry %d: token given twice", i+1)
		}
		tokens[tok] = tenant
	}
	return tokens, nil
}

// minTokenLen is the shortest bearer token ParseTokens accepts.
const minTokenLen = 16

// tokenRule is the rule for bearer tokens, as ParseTokens' errors state it.
const tokenRule = "a token must be at least 16 bytes of printable ASCII without spaces, commas or '=' (e.g. the output of openssl rand -hex 16)"

func printableToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == ',' || c == '=' {
			return false
		}
	}
	return true
}

// authenticator maps bearer tokens to tenants. It keys on a SHA-256 of
// the token so that the map lookup's timing says nothing about the secret.
type authenticator struct {
	tenants map[[sha256.Size]byte]string
	open    bool
}

func newAuthenticator(tokens map[string]string, open bool) *authenticator {
	a := &authenticator{tenants: make(map[[sha256.Size]byte]string, len(tokens)), open: open}
	for tok, tenant := range tokens {
		a.tenants[sha256.Sum256([]byte(tok))] = tenant
	}
	return a
}

// authError is an authentication or authorization failure (401, 403).
type authError struct {
	status int
	msg    string
	param  string
}

func (e *authError) Error() string { return e.msg }

// tenant returns the tenant the request may see, v being its query. With a
// bearer token the token decides; a tenant parameter must then agree (403
// otherwise). In open mode a request without a token names its tenant with
// ?tenant=.
func (a *authenticator) tenant(r *http.Request, v url.Values) (string, error) {
	given, hasParam := v["tenant"]
	if hasParam && len(given) != 1 {
		return "", param.Errorf("tenant", param.Repeated, "given more than once")
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		if !a.open {
			return "", &authError{status: http.StatusUnauthorized, msg: "missing bearer token"}
		}
		switch {
		case !hasParam || given[0] == "":
			return "", param.Errorf("tenant", param.Required, "required (the server runs without tokens)")
		case !event.ValidToken(given[0]):
			return "", param.Errorf("tenant", param.Invalid, "not a valid tenant name")
		}
		return given[0], nil
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", &authError{status: http.StatusUnauthorized, msg: "malformed Authorization header: want Bearer <token>"}
	}
	tenant, ok := a.tenants[sha256.Sum256([]byte(strings.TrimSpace(tok)))]
	if !ok {
		return "", &authError{status: http.StatusUnauthorized, msg: "unknown bearer token"}
	}
	if hasParam && given[0] != tenant {
		return "", &authError{http.StatusForbidden, "the token does not grant this tenant", "tenant"}
	}
	return tenant, nil
}
