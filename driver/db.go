package driver

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/devicebuf"
)

// DB is a pool of connections to one database, and the entry point for
// queries. It is safe for concurrent use by many goroutines.
//
// Close rule: Close stops new queries at once, cancels the queries in
// flight (their handlers get OnError with the cause ErrClosed, then
// Release), waits until every one of them has released its handler, then
// closes all connections and, as database/sql does, the connector when it
// implements io.Closer. It is idempotent.
type DB struct {
	driverName string
	cfg        Config
	pool       *pool
	devices    DeviceManager

	mu       sync.Mutex
	closed   bool
	inflight map[*Query]struct{}
	wg       sync.WaitGroup
}

var defaultDevices = sync.OnceValue(func() *devicebuf.Manager {
	return devicebuf.NewManager(devicebuf.Options{})
})

// Open opens a database through the driver registered under name. It
// parses the DSN at once where the driver can (DriverContext), but opens no
// connection until the first query.
func Open(name, dsn string) (*DB, error) { return OpenConfig(name, dsn, Config{}) }

// OpenConfig is [Open] with a configuration.
func OpenConfig(name, dsn string, cfg Config) (*DB, error) {
	d, err := lookup(name)
	if err != nil {
		return nil, err
	}
	var c Connector
	if dc, ok := d.(DriverContext); ok {
		if c, err = dc.OpenConnector(dsn); err != nil {
			return nil, fmt.Errorf("driver %s: %w", name, err)
		}
	} else {
		c = dsnConnector{d: d, dsn: dsn}
	}
	db, err := OpenDB(c, cfg)
	if err != nil {
		return nil, err
	}
	db.driverName = name
	return db, nil
}

// OpenDB opens a database from a typed connector; it opens no connection
// until the first query. It fails only for an invalid cfg.
func OpenDB(c Connector, cfg Config) (*DB, error) {
	if c == nil {
		return nil, fmt.Errorf("%w: OpenDB with a nil connector", ErrInvalid)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.EnsureDefaults()
	db := &DB{cfg: cfg, pool: newPool(c, cfg), devices: cfg.Devices, inflight: map[*Query]struct{}{}}
	if db.devices == nil {
		db.devices = defaultDevices()
	}
	return db, nil
}

type dsnConnector struct {
	d   Driver
	dsn string
}

func (c dsnConnector) Connect(ctx context.Context) (Conn, error) { return c.d.Open(ctx, c.dsn) }
func (c dsnConnector) Driver() Driver                            { return c.d }

// Devices returns the device manager placement uses.
func (db *DB) Devices() DeviceManager { return db.devices }

// Stats describes the connection pool.
func (db *DB) Stats() PoolStats { return db.pool.snapshot() }

// Close closes the database as the type's doc says.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	for q := range db.inflight {
		q.cancel(ErrClosed)
	}
	db.mu.Unlock()
	db.wg.Wait()
	db.pool.close()
	if c, ok := db.pool.connector.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Query starts sql with the bound parameters args and returns at once; the
// result streams into h, an async handler that paces it with Request and
// may Cancel it. The handle's Wait reports how the stream ended.
//
// Errors that can be known at once (invalid options or device hint, a
// closed DB) are returned and h is not used. Everything after (connecting,
// describing, placement, execution) reaches h as OnError then Release, and
// the handle's Wait returns it.
//
// The query runs until it ends, h cancels it, the handle's Cancel is
// called, ctx ends or the DB is closed.
func (db *DB) Query(ctx context.Context, h async.Handler, sql string, args []any, opts ...QueryOption) (*Query, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: Query with a nil handler", ErrInvalid)
	}
	o := db.cfg.Query
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	hint, hasHint, _ := o.hint()

	qctx, cancel := context.WithCancelCause(ctx)
	var stop context.CancelFunc = func() {}
	if o.Timeout > 0 {
		qctx, stop = context.WithTimeout(qctx, o.Timeout)
	}
	q := &Query{db: db, done: make(chan struct{}), placed: make(chan struct{}),
		cancel: cancel}
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		cancel(ErrClosed)
		stop()
		return nil, ErrClosed
	}
	db.inflight[q] = struct{}{}
	db.wg.Add(1)
	db.mu.Unlock()

	accept := o.Accept
	if accept == nil {
		accept = async.AcceptedDevices(h)
	}
	req := &Request{SQL: sql, Args: args, BatchBytes: o.BatchBytes, BatchRows: o.BatchRows}
	go func() {
		defer db.wg.Done()
		defer func() {
			db.mu.Lock()
			delete(db.inflight, q)
			db.mu.Unlock()
			stop()
			cancel(nil)
			q.markPlaced()
			close(q.done)
		}()
		q.err = q.run(qctx, h, req, o.Device, hint, hasHint, accept)
	}()
	return q, nil
}

// run executes one query on a pooled connection; it returns Produce's
// outcome.
func (q *Query) run(ctx context.Context, h async.Handler, req *Request, hintText string,
	hint async.Device, hasHint bool, accept []async.DeviceType) error {
	db := q.db
	fail := func(err error) error {
		q.markPlaced()
		return async.Produce(ctx, h, errSource{err}, async.ProduceOptions{Stats: &q.stats})
	}
	conn, err := db.pool.acquire(ctx)
	if err != nil {
		return fail(err)
	}
	clean := false
	defer func() { db.pool.release(conn, clean) }()

	src, err := conn.Query(ctx, req)
	if err != nil {
		return fail(err)
	}
	schema, err := src.Schema(ctx)
	if err != nil {
		src.Close()
		return fail(err)
	}
	var (
		estOnce sync.Once
		est     Estimate
		estOK   bool
	)
	preq := &PlacementRequest{Hint: hint, HasHint: hasHint, Accept: accept, Schema: schema,
		Inventory: db.devices.Inventory(ctx),
		Estimate: func(ctx context.Context) (Estimate, bool) {
			estOnce.Do(func() {
				if e, ok := As[Estimator](conn); ok {
					var err error
					est, err = e.Estimate(ctx, req)
					estOK = err == nil && est.Bytes >= 0
				}
			})
			return est, estOK
		}}
	pl, err := db.cfg.Policy.Place(ctx, preq)
	if err != nil {
		src.Close()
		return fail(err)
	}
	var mover async.Mover
	if pl.Device != async.CPU || pl.CPULabelledPinned {
		mover, err = db.devices.Mover(ctx, pl.Device, devicebuf.MoverOptions{CPULabelledPinned: pl.CPULabelledPinned})
		if err != nil {
			src.Close()
			return fail(fmt.Errorf("%w: %s: %w", ErrPlacement, pl.Device, err))
		}
		if c, ok := mover.(io.Closer); ok {
			defer c.Close()
		}
	}
	if hintText == "" {
		hintText = "auto"
	}
	q.placement = pl
	q.markPlaced()
	err = async.Produce(ctx, h, &describedSource{Source: src, schema: schema}, async.ProduceOptions{
		Mover: mover, AdditionalMetadata: pl.metadata(hintText), Stats: &q.stats})
	clean = err == nil
	return err
}

// describedSource hands Produce the schema the query already described.
type describedSource struct {
	async.Source
	schema *arrow.Schema
}

func (s *describedSource) Schema(context.Context) (*arrow.Schema, error) { return s.schema, nil }
func (s *describedSource) Unwrap() any                                   { return s.Source }

// Ended forwards the source's end notice (async.EndNotifier), if it gives
// one.
func (s *describedSource) Ended() <-chan struct{} {
	if en, ok := s.Source.(async.EndNotifier); ok {
		return en.Ended()
	}
	return nil
}

// errSource is a Source that fails at once, so that a query that fails
// before streaming still ends through the runtime's rules (OnError before
// OnSchema, then Release).
type errSource struct{ err error }

func (s errSource) Schema(context.Context) (*arrow.Schema, error) { return nil, s.err }
func (s errSource) Next(context.Context) (async.Batch, error)     { return async.Batch{}, s.err }
func (s errSource) Close() error                                  { return nil }

// Query is the handle of one running query. Its methods are safe from any
// goroutine.
type Query struct {
	db        *DB
	cancel    context.CancelCauseFunc
	done      chan struct{}
	placed    chan struct{}
	placeOnce sync.Once
	placement Placement // written before placed is closed
	stats     async.Stats
	err       error // written before done is closed
}

func (q *Query) markPlaced() { q.placeOnce.Do(func() { close(q.placed) }) }

// Wait blocks until the stream has ended (the handler's Release returned)
// and returns how: nil at end of stream, else the error the handler saw
// (errors.Is works with the async sentinels and context errors).
func (q *Query) Wait() error {
	<-q.done
	return q.err
}

// Done is closed when the stream has ended.
func (q *Query) Done() <-chan struct{} { return q.done }

// Cancel stops the query from the caller's side: the handler gets OnError
// with ECANCELED, then Release. It does not wait; use Wait.
func (q *Query) Cancel() { q.cancel(context.Canceled) }

// Placement waits until the query has been placed (or has failed before
// that) and returns the decision; the zero Placement when it failed first.
func (q *Query) Placement() Placement {
	<-q.placed
	return q.placement
}

// Stats returns the stream's counters so far.
func (q *Query) Stats() async.StatsSnapshot { return q.stats.Snapshot() }
