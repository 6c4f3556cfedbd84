package ladder

import "strings"

// keyword is a lower-cased word or phrase matched case-insensitively at word
// boundaries.
type keyword struct {
	s     string
	ascii bool
}

func newKeyword(s string) keyword {
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	return keyword{s: s, ascii: ascii}
}

// isWordByte reports whether b belongs to a word: letters, digits, '_' and
// any byte of a multi-byte character.
func isWordByte(b byte) bool {
	return b >= 0x80 || b == '_' || ('0' <= b && b <= '9') || ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z')
}

func lowerASCII(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// matchAny reports whether any keyword occurs in text as whole words. It
// does not allocate unless a keyword is not plain ASCII.
func matchAny(kws []keyword, text string) bool {
	if len(kws) == 0 || text == "" {
		return false
	}
	var lower string // text lower-cased, built only for non-ASCII keywords
	for start := 0; start < len(text); start++ {
		if !isWordByte(text[start]) || (start > 0 && isWordByte(text[start-1])) {
			continue
		}
		c := lowerASCII(text[start])
		for i := range kws {
			k := &kws[i]
			if !k.ascii || len(k.s) == 0 || k.s[0] != c || len(k.s) > len(text)-start {
				continue
			}
			if n, ok := hasPrefixFold(text[start:], k.s); ok {
				end := start + n
				if end == len(text) || !isWordByte(text[end]) || !isWordByte(k.s[len(k.s)-1]) {
					return true
				}
			}
		}
	}
	for i := range kws {
		if kws[i].ascii {
			continue
		}
		if lower == "" {
			lower = strings.ToLower(text)
		}
		if containsWord(lower, kws[i].s) {
			return true
		}
	}
	return false
}

// hasPrefixFold reports whether s starts with the lower-case ASCII prefix p,
// ignoring ASCII case, and how many bytes of s matched; a run of white space
// or hyphens in s matches a single space in p ("deep-dive" matches
// "deep dive").
func hasPrefixFold(s, p string) (int, bool) {
	j := 0
	for i := 0; i < len(p); i++ {
		if j >= len(s) {
			return 0, false
		}
		if p[i] == ' ' {
			if !isSep(s[j]) {
				return 0, false
			}
			for j < len(s) && isSep(s[j]) {
				j++
			}
			continue
		}
		if lowerASCII(s[j]) != p[i] {
			return 0, false
		}
		j++
	}
	return j, true
}

// containsWord reports whether kw occurs in s at word boundaries; both are
// lower-cased.
func containsWord(s, kw string) bool {
	for off := 0; ; {
		i := strings.Index(s[off:], kw)
		if i < 0 {
			return false
		}
		start, end := off+i, off+i+len(kw)
		if (start == 0 || !isWordByte(s[start-1])) && (end == len(s) || !isWordByte(s[end])) {
			return true
		}
		off = start + 1
	}
}

func isSep(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '-' }
