package adbc_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/volleyhq/volley/adapters/adbc"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/async/asynctest"
	"github.com/volleyhq/volley/driver"
	"github.com/volleyhq/volley/integration/flightsqltest"
)

// peerFactory runs each stream the conformance kit asks for as a query on a
// fresh connection of c.
func peerFactory(c *adbc.Connector, sqlFor func(asynctest.StreamSpec) (string, int64)) asynctest.ProducerFactory {
	return asynctest.Blocking(func(ctx context.Context, h async.Handler, spec asynctest.StreamSpec) error {
		conn, err := c.Connect(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		sql, rows := sqlFor(spec)
		src, err := conn.Query(ctx, &driver.Request{SQL: sql, BatchRows: rows, BatchBytes: 1 << 30})
		if err != nil {
			// as the driver pool does: the error reaches the handler
			src = failSource{err}
		}
		return async.Produce(ctx, h, src, async.ProduceOptions{})
	})
}

// duckSQL maps a stream spec to a DuckDB query; DuckDB's chunks are 2048
// rows, and the kit's Batches × Rows stay below that, so slicing by Rows
// gives exactly Batches batches.
func duckSQL(spec asynctest.StreamSpec) (string, int64) {
	rows := int64(max(spec.Rows, 1))
	switch spec.Kind {
	case asynctest.Endless:
		return "SELECT i AS v FROM range(9223372036854775807) t(i)", rows
	case asynctest.Stalled:
		return longQuery, rows
	case asynctest.FailSchema:
		return "SELECT * FROM no_such_table", rows
	case asynctest.FailAfter:
		// not expressible: DuckDB computes ahead of the consumer, so an
		// error in row N surfaces before the batches in front of it
		return fmt.Sprintf("SELECT error('FailAfter is not expressible') FROM range(%d)", spec.Batches), rows
	}
	return fmt.Sprintf("SELECT i AS v FROM range(%d) t(i)", int64(spec.Batches)*rows), rows
}

// flightSQL maps a stream spec to a query on the Flight SQL test server
// (batches of up to 1024 rows, sliced by Rows).
func flightSQL(spec asynctest.StreamSpec) (string, int64) {
	rows := int64(max(spec.Rows, 1))
	n := int64(spec.Batches) * rows
	switch spec.Kind {
	case asynctest.Endless:
		return "/*volley:stream*/ WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) SELECT i FROM c", rows
	case asynctest.Stalled:
		return "/*volley:stall*/ SELECT id FROM numbers", rows
	case asynctest.FailSchema:
		return "SELECT * FROM no_such_table", rows
	case asynctest.FailAfter:
		return fmt.Sprintf("/*volley:fail_after=%d*/ SELECT id FROM numbers ORDER BY id", n), rows
	}
	return fmt.Sprintf("SELECT id FROM numbers WHERE id <= %d ORDER BY id", n), rows
}

// duckUnsupported are the checks that need a FailAfter stream.
var duckUnsupported = []string{"E1_ErrorThenRelease", "E5_ReleaseLast", "TH1_Serialized"}

func TestConformanceDuckDB(t *testing.T) {
	f := peerFactory(duck(t), duckSQL)
	for _, name := range asynctest.ProducerCheckNames() {
		if slices.Contains(duckUnsupported, name) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			for _, fl := range asynctest.CheckProducer(f, name) {
				t.Error(fl)
			}
		})
	}
}

func TestConformanceFlightSQL(t *testing.T) {
	for _, parts := range []int{0, 2} {
		t.Run(fmt.Sprintf("partitions=%d", parts), func(t *testing.T) {
			_, c := flightPeer(t, flightsqltest.Options{Rows: 1000}, adbc.Config{Partitions: parts})
			asynctest.RunProducerChecks(t, peerFactory(c, flightSQL))
		})
	}
}

// TestCancelAtRandomPoints cancels streams from both peers after a random
// number of batches, by the consumer or through the ctx, and checks that
// each ends promptly with the cancellation, leaking nothing (goleak and the
// checked allocators run at the end).
func TestCancelAtRandomPoints(t *testing.T) {
	_, fc := flightPeer(t, flightsqltest.Options{Endpoints: 3, Rows: 6000}, adbc.Config{Partitions: 2})
	_, fc0 := flightPeer(t, flightsqltest.Options{Endpoints: 1, Rows: 6000}, adbc.Config{}) // see raceNote
	peers := []struct {
		name string
		c    *adbc.Connector
		sql  string
	}{
		{"duckdb", duck(t), "SELECT i, i::VARCHAR AS s FROM range(1000000) t(i)"},
		{"flightsql", fc0, "SELECT id, name FROM numbers ORDER BY id"},
		{"flightsql-partitioned", fc, "SELECT id, name FROM numbers ORDER BY id"},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range peers {
		conn := connect(t, p.c)
		for i := range 12 {
			k := rng.IntN(6)
			byCtx := i%2 == 1
			t.Run(fmt.Sprintf("%s/%d_after_%d_ctx=%v", p.name, i, k, byCtx), func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				src, err := conn.Query(ctx, &driver.Request{SQL: p.sql, BatchRows: 500, BatchBytes: 1 << 30})
				if err != nil {
					t.Fatal(err)
				}
				r := async.NewReader(async.ReaderOptions{Window: 1 + rng.IntN(3)})
				done := make(chan error, 1)
				go func() { done <- async.Produce(ctx, r, src, async.ProduceOptions{}) }()
				for range k {
					b, err := r.Next(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					b.Release()
				}
				start := time.Now()
				if byCtx {
					cancel()
				} else {
					r.Close()
				}
				waitCancelled(t, done)
				r.Close()
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("took %v after cancel", d)
				}
			})
		}
		// the connection is still usable after all that
		mustQuery(t, conn, "SELECT 1")
	}
}

// failSource fails at Schema, as a query that Conn.Query refused.
type failSource struct{ err error }

func (f failSource) Schema(context.Context) (*arrow.Schema, error) { return nil, f.err }
func (f failSource) Next(context.Context) (async.Batch, error)     { return async.Batch{}, f.err }
func (f failSource) Close() error                                  { return nil }
