package postgres_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/volleyhq/volley/driver"
)

// TestDriverDB runs the adapter under package driver's DB: the registry,
// the pool (validation and reuse after a cancelled stream), Stream with
// bound parameters.
func TestDriverDB(t *testing.T) {
	db, err := driver.Open("postgres", dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		// Parameters take the extended path; the plain query COPY. Both
		// use the default (recycling) allocator, whose reused buffers must
		// not leak old contents into text columns.
		sql, args := "SELECT g::int8 AS g, repeat('x', g % 7) || g::text AS s FROM generate_series(1, $1::int) g", []any{200000}
		if i == 1 {
			sql, args = "SELECT g::int8 AS g, repeat('x', g % 7) || g::text AS s FROM generate_series(1, 200000) g", nil
		}
		rows, err := db.Stream(ctx, sql, args, driver.WithBatchRows(20000))
		if err != nil {
			t.Fatal(err)
		}
		var n, sum int64
		for b, err := range rows.All(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			a := b.Record.Column(0).(*array.Int64)
			txt := b.Record.Column(1).(*array.String)
			for j := 0; j < a.Len(); j++ {
				g := a.Value(j)
				sum += g
				if want := strings.Repeat("x", int(g%7)) + strconv.FormatInt(g, 10); txt.Value(j) != want {
					t.Fatalf("row %d: text %q, want %q", g, txt.Value(j), want)
				}
			}
			n += b.NumRows
			b.Release()
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		if n != 200000 || sum != 200000*200001/2 {
			t.Fatalf("rows %d sum %d", n, sum)
		}
		// A stream closed early: the query is cancelled, the connection
		// drained and reused.
		rows, err = db.Stream(ctx, "SELECT generate_series(1, 1000000000)::int8", nil, driver.WithBatchRows(1000))
		if err != nil {
			t.Fatal(err)
		}
		b, err := rows.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b.Release()
		rows.Close()
	}
	st := db.Stats()
	if st.Discarded != 0 || st.Reused == 0 {
		t.Fatalf("pool stats %+v: want reuse and no discards", st)
	}
}
