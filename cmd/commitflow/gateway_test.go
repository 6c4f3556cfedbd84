package main

import (
	"testing"
)

// TestGatewayConfig: run's gateway flags, and the errors that name them.
func TestGatewayConfig(t *testing.T) {
	tests := []struct {
		hubspot, pipedrive, salesforce, gong, maxBody, publicURL string
		err                                                      string
	}{
		{"", "", "", "", "16MiB", "", ""},
		{"acme=s1,globex=s2", "acme=u:p", "acme=sf1", "acme=k1,globex=k2", "1GiB", "https://commitflow.example.com/", ""},
		{"acme", "", "", "", "16MiB", "", "--hubspot-secrets: entry 1: want tenant=secret"},
		{"", "acme=nopassword", "", "", "16MiB", "", "--pipedrive-auth: tenant acme: want user:password"},
		{"", "", "acme=", "", "16MiB", "", "--salesforce-secrets: entry 1: want tenant=secret"},
		{"", "", "", "Acme=k", "16MiB", "", `--gong-keys: entry 1: invalid tenant "Acme"`},
		{"", "", "", "", "16MB", "", `--max-body: "16MB": unknown unit "MB" (want B, KiB, MiB, GiB or TiB)`},
		{"", "", "", "", "16MiB", "commitflow.example.com", `--public-url: want scheme://host[:port], e.g. https://commitflow.example.com, got "commitflow.example.com"`},
		{"", "", "", "", "16MiB", "https://commitflow.example.com/api", `--public-url: want scheme://host[:port], e.g. https://commitflow.example.com, got "https://commitflow.example.com/api"`},
	}
	for _, tt := range tests {
		gw, err := gatewayConfig(tt.hubspot, tt.pipedrive, tt.salesforce, tt.gong, tt.maxBody, tt.publicURL)
		switch {
		case tt.err != "":
			if err == nil || err.Error() != tt.err {
				t.Errorf("%+v: err %v, want %s", tt, err, tt.err)
			}
		case err != nil:
			t.Errorf("%+v: %v", tt, err)
		case gw.MaxBody <= 0 || gw.PublicURL != tt.publicURL:
			t.Errorf("%+v: %+v", tt, gw)
		}
	}
}
