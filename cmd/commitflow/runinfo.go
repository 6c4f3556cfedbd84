package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
