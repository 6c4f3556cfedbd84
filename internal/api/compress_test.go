package api

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/commitflow/commitflow/internal/answercache"
)

// fetchEncoded requests path with the given Accept-Encoding ("" sends none) and
// returns the response and its body as sent, not decoded.
func fetchEncoded(t *testing.T, srv *httptest.Server, path, token, acceptEncoding string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// Set by hand, the header turns off the transport's own gzip handling:
	// the body arrives as the server encoded it.
	req.Header.Set("Accept-Encoding", acceptEncoding)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func decode(t *testing.T, encoding string, body []byte) []byte {
	t.Helper()
	var r io.Reader
	switch encoding {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("zstd: %v", err)
		}
		defer zr.Close()
		r = zr
	default:
		return body
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", encoding, err)
	}
	return out
}

// TestCompressedAnswers checks that answers, CSV and the dashboard are sent
// compressed to a client that takes gzip or zstd, byte for byte the answer
// sent to one that does not, and uncompressed to one that refuses both.
func TestCompressedAnswers(t *testing.T) {
	f := newFixture(t)
	for _, cached := range []bool{false, true} {
		cfg := Config{}
		if cached {
			cfg.Answers = answercache.New(answercache.Options{})
		}
		srv := httptest.NewServer(f.handler(cfg))
		defer srv.Close()
		for _, path := range []string{
			"/v1/funnel?" + period + "&window_days=30&by=owner&interval=month",
			"/v1/funnel?" + period + "&window_days=30&by=owner&interval=month&format=csv",
			"/v1/stalls?as_of=2024-07-01",
			"/app.js",
		} {
			plain, want := fetchEncoded(t, srv, path, tokenAcme, "identity")
			if plain.StatusCode != 200 || plain.Header.Get("Content-Encoding") != "" {
				t.Fatalf("GET %s identity: %d, Content-Encoding %q", path, plain.StatusCode, plain.Header.Get("Content-Encoding"))
			}
			if len(want) < 1024 {
				t.Fatalf("GET %s: %d bytes, too small to be compressed", path, len(want))
			}
			for _, tc := range []struct{ accept, encoding string }{
				{"gzip", "gzip"},
				{"zstd", "zstd"},
				{"gzip, deflate, br, zstd", "zstd"},
				{"zstd;q=0.5, gzip", "gzip"},
				{"gzip;q=0, zstd;q=0", ""},
				{"br", ""},
			} {
				resp, body := fetchEncoded(t, srv, path, tokenAcme, tc.accept)
				if resp.StatusCode != 200 {
					t.Errorf("GET %s (%s): %d", path, tc.accept, resp.StatusCode)
					continue
				}
				if got := resp.Header.Get("Content-Encoding"); got != tc.encoding {
					t.Errorf("GET %s (%s): Content-Encoding %q, want %q", path, tc.accept, got, tc.encoding)
					continue
				}
				if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Accept-Encoding") {
					t.Errorf("GET %s (%s): Vary %q lacks Accept-Encoding", path, tc.accept, resp.Header.Values("Vary"))
				}
				if resp.Header.Get("Content-Type") != plain.Header.Get("Content-Type") {
					t.Errorf("GET %s (%s): Content-Type %q, uncompressed %q", path, tc.accept, resp.Header.Get("Content-Type"), plain.Header.Get("Content-Type"))
				}
				if tc.encoding != "" && len(body) >= len(want) {
					t.Errorf("GET %s (%s): %d bytes sent for %d", path, tc.accept, len(body), len(want))
				}
				if got := decode(t, tc.encoding, body); !bytes.Equal(got, want) {
					t.Errorf("GET %s (%s): decoded answer differs from the uncompressed one:\n%s\nwant\n%s", path, tc.accept, truncate(string(got)), truncate(string(want)))
				}
			}
		}
		// A small answer is sent as it is; so is /metrics, which encodes itself.
		if resp, _ := fetchEncoded(t, srv, "/healthz", "", "gzip"); resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("/healthz: Content-Encoding %q, want none", resp.Header.Get("Content-Encoding"))
		}
		resp, body := fetchEncoded(t, srv, "/metrics", "", "gzip")
		if resp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(string(decode(t, "gzip", body)), "commitflow_http_request_seconds") {
			t.Errorf("/metrics: Content-Encoding %q, not one gzip layer of metrics", resp.Header.Get("Content-Encoding"))
		}
	}
}
