//go:build tools

// This file keeps go.duckdb.org/libduckdb/linux-amd64 a requirement of the
// module: no Go code imports it (its static libraries are linked into a
// shared object by the duckdbbuild command, not into Go binaries), and the
// build tag keeps it out of every ordinary build while `go mod tidy` still
// sees the import.

package main

import _ "go.duckdb.org/libduckdb/linux-amd64"
