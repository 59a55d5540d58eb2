package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/volleyhq/volley/adapters/adbc"
)

// duckdbLibrary is the DuckDB ADBC driver's file name.
const duckdbLibrary = "libduckdb_adbc.so"

// envDuckDBDriver names the DuckDB ADBC driver's path, overriding every
// other place.
const envDuckDBDriver = "VOLLEY_DUCKDB_DRIVER"

// errNoDuckDB reports that the embedded DuckDB driver was not found.
var errNoDuckDB = errors.New("the embedded DuckDB ADBC driver (" + duckdbLibrary + ") was not found")

// findDuckDB locates the DuckDB ADBC driver: $VOLLEY_DUCKDB_DRIVER, the
// path baked in at build time (-ldflags "-X main.duckdbDriverPath=..."),
// $VOLLEY_CACHE/duckdb, then .cache/duckdb beside or above the binary and
// in the working directory. It does not build the driver: that takes a C
// compiler and the Go module cache, and `make duckdb` does it in seconds.
func findDuckDB() (string, error) {
	if p := os.Getenv(envDuckDBDriver); p != "" {
		if regular(p) {
			return p, nil
		}
		return "", withHint(exitConnect, fmt.Errorf("$%s=%s: no such driver library", envDuckDBDriver, p),
			"run `make duckdb` to build the embedded DuckDB driver, or point "+envDuckDBDriver+" at it")
	}
	var tried []string
	if duckdbDriverPath != "" {
		tried = append(tried, duckdbDriverPath)
	}
	if c := os.Getenv("VOLLEY_CACHE"); c != "" {
		tried = append(tried, filepath.Join(c, "duckdb", duckdbLibrary))
	}
	if exe, err := os.Executable(); err == nil {
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		dir := filepath.Dir(exe)
		tried = append(tried, filepath.Join(dir, ".cache", "duckdb", duckdbLibrary),
			filepath.Join(dir, "..", ".cache", "duckdb", duckdbLibrary),
			filepath.Join(dir, "..", "..", ".cache", "duckdb", duckdbLibrary))
	}
	tried = append(tried, filepath.Join(".cache", "duckdb", duckdbLibrary))
	for _, p := range tried {
		if regular(p) {
			if abs, err := filepath.Abs(p); err == nil {
				p = abs
			}
			return p, nil
		}
	}
	return "", withHint(exitConnect, errNoDuckDB,
		"run `make duckdb` to build the embedded DuckDB driver, or set "+envDuckDBDriver+" to its path")
}

func regular(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// embeddedDuckDB returns the adbc driver's DSN for DuckDB: the database
// file path, or "" for a private in-memory database.
func embeddedDuckDB(path string) (string, error) {
	lib, err := findDuckDB()
	if err != nil {
		return "", err
	}
	return adbc.FormatDSN(adbc.DuckDB(lib, path)), nil
}
