#!/usr/bin/env bash
# A cluster test environment on loopback (issue 19):
#   - one ZooKeeper (Debian's zookeeper package),
#   - a ClickHouse cluster of 2 shards x 2 replicas (four clickhouse-server
#     processes from Debian's clickhouse-server package), cluster name "cf",
#   - a 3-node NATS JetStream cluster (nats-server built from go.mod).
#
# Usage: deploy/cluster/cluster.sh up|down|env|kill NAME|start NAME
#
#   up      installs what is missing (apt-get), starts everything, waits until
#           the ClickHouse hosts see ZooKeeper and JetStream has a meta leader,
#           and writes $CF_CLUSTER_DIR/env (shell assignments, see `env`).
#   down    kills every process `up` started (by the pids it recorded) and
#           removes $CF_CLUSTER_DIR.
#   kill NAME   kills one server with SIGKILL (NAME: ch1..ch4, nats1..nats3,
#           zookeeper), for the suite's failure tests.
#   start NAME  starts that server again on its ports and data, recording its
#           new pid for down.
#   env     prints the environment the cluster suite reads:
#             COMMITFLOW_CLUSTER_CLICKHOUSE  DSN with all four hosts
#             COMMITFLOW_CLUSTER_CLICKHOUSE_HOSTS  host:port of each, shard by shard
#             COMMITFLOW_CLUSTER_NAME        the remote_servers cluster name
#             COMMITFLOW_CLUSTER_NATS        the three NATS URLs, comma-separated
#             COMMITFLOW_CLUSTER_DIR         the environment's directory
#
# Settings (environment): CF_CLUSTER_DIR (default /tmp/commitflow-cluster),
# CF_CLUSTER_PORT_BASE (default 21000): ZooKeeper base+181, ClickHouse native
# base+1..4, HTTP base+101..4, interserver base+201..4, NATS clients
# base+301..3, NATS routes base+401..3.
set -euo pipefail

DIR=${CF_CLUSTER_DIR:-/tmp/commitflow-cluster}
BASE=${CF_CLUSTER_PORT_BASE:-21000}
CLUSTER=cf
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

ZK_PORT=$((BASE + 181))
ch_tcp() { echo $((BASE + $1)); }
ch_http() { echo $((BASE + 100 + $1)); }
ch_inter() { echo $((BASE + 200 + $1)); }
nats_port() { echo $((BASE + 300 + $1)); }
nats_route() { echo $((BASE + 400 + $1)); }

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

# install installs Debian's zookeeper and clickhouse-server when missing.
install() {
	local want=()
	command -v clickhouse-server >/dev/null 2>&1 || want+=(clickhouse-server clickhouse-client)
	[ -f /usr/share/java/zookeeper.jar ] || want+=(zookeeper)
	command -v java >/dev/null 2>&1 || want+=(default-jre-headless)
	if [ ${#want[@]} -gt 0 ]; then
		log "installing ${want[*]} with apt-get"
		$SUDO apt-get update -qq
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null
	fi
	command -v clickhouse-server >/dev/null || die "clickhouse-server is not installed"
	[ -f /usr/share/java/zookeeper.jar ] || die "zookeeper is not installed"
}

# spawn runs a command in the background with its output appended to
# $1.log and records its pid in $DIR/pids.
spawn() {
	local name=$1
	shift
	setsid "$@" >>"$DIR/$name.log" 2>&1 </dev/null &
	echo "$! $name" >>"$DIR/pids"
}

start_zookeeper() {
	local d=$DIR/zookeeper
	mkdir -p "$d/data"
	cat >"$d/zoo.cfg" <<EOF
tickTime=500
initLimit=10
syncLimit=5
dataDir=$d/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,stat
EOF
	cat >"$d/log4j.properties" <<EOF
log4j.rootLogger=WARN, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p %c: %m%n
EOF
	spawn zookeeper java -Xmx256m -Dzookeeper.admin.enableServer=false \
		-cp "$d:/usr/share/java/zookeeper.jar" org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg"
}

# ch_config writes the configuration of ClickHouse host $1 (1..4): hosts 1
# and 2 are shard 01, hosts 3 and 4 shard 02.
ch_config() {
	local i=$1 d=$DIR/ch$1
	local shard=$(((i + 1) / 2))
	mkdir -p "$d"/{data,tmp,user_files,format_schemas,log}
	cat >"$d/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>$d/log/server.log</log>
    <errorlog>$d/log/err.log</errorlog>
    <size>100M</size>
    <count>2</count>
    <console>0</console>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>$(ch_tcp "$i")</tcp_port>
  <http_port>$(ch_http "$i")</http_port>
  <interserver_http_port>$(ch_inter "$i")</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <path>$d/data/</path>
  <tmp_path>$d/tmp/</tmp_path>
  <user_files_path>$d/user_files/</user_files_path>
  <format_schema_path>$d/format_schemas/</format_schema_path>
  <users_config>$d/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>134217728</mark_cache_size>
  <uncompressed_cache_size>134217728</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <shutdown_wait_unfinished>1</shutdown_wait_unfinished>
  <remote_servers>
    <$CLUSTER>
      <shard>
        <internal_replication>true</internal_replication>
        <replica><host>127.0.0.1</host><port>$(ch_tcp 1)</port></replica>
        <replica><host>127.0.0.1</host><port>$(ch_tcp 2)</port></replica>
      </shard>
      <shard>
        <internal_replication>true</internal_replication>
        <replica><host>127.0.0.1</host><port>$(ch_tcp 3)</port></replica>
        <replica><host>127.0.0.1</host><port>$(ch_tcp 4)</port></replica>
      </shard>
    </$CLUSTER>
  </remote_servers>
  <zookeeper>
    <node><host>127.0.0.1</host><port>$ZK_PORT</port></node>
    <session_timeout_ms>10000</session_timeout_ms>
  </zookeeper>
  <macros>
    <shard>0$shard</shard>
    <replica>ch$i</replica>
  </macros>
  <distributed_ddl>
    <path>/clickhouse/task_queue/ddl</path>
  </distributed_ddl>
</yandex>
EOF
	cat >"$d/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage><poll_interval>1</poll_interval></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>::1</ip><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
EOF
}

start_clickhouse() {
	local i
	for i in 1 2 3 4; do
		ch_config "$i"
		start_ch "$i"
	done
}

# start_ch starts ClickHouse host $1 with the configuration ch_config wrote.
start_ch() { spawn "ch$1" clickhouse-server --config-file="$DIR/ch$1/config.xml"; }

build_nats() {
	if [ ! -x "$DIR/nats-server" ]; then
		log "building nats-server"
		(cd "$ROOT" && go build -o "$DIR/nats-server" github.com/nats-io/nats-server/v2)
	fi
}

start_nats() {
	local i
	for i in 1 2 3; do start_nats_node "$i"; done
}

# start_nats_node starts NATS node $1 (1..3) of the cluster.
start_nats_node() {
	local i=$1 j routes=""
	for j in 1 2 3; do
		[ "$j" = "$i" ] && continue
		routes="${routes:+$routes,}nats://127.0.0.1:$(nats_route "$j")"
	done
	mkdir -p "$DIR/nats$i"
	spawn "nats$i" "$DIR/nats-server" --server_name "n$i" --addr 127.0.0.1 --port "$(nats_port "$i")" \
		--cluster_name cf --cluster "nats://127.0.0.1:$(nats_route "$i")" --routes "$routes" \
		--jetstream --store_dir "$DIR/nats$i"
}

# wait_for runs "$@" until it succeeds, for at most $1 seconds.
wait_for() {
	local secs=$1 what=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || die "$what not ready after ${secs}s (logs in $DIR)"
		sleep 0.5
	done
}

# port_open: something listens on loopback port $1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ch_query() { clickhouse-client --port "$(ch_tcp "$1")" --connect_timeout 5 --receive_timeout 10 --query "$2"; }

# ch_ready: host $1 answers and reads ZooKeeper (so ZooKeeper is up too).
ch_ready() { ch_query "$1" "SELECT count() FROM system.zookeeper WHERE path = '/'"; }

env_text() {
	local hosts="" i
	for i in 1 2 3 4; do hosts="${hosts:+$hosts,}127.0.0.1:$(ch_tcp "$i")"; done
	cat <<EOF
COMMITFLOW_CLUSTER_CLICKHOUSE=clickhouse://$hosts/commitflow
COMMITFLOW_CLUSTER_CLICKHOUSE_HOSTS=$hosts
COMMITFLOW_CLUSTER_NAME=$CLUSTER
COMMITFLOW_CLUSTER_NATS=nats://127.0.0.1:$(nats_port 1),nats://127.0.0.1:$(nats_port 2),nats://127.0.0.1:$(nats_port 3)
COMMITFLOW_CLUSTER_DIR=$DIR
EOF
}

up() {
	[ ! -f "$DIR/pids" ] || die "$DIR/pids exists: a cluster is running there (run: $0 down)"
	install
	mkdir -p "$DIR"
	build_nats
	: >"$DIR/pids"
	start_zookeeper
	start_clickhouse
	start_nats
	for i in 1 2 3 4; do wait_for 90 "clickhouse ch$i" ch_ready "$i"; done
	wait_for 60 "nats JetStream" nats_meta_leader
	env_text >"$DIR/env"
	log "up in ${SECONDS}s; environment in $DIR/env"
	cat "$DIR/env"
}

# nats_meta_leader: the JetStream cluster has elected a meta leader.
nats_meta_leader() {
	grep -q "JetStream cluster new metadata leader\|Self is new JetStream cluster metadata leader" "$DIR"/nats*.log
}

# kill_one kills server $1 (as named in $DIR/pids) with SIGKILL and waits
# until it is gone.
kill_one() {
	local name=$1 pid
	pid=$(awk -v n="$name" '$2 == n { p = $1 } END { print p }' "$DIR/pids")
	[ -n "$pid" ] || die "no server named $name"
	kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

# start_one starts server $1 again (see kill_one) and waits until it is up.
start_one() {
	case "$1" in
	ch[1-4])
		start_ch "${1#ch}"
		wait_for 90 "clickhouse $1" ch_ready "${1#ch}"
		;;
	nats[1-3])
		start_nats_node "${1#nats}"
		wait_for 30 "nats $1" port_open "$(nats_port "${1#nats}")"
		;;
	zookeeper) start_zookeeper ;;
	*) die "unknown server $1 (ch1..ch4, nats1..nats3, zookeeper)" ;;
	esac
}

down() {
	if [ -f "$DIR/pids" ]; then
		local pid name
		while read -r pid name; do
			kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
		done <"$DIR/pids"
		while read -r pid name; do
			while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
		done <"$DIR/pids"
	fi
	rm -rf "$DIR"
	log "down"
}

case "${1:-}" in
up) up ;;
down) down ;;
env) env_text ;;
kill) kill_one "${2:?server name}" ;;
start) start_one "${2:?server name}" ;;
*) die "usage: $0 up|down|env|kill NAME|start NAME" ;;
esac
