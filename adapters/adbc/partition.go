package adbc

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	goadbc "github.com/apache/arrow-adbc/go/adbc"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
)

// item is what a partition worker hands the merge: a batch, an error, or
// (unordered merges) the worker's end.
type item struct {
	rec  arrow.RecordBatch
	err  error
	done bool
}

// merge is the Source of a partitioned query (Config.Partitions > 0): the
// statement runs with ExecutePartitions; up to Config.Partitions workers,
// each on its own connection of the same database, read partitions with
// ReadPartition and hand their batches over unbuffered channels, so the
// merge holds at most one batch per worker. Ordered merges read partition
// i's batches before i+1's (workers take partitions in order, each one on
// its own channel); unordered merges take whatever batch is ready first.
//
// A driver without partitioned execution (ExecutePartitions reports
// NotImplemented) falls back to an ordinary single-stream source.
//
// Goroutines: the workers are owned by the merge; Close cancels them and
// waits for them. Schema, Next and Close come from the runtime, one at a
// time.
type merge struct {
	conn *Conn
	cfg  *Config
	req  *driver.Request

	st       goadbc.Statement // the planning statement
	plan     *source          // st's cancellation and, on fallback, the whole query
	fallback bool

	schema   *arrow.Schema
	ids      [][]byte
	firstCn  goadbc.Connection  // the connection that read partition 0 for its schema
	firstRdr array.RecordReader // partition 0's reader, when the schema came from it

	started bool
	ctx     context.Context
	cancel  context.CancelCauseFunc
	wg      sync.WaitGroup
	nextIdx atomic.Int64
	chs     []chan item // ordered: one per partition
	cur     int
	out     chan item // unordered
	workers int
	done    int
	slicer  slicer
}

func (c *Conn) newMerge(ctx context.Context, req *driver.Request) (async.Source, error) {
	st, err := c.newStatement(ctx, req)
	if err != nil {
		return nil, err
	}
	plan := c.newSource(st, req)
	// The workers' context ends with the plan's, so CancelServer (which
	// interrupts the plan) stops them too.
	mctx, cancel := context.WithCancelCause(plan.execCtx)
	return &merge{conn: c, cfg: &c.c.cfg, req: req, st: st, plan: plan,
		ctx: mctx, cancel: cancel}, nil
}

// Schema executes the partitioned query and returns its schema: the one
// the driver reports, else partition 0's reader's.
func (m *merge) Schema(ctx context.Context) (*arrow.Schema, error) {
	if m.fallback {
		return m.plan.Schema(ctx)
	}
	if m.schema != nil {
		return m.schema, nil
	}
	stop := m.plan.watch(ctx)
	var (
		sc    *arrow.Schema
		parts goadbc.Partitions
	)
	err := m.conn.protect("Statement.ExecutePartitions", func() (err error) {
		sc, parts, _, err = m.st.ExecutePartitions(m.plan.execCtx)
		return err
	})
	stop()
	if cerr := ctxError(ctx, "execute partitions", err, m.cfg); cerr != nil {
		return nil, cerr
	}
	if isNotImplemented(err) {
		m.fallback = true
		return m.plan.Schema(ctx)
	}
	if err != nil {
		return nil, MapError("execute partitions", err, m.cfg)
	}
	m.ids = parts.PartitionIDs
	if sc == nil && len(m.ids) > 0 {
		cn, rdr, err := m.readPartition(ctx, 0)
		if err != nil {
			return nil, err
		}
		m.firstCn, m.firstRdr = cn, rdr
		sc = rdr.Schema()
	}
	if sc == nil {
		sc = arrow.NewSchema(nil, nil)
	}
	m.schema = sc
	return sc, nil
}

// readPartition opens a connection (holding a database reference) and
// partition i's reader on it.
func (m *merge) readPartition(ctx context.Context, i int) (goadbc.Connection, array.RecordReader, error) {
	db, err := m.conn.c.acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	cn, err := m.conn.c.openADBC(ctx, db)
	if err != nil {
		m.conn.c.release()
		return nil, nil, err
	}
	rdr, err := m.open(cn, i)
	if err != nil {
		m.closeCn(cn)
		return nil, nil, err
	}
	return cn, rdr, nil
}

// open reads partition i on cn.
func (m *merge) open(cn goadbc.Connection, i int) (array.RecordReader, error) {
	var rdr array.RecordReader
	err := m.conn.protect("Connection.ReadPartition", func() (err error) {
		rdr, err = cn.ReadPartition(m.ctx, m.ids[i])
		return err
	})
	if err != nil {
		if cerr := ctxError(m.ctx, "read partition", err, m.cfg); cerr != nil {
			return nil, cerr
		}
		return nil, MapError(fmt.Sprintf("read partition %d", i), err, m.cfg)
	}
	if !sameSchema(m.schemaOr(rdr), rdr.Schema()) {
		rdr.Release()
		return nil, &async.Error{Code: async.EPROTO,
			Message: fmt.Sprintf("adbc: partition %d's schema differs from the result's", i), Err: ErrSchemaMismatch}
	}
	return rdr, nil
}

func (m *merge) schemaOr(rdr array.RecordReader) *arrow.Schema {
	if m.schema != nil {
		return m.schema
	}
	return rdr.Schema()
}

func (m *merge) closeCn(cn goadbc.Connection) {
	m.conn.protect("Connection.Close", cn.Close)
	m.conn.c.release()
}

// start launches the workers.
func (m *merge) start() {
	m.started = true
	m.workers = min(m.cfg.Partitions, len(m.ids))
	if m.cfg.Unordered {
		m.out = make(chan item)
	} else {
		m.chs = make([]chan item, len(m.ids))
		for i := range m.chs {
			m.chs[i] = make(chan item)
		}
	}
	first := m.firstRdr != nil
	if first {
		m.nextIdx.Store(1)
	}
	for w := range m.workers {
		m.wg.Add(1)
		var cn goadbc.Connection
		var rdr array.RecordReader
		if w == 0 && first {
			cn, rdr = m.firstCn, m.firstRdr
			m.firstCn, m.firstRdr = nil, nil
		}
		go m.work(cn, rdr)
	}
}

// send hands it to the merge, or releases it when the merge is closing.
func (m *merge) send(ch chan item, it item) bool {
	select {
	case ch <- it:
		return true
	case <-m.ctx.Done():
		if it.rec != nil {
			it.rec.Release()
		}
		return false
	}
}

// work reads partitions until none is left: first the one already open
// (partition 0, when the schema came from it), then the next free index.
func (m *merge) work(cn goadbc.Connection, rdr array.RecordReader) {
	defer m.wg.Done()
	defer func() {
		if cn != nil {
			m.closeCn(cn)
		}
		if m.out != nil {
			m.send(m.out, item{done: true})
		}
	}()
	i := 0
	if rdr == nil {
		i = int(m.nextIdx.Add(1) - 1)
	}
	for ; i < len(m.ids); i = int(m.nextIdx.Add(1) - 1) {
		ch := m.out
		if ch == nil {
			ch = m.chs[i]
		}
		err := m.drain(&cn, rdr, i, ch)
		rdr = nil
		if m.chs != nil {
			if err != nil {
				m.send(ch, item{err: err})
			}
			close(ch)
		} else if err != nil {
			m.send(ch, item{err: err})
		}
		if err != nil || m.ctx.Err() != nil {
			return
		}
	}
}

// drain streams partition i into ch, opening the connection and the
// reader first when they are not yet open.
func (m *merge) drain(cn *goadbc.Connection, rdr array.RecordReader, i int, ch chan item) error {
	if *cn == nil {
		db, err := m.conn.c.acquire(m.ctx)
		if err != nil {
			return err
		}
		c, err := m.conn.c.openADBC(m.ctx, db)
		if err != nil {
			m.conn.c.release()
			return err
		}
		*cn = c
	}
	if rdr == nil {
		var err error
		if rdr, err = m.open(*cn, i); err != nil {
			return err
		}
	}
	defer m.conn.protect("RecordReader.Release", func() error { rdr.Release(); return nil })
	for {
		var (
			ok  bool
			rec arrow.RecordBatch
		)
		err := m.conn.protect("RecordReader.Next", func() error {
			if ok = rdr.Next(); ok {
				rec = rdr.RecordBatch()
				rec.Retain()
				return nil
			}
			return rdr.Err()
		})
		if err != nil {
			if cerr := ctxError(m.ctx, "read partition", err, m.cfg); cerr != nil {
				return cerr
			}
			return readError(err, m.cfg)
		}
		if !ok {
			return nil
		}
		if !rec.Schema().Equal(m.schema) {
			// same fields (open checked): give it the result's schema (N6)
			r := array.NewRecordBatch(m.schema, rec.Columns(), rec.NumRows())
			rec.Release()
			rec = r
		}
		if !m.send(ch, item{rec: rec}) {
			return context.Cause(m.ctx)
		}
	}
}

// Next returns the next batch of the merged stream.
func (m *merge) Next(ctx context.Context) (async.Batch, error) {
	if m.fallback {
		return m.plan.Next(ctx)
	}
	if err := ctx.Err(); err != nil {
		return async.Batch{}, fmt.Errorf("adbc: next: %w", context.Cause(ctx))
	}
	if !m.started {
		m.start()
	}
	if m.slicer.pending() {
		return async.Batch{Record: m.slicer.next()}, nil
	}
	for {
		var ch chan item
		if m.out != nil {
			if m.done == m.workers {
				return async.Batch{}, io.EOF
			}
			ch = m.out
		} else {
			if m.cur >= len(m.chs) {
				return async.Batch{}, io.EOF
			}
			ch = m.chs[m.cur]
		}
		select {
		case it, ok := <-ch:
			switch {
			case !ok:
				m.cur++
			case it.done:
				m.done++
			case it.err != nil:
				return async.Batch{}, it.err
			default:
				return async.Batch{Record: m.slicer.start(it.rec, m.req)}, nil
			}
		case <-ctx.Done():
			return async.Batch{}, fmt.Errorf("adbc: next: %w", context.Cause(ctx))
		case <-m.ctx.Done():
			return async.Batch{}, fmt.Errorf("adbc: next: %w", context.Cause(m.ctx))
		}
	}
}

// Close stops and waits for the workers, then closes the plan.
func (m *merge) Close() error {
	m.slicer.release()
	m.cancel(context.Canceled)
	m.wg.Wait()
	if m.firstRdr != nil {
		m.conn.protect("RecordReader.Release", func() error { m.firstRdr.Release(); return nil })
		m.firstRdr = nil
	}
	if m.firstCn != nil {
		m.closeCn(m.firstCn)
		m.firstCn = nil
	}
	if m.fallback {
		return m.plan.Close()
	}
	m.plan.eof = true // the plan's statement is not streaming: nothing to cancel
	return m.plan.Close()
}

// QueryPartitions runs req with ExecutePartitions and returns its
// partitions, each readable on any Conn of the same connector (see
// driver.Partitioner). A driver without partitioned execution reports an
// error wrapping errors.ErrUnsupported.
func (c *Conn) QueryPartitions(ctx context.Context, req *driver.Request) (driver.Partitions, error) {
	st, err := c.newStatement(ctx, req)
	if err != nil {
		return nil, err
	}
	var (
		sc    *arrow.Schema
		parts goadbc.Partitions
	)
	err = c.protect("Statement.ExecutePartitions", func() (err error) {
		sc, parts, _, err = st.ExecutePartitions(ctx)
		return err
	})
	if err != nil {
		c.protect("Statement.Close", st.Close)
		return nil, MapError("execute partitions", err, &c.c.cfg)
	}
	return &partitions{c: c.c, st: st, schema: sc, ids: parts.PartitionIDs, req: req}, nil
}

// partitions is a partitioned result's plan.
type partitions struct {
	c      *Connector
	st     goadbc.Statement
	schema *arrow.Schema
	ids    [][]byte
	req    *driver.Request
	closed atomic.Bool
}

// Schema is the result's schema as the driver reported it (nil when it
// did not).
func (p *partitions) Schema() *arrow.Schema { return p.schema }

func (p *partitions) Count() int { return len(p.ids) }

// Read opens partition i on conn, which must be a *Conn of the same
// connector's database.
func (p *partitions) Read(ctx context.Context, conn driver.Conn, i int) (async.Source, error) {
	if p.closed.Load() {
		return nil, fmt.Errorf("%w: partitions", ErrClosed)
	}
	if i < 0 || i >= len(p.ids) {
		return nil, fmt.Errorf("%w: adbc: partition %d of %d", async.ErrInvalid, i, len(p.ids))
	}
	c, ok := driver.As[*Conn](conn)
	if !ok {
		return nil, fmt.Errorf("%w: adbc: partitions are read on an adbc connection, not %T", async.ErrInvalid, conn)
	}
	s := c.newSource(nil, p.req)
	s.partial = true
	var rdr array.RecordReader
	err := c.protect("Connection.ReadPartition", func() (err error) {
		rdr, err = c.cn.ReadPartition(s.execCtx, p.ids[i])
		return err
	})
	if err != nil {
		s.eof = true
		s.Close()
		return nil, MapError(fmt.Sprintf("read partition %d", i), err, &c.c.cfg)
	}
	s.rdr, s.schema = rdr, rdr.Schema()
	if p.schema != nil && !sameSchema(p.schema, s.schema) {
		s.Close()
		return nil, &async.Error{Code: async.EPROTO,
			Message: fmt.Sprintf("adbc: partition %d's schema differs from the result's", i), Err: ErrSchemaMismatch}
	}
	return s, nil
}

// Close closes the plan's statement. It is idempotent.
func (p *partitions) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	return MapError("close statement", protect("Statement.Close", p.st.Close), &p.c.cfg)
}
