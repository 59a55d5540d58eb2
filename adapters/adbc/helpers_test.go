package adbc_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"go.uber.org/goleak"

	"github.com/volleyhq/volley/adapters/adbc"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
	"github.com/volleyhq/volley/integration/duckdbtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gRPC's and OpenTelemetry's process-wide background goroutines
		// (started once by the Flight SQL client and server packages).
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/bluele/gcache.(*LRUCache).expire"),
	)
}

// duck returns a connector on a private in-memory DuckDB database.
func duck(t testing.TB) *adbc.Connector {
	t.Helper()
	c, err := adbc.DuckDB(duckdbtest.DriverPath(t), "").Connector()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("connector close: %v", err)
		}
	})
	return c
}

// connect opens a connection closed at cleanup.
func connect(t testing.TB, c driver.Connector) driver.Conn {
	t.Helper()
	conn, err := c.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := conn.Close(); err != nil {
			t.Errorf("conn close: %v", err)
		}
	})
	return conn
}

// result is what a stream delivered.
type result struct {
	schema  *arrow.Schema
	batches []arrow.RecordBatch // retained; released at cleanup
	rows    int64
	err     error // the stream's error (nil after a clean end)
	prodErr error // Produce's return
}

// run streams src through async.Produce (under ctx) into an async.Reader
// with the given window and collects every batch.
func run(t testing.TB, ctx context.Context, src async.Source, window int) result {
	t.Helper()
	r := async.NewReader(async.ReaderOptions{Window: window})
	done := make(chan error, 1)
	go func() { done <- async.Produce(ctx, r, src, async.ProduceOptions{}) }()
	var res result
	rctx := context.Background()
	res.schema, res.err = r.Schema(rctx)
	for res.err == nil {
		b, err := r.Next(rctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			res.err = err
			break
		}
		b.Record.Retain()
		res.batches = append(res.batches, b.Record)
		res.rows += b.NumRows
		b.Release()
	}
	r.Close()
	res.prodErr = <-done
	t.Cleanup(func() {
		for _, b := range res.batches {
			b.Release()
		}
	})
	return res
}

// query runs sql on conn and collects the result.
func query(t testing.TB, conn driver.Conn, sql string, args ...any) result {
	t.Helper()
	src, err := conn.Query(context.Background(), &driver.Request{SQL: sql, Args: args, BatchBytes: 64 << 20})
	if err != nil {
		return result{err: err, prodErr: err}
	}
	return run(t, context.Background(), src, 4)
}

// mustQuery is query that fails the test on a stream error.
func mustQuery(t testing.TB, conn driver.Conn, sql string, args ...any) result {
	t.Helper()
	res := query(t, conn, sql, args...)
	if res.err != nil || res.prodErr != nil {
		t.Fatalf("%s: stream error %v, Produce %v", sql, res.err, res.prodErr)
	}
	return res
}

// waitCancelled waits for a cancelled Produce to return, checks that it
// returned context.Canceled, and fails the test if it has not returned
// within 20 s.
func waitCancelled(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Produce = %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Produce did not return 20s after cancel")
	}
}
