// Command duckdbbuild builds the DuckDB ADBC C driver as a shared object
// from the static libraries of the go.duckdb.org/libduckdb module pinned in
// go.mod:
//
//	go run ./integration/duckdbbuild -out .cache/duckdb
//
// writes .cache/duckdb/libduckdb_adbc.so (entry point duckdb_adbc_init,
// about 90 MB, a few seconds with a C compiler) and prints its path. A
// library that is already up to date is left as it is. `make duckdb` runs
// exactly this; the duckdbtest harness builds the same library on demand.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/volleyhq/volley/integration/duckdbbuild/build"
)

func main() {
	out := flag.String("out", "", "output `directory` for "+build.LibraryName+" (required)")
	verbose := flag.Bool("v", false, "print the link command")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	opts := build.Options{Out: *out}
	if *verbose {
		opts.Log = log.Printf
	}
	path, err := build.Build(ctx, opts)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(path)
}
