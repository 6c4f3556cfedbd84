// Package clustertest is the cluster suite (issue 19): tests, built with
// the tag cluster, that run commitflow against a ClickHouse cluster of 2
// shards x 2 replicas and a 3-node NATS JetStream cluster on loopback,
// started by deploy/cluster/cluster.sh. `make test-cluster` starts the
// environment, runs the suite and tears it down.
//
// The suite reads the environment the script writes (cluster.sh env):
// COMMITFLOW_CLUSTER_CLICKHOUSE_HOSTS, COMMITFLOW_CLUSTER_NAME and
// COMMITFLOW_CLUSTER_NATS. Without them it skips, or fails under CI=true.
package clustertest
