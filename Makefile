# commitflow — two commands: `make run` and `make test`.
#
# Both install what is missing on Debian/Ubuntu (ClickHouse from apt), then
# build. Go itself must be installed (https://go.dev/dl/, 1.26+).

GO      ?= go
BIN     := bin/commitflow
DATA    ?= $(CURDIR)/.commitflow
ARGS    ?=
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-faults test-browser build deps clickhouse vet bench fuzz clean

## run: install what is missing, build, start NATS (embedded), ClickHouse
## (managed), ingest/derive workers, API and dashboard with demo data.
run: clickhouse build
	$(BIN) run --demo --data $(DATA) $(ARGS)

## test: install what is missing and run every test with -race. Tests start
## their own throwaway ClickHouse (or use COMMITFLOW_TEST_CLICKHOUSE).
test: clickhouse vet
	$(GO) test -race -count=1 -timeout 40m ./...

## test-faults: the fault suite (issue 17): ~105k events through `commitflow
## run` while it is paused and killed, ClickHouse killed and frozen and NATS
## killed, under CPU load; checks 0 lost, 0 doubled, nothing dead-lettered
## and derivation identical to a replay of the same input; prints figures.
test-faults: clickhouse
	$(GO) test -tags faults -run '^TestFaults$$' -count=1 -timeout 30m -v ./cmd/commitflow

## test-browser: the dashboard in headless Chromium (issue 22) over
## `commitflow run --demo`: Debian's chromium driven by playwright-core
## (pinned in dashboards/test/package-lock.json); screenshots at 390 and
## 1440 px in dashboards/test/artifacts/.
test-browser: clickhouse build
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
		echo "chromium or npm not found: installing them with apt-get"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium $$(command -v npm >/dev/null || echo npm) >/dev/null; \
	fi
	@command -v chromium >/dev/null || { echo "could not install chromium"; exit 1; }
	cd dashboards/test && npm ci --no-audit --no-fund && COMMITFLOW_BIN=$(CURDIR)/$(BIN) node browser.test.js

build:
	$(GO) build -o $(BIN) ./cmd/commitflow

## clickhouse: install clickhouse-server from the distribution if missing.
clickhouse:
	@if ! command -v clickhouse-server >/dev/null 2>&1; then \
		echo "clickhouse-server not found: installing it with apt-get"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null; \
	fi
	@command -v clickhouse-server >/dev/null || { echo "could not install clickhouse-server; install it or set COMMITFLOW_CLICKHOUSE"; exit 1; }

## vet: go vet (with the fault and cluster suites' build tags too, so
## that they build), and every Go file formatted by gofmt.
vet:
	$(GO) vet ./...
	$(GO) vet -tags faults,cluster ./...
	@unformatted=$$(gofmt -l cmd internal dashboards); if [ -n "$$unformatted" ]; then echo "not gofmt-formatted:"; echo "$$unformatted"; exit 1; fi

## bench: the Go benchmarks (figures in README.md).
bench: clickhouse
	$(GO) test -run='^$$' -bench=. -benchtime=1x ./...

## fuzz: every fuzz target (every func Fuzz* in a _test.go file) for
## FUZZTIME each (CI runs them for 5s). The engine minimizes each input
## that finds new coverage for up to -fuzzminimizetime (Go's default 60s,
## more than the whole FUZZTIME, so a busy worker kept nothing new), and
## FUZZMINIMIZETIME bounds it. Go's engine still sometimes ends a run with
## "context deadline exceeded" and no input on a loaded machine: a target
## that fails without writing a failing input runs once more; a failing
## input always fails the run.
FUZZTIME ?= 30s
FUZZMINIMIZETIME ?= 1s
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' internal cmd | sort); do \
		pkg=$$(dirname $$f); \
		for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "fuzz $$fn in $$pkg for $(FUZZTIME)"; \
			corpus=$$pkg/testdata/fuzz/$$fn; \
			before=$$(ls $$corpus 2>/dev/null | wc -l); \
			if ! $(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZETIME) ./$$pkg; then \
				if [ "$$(ls $$corpus 2>/dev/null | wc -l)" != "$$before" ]; then exit 1; fi; \
				echo "fuzz $$fn failed without a failing input; once more"; \
				$(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZETIME) ./$$pkg; \
			fi; \
		done; \
	done

## test-cluster: the cluster suite (issue 19, internal/clustertest) on a
## loopback cluster that deploy/cluster/cluster.sh starts: ZooKeeper,
## ClickHouse 2 shards x 2 replicas, a 3-node NATS JetStream cluster
## (installs zookeeper and clickhouse-server if missing); torn down
## afterwards, whatever the result.
CLUSTER_DIR ?= /tmp/commitflow-cluster
.PHONY: test-cluster
test-cluster:
	@export CF_CLUSTER_DIR=$(CLUSTER_DIR); \
	deploy/cluster/cluster.sh up || { deploy/cluster/cluster.sh down; exit 1; }; \
	set -a; . $(CLUSTER_DIR)/env; set +a; \
	$(GO) test -tags cluster -count=1 -timeout 15m -v ./internal/clustertest; rc=$$?; \
	deploy/cluster/cluster.sh down; exit $$rc

clean:
	rm -rf bin .commitflow
