package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLadderCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("steps:\n  - key: meet\n  - key: buy\nwon_step: buy\n"), 0o644)
	os.WriteFile(bad, []byte("steps:\n  - key: meet\n  - key: meet\n"), 0o644)

	var out bytes.Buffer
	if err := cmdLadder(ctx, []string{"check", good}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "ok, version sha256:") || !strings.Contains(out.String(), "buy") {
		t.Errorf("check output: %s", out.String())
	}
	err := cmdLadder(ctx, []string{"check", bad}, &out)
	if err == nil || !strings.Contains(err.Error(), `bad.yaml:3: steps[1].key: duplicate step key "meet"`) {
		t.Errorf("check bad: %v", err)
	}
	for _, args := range [][]string{{"show"}, {"show", good}} {
		out.Reset()
		if err := cmdLadder(ctx, args, &out); err != nil {
			t.Fatal(err)
		}
		var v struct {
			Version string
			Steps   []struct{ Key string }
		}
		if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Version == "" || len(v.Steps) < 2 {
			t.Errorf("show %v: %v %+v", args, err, v)
		}
	}
	if err := cmdLadder(ctx, []string{"frobnicate"}, &out); err == nil {
		t.Error("unknown subcommand accepted")
	}
}
