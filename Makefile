# Volley's build and test entry points. `make test` is the command README.md
# and .ci/run use; it needs Go, a C compiler and the PostgreSQL server
# binaries (Debian: apt-get install postgresql).

GO       ?= go
# Build artefacts that are never committed (the DuckDB ADBC driver, the
# c-shared library) go here.
CACHE    ?= $(CURDIR)/.cache
export VOLLEY_CACHE := $(CACHE)

.PHONY: all build test vet lint bench duckdb lib demo clean

all: build

# build: the volley binary, with the embedded DuckDB driver's path baked in.
build: duckdb
	$(GO) build -ldflags "-X main.duckdbDriverPath=$(CACHE)/duckdb/libduckdb_adbc.so" -o bin/volley ./cmd/volley

# demo: the embedded default: TPC-H lineitem (SF1) generated in DuckDB and
# streamed through Volley to the device the placement policy picks.
demo: build
	./bin/volley demo

vet:
	$(GO) vet ./...

# test: vet, then every test (unit, conformance, integration) under the race
# detector. Integration tests start their own PostgreSQL, DuckDB driver,
# Flight SQL server and C programs; a missing prerequisite fails them.
test: vet duckdb
	$(GO) test -race -count=1 -timeout 75m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# duckdb: the DuckDB ADBC C driver as a shared object, built from the
# static libraries of the go.duckdb.org/libduckdb module pinned in go.mod.
duckdb:
	$(GO) run ./integration/duckdbbuild -out $(CACHE)/duckdb

# lib: the c-shared library and its header for C, C++ and Python callers.
lib:
	$(GO) build -buildmode=c-shared -o $(CACHE)/lib/libvolley.so ./async/cabi/lib

clean:
	rm -rf bin $(CACHE)
