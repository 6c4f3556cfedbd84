package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/commitflow/commitflow/internal/chserver"
)

// runInfoFile is the file under its --data directory in which `commitflow
// run` tells other commands (status, report) how to reach what it started,
// whatever ports it picked. run writes it once NATS and ClickHouse are up
// and removes it when it stops; a run killed with SIGKILL leaves it behind,
// naming servers that no longer answer.
const runInfoFile = "run.json"

// runInfo is the content of runInfoFile. It names only what run started
// itself and the files it read: never a URL or DSN it was given, which may
// carry credentials. The managed ClickHouse is found from its own
// configuration (chserver.Running).
type runInfo struct {
	PID int `json:"pid"`
	// NATS is the URL of run's embedded NATS server; empty when run was
	// given --nats.
	NATS string `json:"nats,omitempty"`
	// Ladder is the absolute path of run's --ladder file; empty for the
	// shipped default.
	Ladder string `json:"ladder,omitempty"`
	// Ladders is the absolute path of run's --ladders directory of
	// per-tenant ladders; empty for none.
	Ladders string `json:"ladders,omitempty"`
	// LadderVersion is the version of the default ladder when run read it.
	LadderVersion string `json:"ladder_version"`
}

// writeRunInfo writes info to data's runInfoFile, atomically, and returns
// a function that removes it.
func writeRunInfo(data string, info runInfo) (func(), error) {
	for _, p := range []*string{&info.Ladder, &info.Ladders} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return nil, fmt.Errorf("run info: %w", err)
		}
		*p = abs
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("run info: %w", err)
	}
	path := filepath.Join(data, runInfoFile)
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, fmt.Errorf("run info: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("run info: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("run info: %w", err)
	}
	return func() { os.Remove(path) }, nil
}

// errNoRun is returned by readRunInfo when no run has written its file.
var errNoRun = errors.New("no commitflow run")

// readRunInfo reads data's runInfoFile. It returns an error wrapping
// errNoRun, and saying where it looked, when there is none.
func readRunInfo(data string) (runInfo, error) {
	path := filepath.Join(data, runInfoFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return runInfo{}, fmt.Errorf("%w under %s (it writes %s while it runs)", errNoRun, data, path)
	}
	if err != nil {
		return runInfo{}, fmt.Errorf("run info: %w", err)
	}
	var info runInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return runInfo{}, fmt.Errorf("run info %s: %w", path, err)
	}
	return info, nil
}

// source names the run for messages: its file and its process.
func (i runInfo) source(data string) string {
	return fmt.Sprintf("%s, written by commitflow run pid %d", filepath.Join(data, runInfoFile), i.PID)
}

// locateClickHouse returns dsn, or when it is empty the DSN of the managed
// ClickHouse of the commitflow run under data, or an error saying that
// neither is there and what to do.
func locateClickHouse(dsn, data string) (string, error) {
	if dsn != "" {
		return dsn, nil
	}
	dir := filepath.Join(data, "clickhouse")
	if d, ok := chserver.Running(dir); ok {
		return d, nil
	}
	return "", fmt.Errorf("no --clickhouse DSN given (nor COMMITFLOW_CLICKHOUSE) and no managed ClickHouse running under %s: "+
		"start `commitflow run --data %s`, or pass --clickhouse DSN, e.g. clickhouse://127.0.0.1:9000/default", dir, data)
}

// locateNATS returns url, or when it is empty the URL of the embedded NATS
// server of the commitflow run under data, with a note for error messages
// saying where it was read (empty for a given url).
func locateNATS(url, data string) (string, string, error) {
	if url != "" {
		return url, "", nil
	}
	info, err := readRunInfo(data)
	if err != nil {
		return "", "", fmt.Errorf("no --nats given and %w", err)
	}
	if info.NATS == "" {
		return "", "", fmt.Errorf("no --nats given, and the commitflow run under %s was given its NATS server: pass that URL, --nats URL", data)
	}
	return info.NATS, fmt.Sprintf(" (from %s; is it still running?)", info.source(data)), nil
}
