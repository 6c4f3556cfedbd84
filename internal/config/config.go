// Package config reads commitflow's settings from flags, each bound to an
// environment variable named after it (Parse), and lists them (Reference).
package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
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

// Register adds the common flags to fs; Parse binds each to its
// environment variable and refuses values out of range.
func (c *Common) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.ClickHouse, "clickhouse", "", "ClickHouse DSN, e.g. clickhouse://127.0.0.1:9000/default; empty starts a managed local clickhouse-server under --data")
	fs.StringVar(&c.ClickHouseCluster, "clickhouse-cluster", "", "ClickHouse cluster name for the replicated schema variant")
	fs.StringVar(&c.NATS, "nats", "", "NATS URL; empty embeds a NATS server with JetStream under --data")
	Alias(fs, "nats-url", "nats")
	fs.StringVar(&c.NATSListen, "nats-listen", "127.0.0.1:4222", "listen address of the embedded NATS server")
	fs.StringVar(&c.Data, "data", DefaultDataDir(), "directory for the embedded NATS store and a managed ClickHouse")
	fs.StringVar(&c.HTTP, "http", "127.0.0.1:8080", "HTTP listen address for the API, dashboard and probes, and /metrics unless run --metrics-http")
	fs.StringVar(&c.Tenant, "tenant", "", "tenant to work on")
	fs.IntVar(&c.Partitions, "partitions", 16, "opportunity partitions of the event stream, fixed at stream creation")
	fs.DurationVar(&c.DuplicateWindow, "duplicate-window", 30*time.Second, "how long JetStream drops a republished event id (dead letters: at least 5m); the server holds the window's ids in memory, ~160 bytes each, and the store drops later copies")
	fs.IntVar(&c.Replicas, "nats-replicas", 1, "copies a NATS cluster keeps of every stream and lease bucket, e.g. 3; 1 for the embedded server")
	fs.DurationVar(&c.Retention, "retention", 30*24*time.Hour, "how long CF_EVENTS and CF_DERIVED keep messages")
	fs.DurationVar(&c.DLQRetention, "dlq-retention", 0, "how long CF_DLQ keeps dead letters; 0 keeps them until purged")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	Positive(fs, "partitions", "duplicate-window", "retention")
	NotNegative(fs, "dlq-retention")
	Between(fs, 1, 5, "nats-replicas")
}

// DefaultDataDir is ./.commitflow under the working directory.
func DefaultDataDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return ".commitflow"
	}
	return filepath.Join(wd, ".commitflow")
}

// Env returns the environment variable key, or def when it is unset or
// blank. Flags get their variables from Parse; Env is for what is not a
// flag.
func Env(key, def string) string {
	if v := strings.TrimSpace(os.Getenv(key)); v != "" {
		return v
	}
	return def
}
