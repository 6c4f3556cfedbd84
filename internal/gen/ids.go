package gen

import "strconv"

// Id namespaces: each kind of id mixes its own key so that ids of different
// kinds never share a sequence.
const (
	nsEvent   = 0x6576656e74000001
	nsCall    = 0x63616c6c00000002
	nsOpp     = 0x6f70700000000003
	nsContact = 0x636f6e7400000004
	nsUser    = 0x7573657200000005
	nsAccount = 0x6163637400000006
	nsDeal    = 0x6465616c00000007
	nsEmit    = 0x656d697400000008
)

// mix is the splitmix64 finalizer. It is a bijection on uint64, so distinct
// inputs give distinct outputs: ids built from mix(key ^ counter) are unique
// for distinct counters yet look random and depend on the seed.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// appendBase62 appends v as exactly 11 base-62 digits (62^11 > 2^64), so
// the encoding is injective.
func appendBase62(b []byte, v uint64) []byte {
	var d [11]byte
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = base62[v%62]
		v /= 62
	}
	return append(b, d[:]...)
}

// sfID returns an 18-character Salesforce-style id with the given 3-letter
// key prefix ("006" opportunity, "003" contact, "005" user).
func sfID(prefix string, v uint64) string {
	b := make([]byte, 0, 18)
	b = append(b, prefix...)
	b = append(b, "0000"...)
	b = appendBase62(b, v)
	return string(b)
}

// numID returns v as a decimal id, as HubSpot and Gong use.
func numID(v uint64) string { return strconv.FormatUint(v, 10) }

// prefixedID returns prefix followed by v in base 62.
func prefixedID(prefix string, v uint64) string {
	b := make([]byte, 0, len(prefix)+11)
	b = append(b, prefix...)
	b = appendBase62(b, v)
	return string(b)
}
