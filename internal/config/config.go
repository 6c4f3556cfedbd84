// Package config reads commitflow's settings from flags, with environment
// variables as defaults, so every flag has an env equivalent.
package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Common holds the settings most subcommands share.
type Common struct {
	// ClickHouse is a clickhouse-go DSN; empty means a managed local server
	// under Data.
	ClickHouse string
	// ClickHouseCluster names a ClickHouse cluster: migrations then create
	// Replicated tables ON CLUSTER with Distributed tables over them.
	ClickHouseCluster string
	// NATS is a NATS URL; empty means an embedded server under Data.
	NATS string
	// NATSListen is where the embedded NATS server listens.
	NATSListen string
	// Data is the directory for the embedded NATS store and a managed
	// ClickHouse.
	Data string
	// HTTP is the listen address of the API, dashboard and /metrics.
	HTTP string
	// Tenant is the tenant a command works on, where it needs one.
	Tenant string
	// Partitions is the number of opportunity partitions of the event
	// stream, fixed when the stream is created.
	Partitions int
	// DuplicateWindow is how long JetStream drops a republished event id.
	// The server keeps every id of the window in memory (in the
	// commitflow process when NATS is embedded); the store de-duplicates
	// whatever gets past it.
	DuplicateWindow time.Duration
	// Replicas is how many copies a NATS cluster keeps of every stream and
	// lease bucket commitflow declares; 1 for the embedded server.
	Replicas int
	// Retention is how long CF_EVENTS and CF_DERIVED keep messages.
	Retention time.Duration
	// DLQRetention is how long CF_DLQ keeps dead letters; 0 keeps them
	// until an operator purges them.
	DLQRetention time.Duration
	// LogLevel is debug, info, warn or error.
	LogLevel string
}

// CheckNATS reports settings of the NATS streams that cannot work.
func (c *Common) CheckNATS() error {
	switch {
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("--nats-replicas %d: want 1 to 5", c.Replicas)
	case c.Replicas > 1 && c.NATS == "":
		return fmt.Errorf("--nats-replicas %d needs a NATS cluster (--nats URL): the embedded server is a single node", c.Replicas)
	case c.Retention <= 0:
		return fmt.Errorf("--retention %v: want a positive duration, e.g. 720h", c.Retention)
	case c.DLQRetention < 0:
		return fmt.Errorf("--dlq-retention %v: want 0 (keep until purged) or a positive duration", c.DLQRetention)
	}
	return nil
}

// Register adds the common flags to fs, defaulting each to its environment
// variable.
func (c *Common) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.ClickHouse, "clickhouse", Env("COMMITFLOW_CLICKHOUSE", ""), "ClickHouse DSN, e.g. clickhouse://127.0.0.1:9000/default; empty starts a managed local clickhouse-server under --data (env COMMITFLOW_CLICKHOUSE)")
	fs.StringVar(&c.ClickHouseCluster, "clickhouse-cluster", Env("COMMITFLOW_CLICKHOUSE_CLUSTER", ""), "ClickHouse cluster name for the replicated schema variant (env COMMITFLOW_CLICKHOUSE_CLUSTER)")
	fs.StringVar(&c.NATS, "nats", Env("COMMITFLOW_NATS", ""), "NATS URL; empty embeds a NATS server with JetStream under --data (env COMMITFLOW_NATS)")
	fs.StringVar(&c.NATS, "nats-url", Env("COMMITFLOW_NATS", ""), "alias of --nats")
	fs.StringVar(&c.NATSListen, "nats-listen", Env("COMMITFLOW_NATS_LISTEN", "127.0.0.1:4222"), "listen address of the embedded NATS server (env COMMITFLOW_NATS_LISTEN)")
	fs.StringVar(&c.Data, "data", Env("COMMITFLOW_DATA", DefaultDataDir()), "directory for the embedded NATS store and a managed ClickHouse (env COMMITFLOW_DATA)")
	fs.StringVar(&c.HTTP, "http", Env("COMMITFLOW_HTTP", "127.0.0.1:8080"), "HTTP listen address for the API, dashboard and probes, and /metrics unless run --metrics-http (env COMMITFLOW_HTTP)")
	fs.StringVar(&c.Tenant, "tenant", Env("COMMITFLOW_TENANT", ""), "tenant to work on (env COMMITFLOW_TENANT)")
	fs.IntVar(&c.Partitions, "partitions", EnvInt("COMMITFLOW_PARTITIONS", 16), "opportunity partitions of the event stream, fixed at stream creation (env COMMITFLOW_PARTITIONS)")
	fs.DurationVar(&c.DuplicateWindow, "duplicate-window", EnvDuration("COMMITFLOW_DUPLICATE_WINDOW", 2*time.Minute), "how long JetStream drops a republished event id; the server holds the window's ids in memory (env COMMITFLOW_DUPLICATE_WINDOW)")
	fs.IntVar(&c.Replicas, "nats-replicas", EnvInt("COMMITFLOW_NATS_REPLICAS", 1), "copies a NATS cluster keeps of every stream and lease bucket, e.g. 3; 1 for the embedded server (env COMMITFLOW_NATS_REPLICAS)")
	fs.DurationVar(&c.Retention, "retention", EnvDuration("COMMITFLOW_RETENTION", 30*24*time.Hour), "how long CF_EVENTS and CF_DERIVED keep messages (env COMMITFLOW_RETENTION)")
	fs.DurationVar(&c.DLQRetention, "dlq-retention", EnvDuration("COMMITFLOW_DLQ_RETENTION", 0), "how long CF_DLQ keeps dead letters; 0 keeps them until purged (env COMMITFLOW_DLQ_RETENTION)")
	fs.StringVar(&c.LogLevel, "log-level", Env("COMMITFLOW_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env COMMITFLOW_LOG_LEVEL)")
}

// DefaultDataDir is ./.commitflow under the working directory.
func DefaultDataDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return ".commitflow"
	}
	return filepath.Join(wd, ".commitflow")
}

// Env returns the environment variable key, or def when it is unset or empty.
func Env(key, def string) string {
	if v := strings.TrimSpace(os.Getenv(key)); v != "" {
		return v
	}
	return def
}

// EnvInt is Env for integers; a malformed value falls back to def.
func EnvInt(key string, def int) int {
	if n, err := strconv.Atoi(Env(key, "")); err == nil {
		return n
	}
	return def
}

// EnvFloat is Env for floating-point numbers; a malformed value falls back
// to def.
func EnvFloat(key string, def float64) float64 {
	if f, err := strconv.ParseFloat(Env(key, ""), 64); err == nil {
		return f
	}
	return def
}

// EnvDuration is Env for durations; a malformed value falls back to def.
func EnvDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(Env(key, "")); err == nil {
		return d
	}
	return def
}
