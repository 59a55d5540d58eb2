package adbc_test

import (
	"context"
	"sync/atomic"
	"testing"

	goadbc "github.com/apache/arrow-adbc/go/adbc"
	"github.com/apache/arrow-adbc/go/adbc/drivermgr"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/volleyhq/volley/adapters/adbc"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
	"github.com/volleyhq/volley/integration/duckdbtest"
)

// countingDB counts the batches pulled from the driver's readers.
type countingDB struct {
	goadbc.Database
	pulled *atomic.Int64
}

func (d countingDB) Open(ctx context.Context) (goadbc.Connection, error) {
	c, err := d.Database.Open(ctx)
	return countingConn{c, d.pulled}, err
}

type countingConn struct {
	goadbc.Connection
	pulled *atomic.Int64
}

func (c countingConn) NewStatement() (goadbc.Statement, error) {
	s, err := c.Connection.NewStatement()
	return &countingStmt{s, c.pulled}, err
}

type countingStmt struct {
	goadbc.Statement
	pulled *atomic.Int64
}

func (s *countingStmt) ExecuteQuery(ctx context.Context) (array.RecordReader, int64, error) {
	r, n, err := s.Statement.ExecuteQuery(ctx)
	if err == nil {
		r = countingReader{r, s.pulled}
	}
	return r, n, err
}

type countingReader struct {
	array.RecordReader
	pulled *atomic.Int64
}

func (r countingReader) Next() bool {
	ok := r.RecordReader.Next()
	if ok {
		r.pulled.Add(1)
	}
	return ok
}

// TestNoReadAhead: batches are pulled from the driver only within the
// consumer's demand: after the consumer took k batches with a window of
// w, at most k+w have been pulled.
func TestNoReadAhead(t *testing.T) {
	db, err := drivermgr.Driver{}.NewDatabase(map[string]string{
		"driver": duckdbtest.DriverPath(t), "entrypoint": adbc.DuckDBEntryPoint, "path": ":memory:"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var pulled atomic.Int64
	c := adbc.NewConnector(countingDB{db, &pulled}, adbc.Config{})
	conn, err := c.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const window = 2
	src, err := conn.Query(context.Background(), &driver.Request{SQL: "SELECT i FROM range(10000000) t(i)", BatchBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	r := async.NewReader(async.ReaderOptions{Window: window})
	done := make(chan error, 1)
	go func() { done <- async.Produce(context.Background(), r, src, async.ProduceOptions{}) }()
	if _, err := r.Schema(context.Background()); err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 20; k++ {
		b, err := r.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		b.Release()
		if p := pulled.Load(); p > int64(k+window) {
			t.Fatalf("after %d batches taken with window %d, %d pulled from the driver", k, window, p)
		}
	}
	r.Close()
	<-done
	if p := pulled.Load(); p > 20+window {
		t.Fatalf("%d batches pulled for 20 taken", p)
	}
}
