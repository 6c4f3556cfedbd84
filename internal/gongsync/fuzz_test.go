package gongsync

import (
	"os"
	"reflect"
	"testing"
)

// FuzzParsePage: any answer body reads the same twice, and a page it
// reads holds calls with bytes.
func FuzzParsePage(f *testing.F) {
	raw, err := os.ReadFile("../webhook/testdata/gong_calls_extensive.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte(`{"requestId":"x","records":{"cursor":"c"},"calls":[{"metaData":{"id":"1"}}]}`))
	f.Add([]byte(`{"records":{},"calls":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parsePage(body)
		q, err2 := parsePage(body)
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(p, q) {
			t.Fatalf("read twice, two results: %v / %v", err, err2)
		}
		for _, c := range p.Calls {
			if len(c.Data) == 0 || c.Line < 1 {
				t.Fatalf("call %+v", c)
			}
		}
	})
}
