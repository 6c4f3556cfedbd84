package event

import jsonv2 "github.com/go-json-experiment/json"

// DecodeFast is decodeFast, for the tests of package event_test.
func DecodeFast(data []byte) (Event, bool) {
	var e Event
	ok := decodeFast(data, &e)
	return e, ok
}

// DecodeFull decodes data with the full decoder only.
func DecodeFull(data []byte) (Event, error) {
	var e Event
	err := jsonv2.Unmarshal(data, &e, strict)
	return e, err
}

// Special is special, and Plain reports plain[c].
var Special = special

// Plain reports whether a string holds c as it is.
func Plain(c byte) bool { return plain[c] }
