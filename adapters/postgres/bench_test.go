package postgres_test

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/volleyhq/volley/adapters/postgres"
	"github.com/volleyhq/volley/driver"
	"github.com/volleyhq/volley/integration/pgbench"
)

// benchTable makes a lineitem-shaped table of n rows (the pgbench one).
func benchTable(b *testing.B, d string, n int) string {
	b.Helper()
	name := "lineitem_bench_" + strconv.Itoa(n)
	ctx := context.Background()
	c, err := pgconn.Connect(ctx, d)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	res := c.ExecParams(ctx, "SELECT count(*) FROM "+name, nil, nil, nil, nil).Read()
	if res.Err == nil && string(res.Rows[0][0]) == strconv.Itoa(n) {
		return name
	}
	if _, err := c.Exec(ctx, "DROP TABLE IF EXISTS "+name+";"+fmt.Sprintf(pgbench.LineitemDDL, name)).ReadAll(); err != nil {
		b.Fatal(err)
	}
	if r := c.ExecParams(ctx, fmt.Sprintf(pgbench.LineitemInsert, name), [][]byte{[]byte(strconv.Itoa(n))}, nil, nil, nil).Read(); r.Err != nil {
		b.Fatal(r.Err)
	}
	return name
}

// BenchmarkLineitem drains a 200,000-row lineitem table through the Source
// (no runtime): the COPY path and the extended path, all 16 columns and a
// 4-column projection. It reports rows/s and wire MB/s.
func BenchmarkLineitem(b *testing.B) {
	d := dsn(b)
	const n = 200_000
	table := benchTable(b, d, n)
	c, _ := connect(b, d, postgres.Config{})
	for _, tc := range []struct {
		name string
		req  driver.Request
	}{
		{"copy/all", driver.Request{SQL: "SELECT * FROM " + table}},
		{"copy/project-4", driver.Request{SQL: "SELECT l_orderkey, l_quantity, l_extendedprice, l_shipdate FROM " + table}},
		{"extended/all", driver.Request{SQL: "SELECT * FROM " + table + " WHERE $1", Args: []any{true}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			var rows int64
			cpu0 := cpuTime()
			for b.Loop() {
				req := tc.req
				req.BatchBytes = 16 << 20
				src, err := c.Query(ctx, &req)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := src.Schema(ctx); err != nil {
					b.Fatal(err)
				}
				for {
					bt, err := src.Next(ctx)
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					rows += bt.Record.NumRows()
					bt.Release()
				}
				src.Close()
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(rows), "cpu-ns/row")
		})
	}
	// The floor: pgconn's raw CopyTo into a byte counter, for both queries.
	for _, tc := range []struct{ name, sql string }{
		{"raw-copyto/all", "SELECT * FROM " + table},
		{"raw-copyto/project-4", "SELECT l_orderkey, l_quantity, l_extendedprice, l_shipdate FROM " + table},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			cpu0 := cpuTime()
			for b.Loop() {
				var n counter
				if _, err := c.PgConn().CopyTo(ctx, &n, "COPY ("+tc.sql+") TO STDOUT (FORMAT binary)"); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(n*b.N), "cpu-ns/row")
		})
	}
}

type counter int64

func (c *counter) Write(p []byte) (int, error) { *c += counter(len(p)); return len(p), nil }

// cpuTime is this process's user+sys CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// recorder keeps copies of the CopyData payloads pgconn hands it.
type recorder struct{ msgs [][]byte }

func (r *recorder) Write(p []byte) (int, error) {
	r.msgs = append(r.msgs, append([]byte(nil), p...))
	return len(p), nil
}

// BenchmarkDecodeCopy decodes recorded COPY binary messages of the
// lineitem table (200,000 rows) with no network: the adapter's own CPU per
// row, which the end-to-end figures mix with pgconn's and the kernel's.
func BenchmarkDecodeCopy(b *testing.B) {
	d := dsn(b)
	const n = 200_000
	table := benchTable(b, d, n)
	c, _ := connect(b, d, postgres.Config{})
	for _, tc := range []struct{ name, sql string }{
		{"all", "SELECT * FROM " + table},
		{"project-4", "SELECT l_orderkey, l_quantity, l_extendedprice, l_shipdate FROM " + table},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			var rec recorder
			if _, err := c.PgConn().CopyTo(ctx, &rec, "COPY ("+tc.sql+") TO STDOUT (FORMAT binary)"); err != nil {
				b.Fatal(err)
			}
			src, err := c.Query(ctx, &driver.Request{SQL: tc.sql})
			if err != nil {
				b.Fatal(err)
			}
			defer src.Close()
			if _, err := src.Schema(ctx); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				rows, err := postgres.ParseCopyMessages(src, rec.msgs, 16<<20)
				if err != nil || rows != n {
					b.Fatalf("%d rows, %v", rows, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*b.N), "ns/row")
		})
	}
}
