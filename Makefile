# cmkd — see README.md. Every target works on a fresh machine with Go installed.
GO      ?= go
BIN     := bin/cmkd
PKGS    := ./...

.PHONY: build run test lint bench bench-micro fuzz clean

build:
	$(GO) build -o $(BIN) ./cmd/cmkd

# Starts the whole system on loopback, no cloud: embedded NATS, the Key Vault
# and Event Grid emulators, SQLite and the worker (`cmkd dev`).
run: build
	./$(BIN) dev

test:
	$(GO) test -race -count=1 $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Every scenario of docs/benchmarks.md against in-process emulators, embedded
# NATS and SQLite: prints the table, rewrites docs/benchmarks.md and .json.
# `make test` runs each scenario at smoke size, so this cannot rot.
bench:
	$(GO) run ./bench/cmd/cmkd-bench --out docs/benchmarks.md --json docs/benchmarks.json

# The packages' go test benchmarks (store overhead in detail, with ratios).
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 $(PKGS)

# Runs every fuzz target for FUZZTIME each (seed corpora run in `make test`).
FUZZTIME ?= 15s
fuzz:
	@$(GO) list -f '{{.Dir}} {{.ImportPath}}' $(PKGS) | while read dir pkg; do \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | cut -d' ' -f2); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; done

clean:
	rm -rf bin
