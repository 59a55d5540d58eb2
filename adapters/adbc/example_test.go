package adbc_test

import (
	"fmt"

	"github.com/volleyhq/volley/adapters/adbc"
)

func ExampleParseDSN() {
	cfg, err := adbc.ParseDSN(`driver=/opt/lib/libduckdb_adbc.so;entrypoint=duckdb_adbc_init;path=/data/a\;b.db;password=s3cret`)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Library)
	fmt.Println(cfg.Options["path"])
	fmt.Println(cfg) // secrets redacted
	// Output:
	// /opt/lib/libduckdb_adbc.so
	// /data/a;b.db
	// driver=/opt/lib/libduckdb_adbc.so;entrypoint=duckdb_adbc_init;password=REDACTED;path=/data/a\;b.db
}

func ExampleDuckDB() {
	cfg := adbc.DuckDB("/opt/lib/libduckdb_adbc.so", "")
	fmt.Println(adbc.FormatDSN(cfg))
	// Output:
	// driver=/opt/lib/libduckdb_adbc.so;entrypoint=duckdb_adbc_init;path=:memory:
}
