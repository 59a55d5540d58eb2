package adbc_test

import (
	"context"
	"testing"

	"github.com/volleyhq/volley/adapters/adbc"
	"github.com/volleyhq/volley/driver"
	"github.com/volleyhq/volley/integration/duckdbtest"
)

// TestThroughDB runs queries through the driver layer's pool, by DSN and
// by typed connector.
func TestThroughDB(t *testing.T) {
	lib := duckdbtest.DriverPath(t)
	byDSN, err := driver.Open(adbc.Name, adbc.FormatDSN(adbc.DuckDB(lib, "")))
	if err != nil {
		t.Fatal(err)
	}
	c, err := adbc.DuckDB(lib, "").Connector()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	byConnector, err := driver.OpenDB(c, driver.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for name, db := range map[string]*driver.DB{"dsn": byDSN, "connector": byConnector} {
		t.Run(name, func(t *testing.T) {
			defer db.Close()
			for range 3 { // reuses the pooled connection
				rows, err := db.Stream(context.Background(), "SELECT i FROM range(5000) t(i) WHERE i >= ?", []any{int64(1000)})
				if err != nil {
					t.Fatal(err)
				}
				var n int64
				for b, err := range rows.All(context.Background()) {
					if err != nil {
						t.Fatal(err)
					}
					n += b.NumRows
					b.Release()
				}
				if err := rows.Close(); err != nil {
					t.Fatal(err)
				}
				if n != 4000 {
					t.Fatalf("%d rows, want 4000", n)
				}
			}
		})
	}
}
