package postgres_test

import (
	"context"
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
		rows, err := db.Stream(ctx, "SELECT g::int8 AS g FROM generate_series(1, $1::int) g", []any{50000}, driver.WithBatchRows(4096))
		if err != nil {
			t.Fatal(err)
		}
		var n, sum int64
		for b, err := range rows.All(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			a := b.Record.Column(0).(*array.Int64)
			for j := 0; j < a.Len(); j++ {
				sum += a.Value(j)
			}
			n += b.NumRows
			b.Release()
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		if n != 50000 || sum != 50000*50001/2 {
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
