package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/devicebuf"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newFakeDB opens a DB over a fresh fake driver whose Arrow memory is checked
// for leaks when the test ends.
func newFakeDB(t *testing.T, dsn string, cfg Config) (*DB, *fakeDriver) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	d := &fakeDriver{mem: mem}
	c, err := d.OpenConnector(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Devices == nil {
		cfg.Devices = devicebuf.NewManager(devicebuf.Options{CUDALibraryPath: "/nonexistent/libcuda.so.1"})
	}
	db, err := OpenDB(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, d
}

// drain reads every batch, checks the values count up from 0 and returns the
// row count.
func drain(t *testing.T, rows *Rows) int64 {
	t.Helper()
	var n int64
	for b, err := range rows.All(t.Context()) {
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		col := b.Record.Column(0).(*array.Int64)
		for i := range col.Len() {
			if col.Value(i) != n {
				t.Fatalf("row %d = %d", n, col.Value(i))
			}
			n++
		}
		b.Release()
	}
	return n
}

var registryRuns atomic.Int64

func TestRegistry(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Fatalf("%s did not panic", name)
			}
		}()
		f()
	}
	// Unique names per run, so that -count=N does not register twice.
	run := registryRuns.Add(1)
	a, b := fmt.Sprintf("fake-registry-%d-a", run), fmt.Sprintf("fake-registry-%d-b", run)
	Register(b, &fakeDriver{})
	Register(a, &fakeDriver{})
	mustPanic("Register(nil)", func() { Register("fake-nil", nil) })
	mustPanic("duplicate Register", func() { Register(a, &fakeDriver{}) })

	names := Drivers()
	ia, ib := -1, -1
	for i, n := range names {
		switch n {
		case a:
			ia = i
		case b:
			ib = i
		}
	}
	if ia < 0 || ib < 0 || ia > ib {
		t.Fatalf("Drivers() = %v: want both fakes, sorted", names)
	}

	_, err := Open("no-such-driver", "x")
	if !errors.Is(err, ErrUnknownDriver) || !strings.Contains(err.Error(), "(forgotten import?)") ||
		!strings.Contains(err.Error(), a) {
		t.Fatalf("Open(unknown) = %v; want ErrUnknownDriver naming the known drivers", err)
	}
	_, err = Open(a, "fake://?rows=ten")
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `rows="ten" is not a number`) {
		t.Fatalf("Open(malformed DSN) = %v; want an ErrInvalid naming the parameter", err)
	}
	db, err := Open(a, "fake://?rows=3")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := db.Query(t.Context(), async.NewReader(async.ReaderOptions{}), "q", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Query on a closed DB = %v; want ErrClosed", err)
	}
}

func TestQueryCPUConsumer(t *testing.T) {
	db, d := newFakeDB(t, "fake://?rows=1000&batch=64&estimate=1000000000", Config{})
	rows, err := db.Stream(t.Context(), "SELECT n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := drain(t, rows); got != 1000 {
		t.Fatalf("rows = %d, want 1000", got)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	q := rows.Query()
	pl := q.Placement()
	if pl.Device != async.CPU || !strings.Contains(pl.Reason, "auto: cpu") {
		t.Fatalf("placement = %s; want cpu with a reason", pl)
	}
	st := q.Stats()
	if st.Rows != 1000 || st.Batches != 16 || st.Bytes < 8000 {
		t.Fatalf("stats = %+v; want 1000 rows in 16 batches of >= 8000 bytes", st)
	}
	if got := d.opened.Load(); got != 1 {
		t.Fatalf("opened %d connections, want 1", got)
	}
}

func TestQueryAdditionalMetadata(t *testing.T) {
	db, _ := newFakeDB(t, "fake://?rows=5", Config{})
	r := async.NewReader(async.ReaderOptions{})
	q, err := db.Query(t.Context(), r, "SELECT n", nil, OnDevice("cpu"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Schema(t.Context()); err != nil {
		t.Fatal(err)
	}
	md := r.AdditionalMetadata()
	dev, _ := md.GetValue(MetaDevice)
	reason, _ := md.GetValue(MetaReason)
	hint, _ := md.GetValue(MetaHint)
	if dev != "cpu" || !strings.Contains(reason, "hint") || hint != "cpu" {
		t.Fatalf("additional metadata = %v; want the placement decision", md)
	}
	r.Close()
	q.Wait()
}

func TestQueryBadInput(t *testing.T) {
	db, _ := newFakeDB(t, "fake://?rows=5", Config{})
	r := async.NewReader(async.ReaderOptions{})
	defer r.Close()
	if _, err := db.Query(t.Context(), nil, "q", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nil handler: %v", err)
	}
	_, err := db.Query(t.Context(), r, "q", nil, OnDevice("cuda:x"))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "cuda:x") {
		t.Fatalf("device cuda:x: %v", err)
	}
	if _, err := db.Stream(t.Context(), "q", nil, WithWindow(0)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("window 0: %v", err)
	}
	if _, err := OpenDB(&fakeConnector{d: &fakeDriver{}}, Config{MaxOpen: -1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("MaxOpen -1: %v", err)
	}
}

func TestHintedUnusableDeviceFailsTheStream(t *testing.T) {
	db, _ := newFakeDB(t, "fake://?rows=5", Config{})
	rows, err := db.Stream(t.Context(), "q", nil, OnDevice("cuda:0"), WithAccept(async.DeviceCUDA, async.DeviceCPU))
	if err != nil {
		t.Fatal(err)
	}
	_, err = rows.Next(t.Context())
	if !errors.Is(err, ErrPlacement) || !strings.Contains(err.Error(), "cuda:0") {
		t.Fatalf("Next = %v; want a placement error naming cuda:0", err)
	}
	if err := rows.Close(); !errors.Is(err, ErrPlacement) {
		t.Fatalf("Close = %v; want the placement error", err)
	}
	if db.Stats().Open != 0 && db.Stats().Idle != db.Stats().Open {
		t.Fatalf("connection not returned: %+v", db.Stats())
	}
}

func TestPoolQueuesBeyondMaxOpen(t *testing.T) {
	db, d := newFakeDB(t, "fake://?rows=300&batch=7", Config{MaxOpen: 2, MaxIdle: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows, err := db.Stream(context.Background(), "q", nil, WithWindow(2))
			if err != nil {
				errs <- err
				return
			}
			var n int64
			for b, err := range rows.All(context.Background()) {
				if err != nil {
					errs <- err
					return
				}
				n += b.NumRows
				b.Release()
			}
			if n != 300 {
				errs <- errors.New("short result")
			}
			errs <- rows.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	opened := d.opened.Load()
	if opened > 2 {
		t.Fatalf("opened %d connections with MaxOpen 2", opened)
	}
	if st := db.Stats(); st.Reused != 12-opened {
		t.Fatalf("pool stats %+v with %d opened: every other query must reuse a connection", st, opened)
	}
}

// TestPoolWaitsForAConnection holds the only connection with a stream that
// is not read to its end: a second query must wait for it, and then reuse
// it rather than open another.
func TestPoolWaitsForAConnection(t *testing.T) {
	db, d := newFakeDB(t, "fake://?rows=100&batch=10", Config{MaxOpen: 1})
	first, err := db.Stream(t.Context(), "q", nil, WithWindow(1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := first.Next(t.Context()) // the first query now holds the connection
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	second, err := db.Stream(t.Context(), "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.Query().Done():
		t.Fatal("the second query ended while the only connection was taken")
	default:
	}
	var rest int64
	for b, err := range first.All(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		rest += b.NumRows
		b.Release()
	}
	if rest != 90 {
		t.Fatalf("first query: %d more rows, want 90", rest)
	}
	first.Close()
	if n := drain(t, second); n != 100 {
		t.Fatalf("second query: %d rows", n)
	}
	second.Close()
	if got := d.opened.Load(); got != 1 {
		t.Fatalf("opened %d connections with MaxOpen 1", got)
	}
	if st := db.Stats(); st.Reused != 1 {
		t.Fatalf("pool %+v: want the second query to reuse the first's connection", st)
	}
}

func TestConsumerCancelDiscardsDirtyConnection(t *testing.T) {
	db, d := newFakeDB(t, "fake://?rows=1000&batch=10", Config{MaxOpen: 1})
	rows, err := db.Stream(t.Context(), "q", nil, WithWindow(1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := rows.Next(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	if err := rows.Close(); err != nil {
		t.Fatalf("Close after a partial read = %v; want nil (the reader cancelled)", err)
	}
	if st := db.Stats(); st.Discarded != 1 || st.Open != 0 {
		t.Fatalf("pool %+v: want the cancelled connection discarded", st)
	}
	if d.closed.Load() != 1 {
		t.Fatalf("the discarded connection was not closed")
	}
	// The pool is healthy: the next query gets a new connection.
	rows, err = db.Stream(t.Context(), "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := drain(t, rows); n != 1000 {
		t.Fatalf("rows = %d", n)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if st := db.Stats(); st.Open != 1 || st.Idle != 1 {
		t.Fatalf("pool %+v: want the clean connection kept idle", st)
	}
}

func TestCloseCancelsQueriesInFlight(t *testing.T) {
	db, d := newFakeDB(t, "fake://?rows=100&batch=10&block=1", Config{MaxOpen: 3})
	var streams []*Rows
	for range 3 {
		rows, err := db.Stream(t.Context(), "q", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := rows.Next(t.Context()) // the first batch arrives, then the source blocks
		if err != nil {
			t.Fatal(err)
		}
		b.Release()
		streams = append(streams, rows)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, rows := range streams {
		select {
		case <-rows.Query().Done():
		default:
			t.Fatal("Close returned before a query in flight ended")
		}
		if err := rows.Query().Wait(); !errors.Is(err, ErrClosed) {
			t.Fatalf("query ended with %v; want ErrClosed", err)
		}
		if _, err := rows.Next(t.Context()); !errors.Is(err, ErrClosed) {
			t.Fatalf("reader after Close: %v; want ErrClosed", err)
		}
		rows.Close()
	}
	if d.closed.Load() != d.opened.Load() {
		t.Fatalf("%d connections opened, %d closed", d.opened.Load(), d.closed.Load())
	}
}

func TestQueryCancelHandle(t *testing.T) {
	db, _ := newFakeDB(t, "fake://?rows=100&batch=10&block=1", Config{})
	rows, err := db.Stream(t.Context(), "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := rows.Next(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	rows.Query().Cancel()
	if err := rows.Query().Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v; want context.Canceled", err)
	}
	if _, err := rows.Next(t.Context()); !errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
		t.Fatalf("Next = %v; want context.Canceled", err)
	}
	rows.Close()
}
