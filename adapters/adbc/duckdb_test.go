package adbc_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/volleyhq/volley/adapters/adbc"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
)

// longQuery runs for many minutes on DuckDB unless cancelled.
const longQuery = "SELECT count(*) FROM range(1000000000000) a(i), range(1000) b(j) WHERE a.i % 7 = b.j"

func TestDuckDBStream(t *testing.T) {
	conn := connect(t, duck(t))
	res := mustQuery(t, conn, "SELECT i, i*2 AS j, 'x' || i::VARCHAR AS s FROM range(100000) t(i)")
	if res.rows != 100000 {
		t.Fatalf("rows = %d, want 100000", res.rows)
	}
	var next int64
	for _, b := range res.batches {
		col := b.Column(0).(*array.Int64)
		for k := range col.Len() {
			if col.Value(k) != next {
				t.Fatalf("row %d: i = %d", next, col.Value(k))
			}
			next++
		}
	}
	if got := res.schema.Field(2).Type.ID(); got != arrow.STRING {
		t.Errorf("s is %v", res.schema.Field(2).Type)
	}
}

func TestDuckDBBatchRows(t *testing.T) {
	conn := connect(t, duck(t))
	src, err := conn.Query(context.Background(), &driver.Request{SQL: "SELECT * FROM range(10000)", BatchRows: 1000, BatchBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, context.Background(), src, 2)
	if res.err != nil || res.rows != 10000 {
		t.Fatalf("rows %d err %v", res.rows, res.err)
	}
	var counted, shared int64
	for _, b := range res.batches {
		if b.NumRows() > 1000 {
			t.Fatalf("batch of %d rows, bound 1000", b.NumRows())
		}
		counted += async.RecordBytes(b)
		for _, c := range b.Columns() {
			for _, buf := range c.Data().Buffers() {
				if buf != nil {
					shared += int64(buf.Len())
				}
			}
		}
	}
	// The batches are slices of larger driver batches: each shares its
	// parent's buffers, but counts (in Stats, through RecordBytes) only its
	// own rows' bytes: 8 per int64, plus validity.
	if shared <= counted {
		t.Fatalf("batches do not share buffers (%d vs %d bytes): nothing re-sliced", shared, counted)
	}
	if counted < 8*10000 || counted > 8*10000+10000/8+10*8 {
		t.Errorf("re-sliced batches count %d bytes, want about %d", counted, 8*10000)
	}
}

// TestDuckDBSchemaBeforeRows: the schema of a query that would run for
// minutes arrives at once (ExecuteSchema, no execution), and closing the
// source without reading is prompt.
func TestDuckDBSchemaBeforeRows(t *testing.T) {
	conn := connect(t, duck(t))
	src, err := conn.Query(context.Background(), &driver.Request{SQL: longQuery, BatchBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	sc, err := src.Schema(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sc.NumFields() != 1 || sc.Field(0).Type.ID() != arrow.INT64 {
		t.Errorf("schema %v", sc)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("schema + close took %v", d)
	}
}

// TestDuckDBCancel: a query that would run for minutes stops promptly when
// the consumer cancels, and when the ctx ends, and the connection stays
// usable.
func TestDuckDBCancel(t *testing.T) {
	conn := connect(t, duck(t))
	t.Run("consumer", func(t *testing.T) {
		src, err := conn.Query(context.Background(), &driver.Request{SQL: longQuery, BatchBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		r := async.NewReader(async.ReaderOptions{Window: 2})
		done := make(chan error, 1)
		go func() { done <- async.Produce(context.Background(), r, src, async.ProduceOptions{}) }()
		if _, err := r.Schema(context.Background()); err != nil {
			t.Fatal(err)
		}
		// The producer is now blocked in DuckDB executing the query.
		start := time.Now()
		r.Close()
		waitCancelled(t, done)
		t.Logf("returned %v after cancel", time.Since(start))
	})
	t.Run("ctx", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		src, err := conn.Query(ctx, &driver.Request{SQL: longQuery, BatchBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res := run(t, ctx, src, 2)
		if !errors.Is(res.prodErr, context.DeadlineExceeded) {
			t.Errorf("Produce = %v, want deadline exceeded", res.prodErr)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("took %v", d)
		}
	})
	res := mustQuery(t, conn, "SELECT 42")
	if res.rows != 1 {
		t.Fatalf("after cancel: %d rows", res.rows)
	}
}

func TestDuckDBParams(t *testing.T) {
	conn := connect(t, duck(t))
	ts := time.Date(2024, 2, 29, 12, 34, 56, 789000000, time.UTC)
	res := mustQuery(t, conn, "SELECT ?::BIGINT + 1 AS a, ? || '!' AS b, ?::DOUBLE * 2 AS c, ? AS d, ?::TIMESTAMP AS e, ? IS NULL AS f, octet_length(?) AS g",
		int64(41), "it's; \"quoted\" -- not SQL", 1.25, true, ts, nil, []byte{0, 1, 2})
	b := res.batches[0]
	want := []string{"42", `it's; "quoted" -- not SQL!`, "2.5", "true", "2024-02-29T12:34:56.789", "true", "3"}
	for i, w := range want {
		if got := b.Column(i).ValueStr(0); !strings.HasPrefix(got, w) {
			t.Errorf("column %d = %q, want %q", i, got, w)
		}
	}
	if _, err := adbc.ParamRecord(nil, []any{struct{}{}}); !errors.Is(err, async.ErrInvalid) {
		t.Errorf("unsupported parameter type: %v", err)
	}
}

func TestDuckDBErrors(t *testing.T) {
	c := duck(t)
	conn := connect(t, c)
	t.Run("sql", func(t *testing.T) {
		res := query(t, conn, "SELECT * FROM no_such_table")
		var ae *async.Error
		if !errors.As(res.prodErr, &ae) {
			t.Fatalf("Produce = %v, want *async.Error", res.prodErr)
		}
		if ae.Metadata.FindKey(adbc.MetaStatus) < 0 || !strings.Contains(ae.Message, "no_such_table") {
			t.Errorf("error %v, metadata %v", ae, ae.Metadata)
		}
		if res.err == nil {
			t.Error("reader saw no error")
		}
	})
	t.Run("midstream", func(t *testing.T) {
		res := query(t, conn, "SELECT CASE WHEN i < 300000 THEN i ELSE error('boom at ' || i::VARCHAR) END AS v FROM range(400000) t(i)")
		if res.prodErr == nil || !strings.Contains(res.prodErr.Error(), "boom") {
			t.Fatalf("Produce = %v", res.prodErr)
		}
		if code := async.CodeOf(res.prodErr); code != async.EIO {
			t.Errorf("code %v, want EIO", code)
		}
		t.Logf("%d rows before %v", res.rows, res.prodErr)
	})
	t.Run("param", func(t *testing.T) {
		res := query(t, conn, "SELECT ?", make(chan int))
		if !errors.Is(res.prodErr, async.ErrInvalid) {
			t.Fatalf("Query = %v", res.prodErr)
		}
	})
	// the connection is still usable
	mustQuery(t, conn, "SELECT 1")
}

func TestDriverLoadErrors(t *testing.T) {
	lib := duck(t).Config().Library
	cases := []struct {
		name string
		cfg  adbc.Config
		want string
	}{
		{"missing library", adbc.Config{Library: "/nonexistent/libnope.so"}, "libnope"},
		{"missing entrypoint", adbc.Config{Library: lib, EntryPoint: "no_such_init"}, "no_such_init"},
		{"bad option", adbc.Config{Library: lib, EntryPoint: adbc.DuckDBEntryPoint,
			Options: map[string]string{"path": ":memory:", "no_such_option": "1"}}, "no_such_option"},
		{"secret in bad option", adbc.Config{Library: lib, EntryPoint: adbc.DuckDBEntryPoint,
			Options: map[string]string{"path": ":memory:", "bogus_password": "hunter2-secret"}}, "bogus_password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.cfg.Connector()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			conn, err := c.Connect(context.Background())
			if err == nil {
				conn.Close()
				t.Fatal("Connect succeeded")
			}
			var ae *async.Error
			if !errors.As(err, &ae) {
				t.Fatalf("%T %v, want *async.Error", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks a secret: %q", err)
			}
			t.Log(err)
		})
	}
}

// TestDuckDBStatements runs DDL and DML through Query: their (empty or
// count) results stream like any other.
func TestDuckDBStatements(t *testing.T) {
	conn := connect(t, duck(t))
	mustQuery(t, conn, "CREATE TABLE t (id INTEGER, s VARCHAR)")
	mustQuery(t, conn, "INSERT INTO t VALUES (?, ?), (?, ?)", int32(1), "a", int32(2), "b;c")
	mustQuery(t, conn, "UPDATE t SET s = s || '!' WHERE id = ?", int64(2))
	res := mustQuery(t, conn, "SELECT id, s FROM t ORDER BY id")
	if res.rows != 2 || res.batches[0].Column(1).ValueStr(1) != "b;c!" {
		t.Fatalf("rows %d, %v", res.rows, res.batches)
	}
}

// TestDuckDBCancelServer cancels a running query from another goroutine
// through driver.ServerCanceler.
func TestDuckDBCancelServer(t *testing.T) {
	conn := connect(t, duck(t))
	src, err := conn.Query(context.Background(), &driver.Request{SQL: longQuery, BatchBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	r := async.NewReader(async.ReaderOptions{Window: 1})
	done := make(chan error, 1)
	go func() { done <- async.Produce(context.Background(), r, src, async.ProduceOptions{}) }()
	if _, err := r.Schema(context.Background()); err != nil {
		t.Fatal(err)
	}
	sc, ok := driver.As[driver.ServerCanceler](conn)
	if !ok {
		t.Fatal("no ServerCanceler")
	}
	if err := sc.CancelServer(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitCancelled(t, done)
	r.Close()
	mustQuery(t, conn, "SELECT 1")
}

// TestDuckDBPartitionsFallBack: with Config.Partitions set, a driver
// without partitioned execution (the driver manager reports
// NotImplemented) runs the query as one stream.
func TestDuckDBPartitionsFallBack(t *testing.T) {
	cfg := duck(t).Config()
	cfg.Partitions = 3
	c, err := cfg.Connector()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := connect(t, c)
	if res := mustQuery(t, conn, "SELECT * FROM range(12345)"); res.rows != 12345 {
		t.Fatalf("%d rows", res.rows)
	}
	if _, err := (adbc.Config{Library: "x", Options: map[string]string{"driver": "y"}}).Connector(); !errors.Is(err, async.ErrInvalid) {
		t.Errorf("Options[driver] accepted: %v", err)
	}
}

// TestParamTypes binds each accepted Go type and reads it back from
// DuckDB.
func TestParamTypes(t *testing.T) {
	conn := connect(t, duck(t))
	cases := []struct {
		arg  any
		want string
	}{
		{int(-5), "-5"}, {int8(-8), "-8"}, {int16(-16), "-16"}, {int32(-32), "-32"}, {int64(-64), "-64"},
		{uint(5), "5"}, {uint8(8), "8"}, {uint16(16), "16"}, {uint32(32), "32"}, {uint64(1 << 63), "9223372036854775808"},
		{float32(1.5), "1.5"}, {float64(-0.25), "-0.25"}, {false, "false"}, {"s", "s"},
		{[]byte("ab"), "YWI="}, {[]byte(nil), "(null)"}, {nil, "(null)"},
		{time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC), "2001-02-03T04:05:06.000007Z"},
		{90 * time.Second, `{"months":0,"days":0,"nanoseconds":90000000000}`}, // duration arrives as INTERVAL
	}
	for _, tc := range cases {
		res := query(t, conn, "SELECT ? AS v", tc.arg)
		if res.prodErr != nil {
			t.Errorf("%T: %v", tc.arg, res.prodErr)
			continue
		}
		if got := res.batches[0].Column(0).ValueStr(0); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%T %v: got %q (%s), want %q", tc.arg, tc.arg, got, res.batches[0].Column(0).DataType(), tc.want)
		}
	}
}
