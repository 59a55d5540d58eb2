package adbc_test

import (
	"testing"
)

func TestDuckDBSmoke(t *testing.T) {
	conn := connect(t, duck(t))
	res := mustQuery(t, conn, "SELECT i, i*2 AS j, 'x' || i::VARCHAR AS s FROM range(10000) t(i)")
	if res.rows != 10000 {
		t.Fatalf("rows = %d, want 10000", res.rows)
	}
	t.Log(res.schema, len(res.batches))
}
