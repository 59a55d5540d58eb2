package driver

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/volleyhq/volley/async"
)

// fakeDriver is a database in memory: every query returns `rows` rows of
// one int64 column "n" (0, 1, 2, ...), in batches of batch rows. DSN:
// "fake://?rows=10&batch=3&estimate=BYTES&block=1" (block: Next blocks until
// ctx ends after the first batch).
type fakeDriver struct {
	mem memory.Allocator

	opened, closed atomic.Int64
	mu             sync.Mutex
	conns          []*fakeConn
}

type fakeConfig struct {
	rows, batch, estimate int64
	block                 bool
}

func parseFake(dsn string) (fakeConfig, error) {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme != "fake" {
		return fakeConfig{}, fmt.Errorf("%w: malformed DSN: want fake://?rows=N", ErrInvalid)
	}
	cfg := fakeConfig{rows: 10, batch: 4, estimate: -1}
	for k, vs := range u.Query() {
		switch k {
		case "block":
			cfg.block = vs[0] == "1"
			continue
		}
		n, err := strconv.ParseInt(vs[0], 10, 64)
		if err != nil {
			return fakeConfig{}, fmt.Errorf("%w: malformed DSN: %s=%q is not a number", ErrInvalid, k, vs[0])
		}
		switch k {
		case "rows":
			cfg.rows = n
		case "batch":
			cfg.batch = n
		case "estimate":
			cfg.estimate = n
		default:
			return fakeConfig{}, fmt.Errorf("%w: malformed DSN: unknown parameter %q", ErrInvalid, k)
		}
	}
	return cfg, nil
}

func (d *fakeDriver) Open(ctx context.Context, dsn string) (Conn, error) {
	c, err := d.OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	return c.Connect(ctx)
}

func (d *fakeDriver) OpenConnector(dsn string) (Connector, error) {
	cfg, err := parseFake(dsn)
	if err != nil {
		return nil, err
	}
	return &fakeConnector{d: d, cfg: cfg}, nil
}

type fakeConnector struct {
	d   *fakeDriver
	cfg fakeConfig
}

func (c *fakeConnector) Driver() Driver { return c.d }
func (c *fakeConnector) Connect(context.Context) (Conn, error) {
	c.d.opened.Add(1)
	fc := &fakeConn{d: c.d, cfg: c.cfg}
	fc.valid.Store(true)
	c.d.mu.Lock()
	c.d.conns = append(c.d.conns, fc)
	c.d.mu.Unlock()
	return fc, nil
}

type fakeConn struct {
	d       *fakeDriver
	cfg     fakeConfig
	valid   atomic.Bool
	closed  atomic.Bool
	queries atomic.Int64
	busy    atomic.Bool
}

var fakeSchema = arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil)

func (c *fakeConn) Query(ctx context.Context, req *Request) (async.Source, error) {
	if !c.busy.CompareAndSwap(false, true) {
		panic("fake: connection used by two queries at once")
	}
	c.queries.Add(1)
	batch := c.cfg.batch
	if req.BatchRows > 0 {
		batch = min(batch, req.BatchRows)
	}
	return &fakeSource{c: c, batch: batch}, nil
}

func (c *fakeConn) Estimate(context.Context, *Request) (Estimate, error) {
	if c.cfg.estimate < 0 {
		return Estimate{}, fmt.Errorf("no estimate")
	}
	return Estimate{Rows: c.cfg.rows, Bytes: c.cfg.estimate}, nil
}

func (c *fakeConn) IsValid() bool { return c.valid.Load() && !c.closed.Load() }

func (c *fakeConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.d.closed.Add(1)
	}
	return nil
}

type fakeSource struct {
	c     *fakeConn
	batch int64
	next  int64
	done  bool
}

func (s *fakeSource) Schema(context.Context) (*arrow.Schema, error) { return fakeSchema, nil }

func (s *fakeSource) Next(ctx context.Context) (async.Batch, error) {
	if s.next >= s.c.cfg.rows {
		s.done = true
		return async.Batch{}, io.EOF
	}
	if s.c.cfg.block && s.next > 0 {
		<-ctx.Done()
		return async.Batch{}, context.Cause(ctx)
	}
	n := min(s.batch, s.c.cfg.rows-s.next)
	b := array.NewInt64Builder(s.c.d.mem)
	defer b.Release()
	for i := range n {
		b.Append(s.next + i)
	}
	s.next += n
	col := b.NewArray()
	defer col.Release()
	return async.Batch{Record: array.NewRecordBatch(fakeSchema, []arrow.Array{col}, n)}, nil
}

func (s *fakeSource) Close() error {
	if !s.done {
		// A query stopped before its end leaves the connection dirty.
		s.c.valid.Store(false)
	}
	s.c.busy.Store(false)
	return nil
}
