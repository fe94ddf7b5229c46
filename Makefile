# cmkd — see README.md. Every target works on a fresh machine with Go installed.
GO      ?= go
BIN     := bin/cmkd
PKGS    := ./...

# Linters run at pinned versions through `go run`: nothing to install by hand.
# go run keeps their binaries in the build cache: with it warm, lint takes
# seconds. With it cold (modules cached) it took 4 min on 2 CPUs: go vet
# compiling every dependency ~40%, building gosec ~40% (70% of the code it
# compiles is the AI SDKs of its optional autofix, which every gosec since
# mid-2024 has), staticcheck and the analyses the rest. internal/linttest
# checks that each step catches what it should.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOSEC       := github.com/securego/gosec/v2/cmd/gosec@v2.30.0

.PHONY: help build run test lint bench bench-micro chaos fuzz clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/cmkd
	$(GO) build -o $(BIN) ./cmd/cmkd

# Starts the whole system on loopback, no cloud: embedded NATS, the Key Vault
# and Event Grid emulators, SQLite and the worker (`cmkd dev`).
run: build ## run cmkd dev: everything on loopback, no cloud
	./$(BIN) dev

# The PostgreSQL suites skip when PostgreSQL does not answer; say so up
# front, where it is seen (CI sets CMKD_REQUIRE_POSTGRES, and there they fail).
test: ## go test -race ./... (PostgreSQL suites skip without PostgreSQL)
	@$(GO) run ./internal/pgtest/reachable || true
	$(GO) test -race -count=1 -timeout 25m $(PKGS)

lint: ## gofmt, go vet, staticcheck and gosec (pinned)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)
	@# bench/ and chaos/ are harnesses, never deployed: they feed emulators synthetic
	@# keys, and chaos/ runs processes, mounts and writes files under its own directory.
	$(GO) run $(GOSEC) -quiet -exclude-generated -exclude-dir=bench -exclude-dir=chaos $(PKGS)

# Every scenario of docs/benchmarks.md against in-process emulators, embedded
# NATS and SQLite: prints the table, rewrites docs/benchmarks.md and .json.
# `make test` runs each scenario at smoke size, so this cannot rot.
# ONLY=multivault,probeload runs those and keeps the others' last results.
bench: ## every benchmark scenario (or ONLY=a,b); rewrites docs/benchmarks.md and .json
	$(GO) run ./bench/cmd/cmkd-bench $(if $(ONLY),--only $(ONLY)) --out docs/benchmarks.md --json docs/benchmarks.json

bench-micro: ## the packages' go test benchmarks (store overhead in detail)
	$(GO) test -run '^$$' -bench . -benchmem -count 5 $(PKGS)

# cmkd as real processes — SQLite with one replica, then PostgreSQL (a server
# of the harness's own, which it crashes) with three — under a seeded sequence
# of faults: kill -9 at named points and random instants, Key Vault errors,
# throttling and outages, NATS outages, full disks, bad events. Prints the
# seed; SEED=… replays a run. Rewrites docs/reliability.md and .json, and
# fails if an invariant broke. `make test` runs a few faults of it (chaos
# TestSmoke), so this cannot rot. Needs root for the small disk and the
# PostgreSQL binaries (Debian's postgresql); takes about 15 minutes.
SEED ?=
chaos: build ## faults by the hundred against real processes (SEED=… replays); rewrites docs/reliability.md and .json
	$(GO) run ./chaos/cmd/cmkd-chaos $(if $(SEED),--seed $(SEED)) --bin $(BIN) --out docs/reliability.md --json docs/reliability.json

# Runs every fuzz target for FUZZTIME each (seed corpora run in `make test`).
FUZZTIME ?= 15s
fuzz: ## every fuzz target for FUZZTIME (default 15s)
	@$(GO) list -f '{{.Dir}} {{.ImportPath}}' $(PKGS) | while read dir pkg; do \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | cut -d' ' -f2); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; done

clean: ## remove bin/
	rm -rf bin

# The container image (deploy/Dockerfile): a static binary on distroless,
# non-root. Needs docker; without it, `make test` still checks the binary
# is static and runs as the image's user (cmd/cmkd TestDeployImage*).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE   ?= cmkd:$(VERSION)
.PHONY: image
image: ## build the container image $(IMAGE) from deploy/Dockerfile
	docker build -f deploy/Dockerfile --build-arg VERSION=$(VERSION) \
	  --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) -t $(IMAGE) .
