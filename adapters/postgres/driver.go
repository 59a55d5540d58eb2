// Package postgres is Volley's PostgreSQL adapter: it runs queries through
// pgx's pgconn and streams results as CPU Arrow record batches for the
// async runtime.
//
// It registers itself with package driver as "postgres" and "postgresql".
// The typed paths are [NewConnector] (a parsed *pgconn.Config; pass
// &pgxConfig.Config for a *pgx.ConnConfig) and [FromPool] (connections
// acquired from an existing *pgxpool.Pool and released back to it).
//
// # Reading
//
// Source.Schema describes the statement (Parse/Describe of an unnamed
// statement, nothing executed) and maps every column to an Arrow field. A
// statement without parameters whose first keyword is SELECT, WITH, VALUES
// or TABLE and that returns columns is read with COPY (query) TO STDOUT
// (FORMAT binary), parsed incrementally on a goroutine the Source owns,
// with an unbuffered hand-off so that a consumer that stops pulling stops
// the server through TCP back-pressure. Anything else (parameters, SHOW,
// EXPLAIN, utility statements, DML with RETURNING) runs through the
// extended protocol with binary results. Both paths decode wire bytes
// straight into Arrow builders with per-column decoders planned once, and
// cut batches at req.BatchBytes (approximately the wire size) or
// req.BatchRows.
//
// # Types
//
//	bool → bool; int2/int4/int8 → int16/32/64; oid → uint32; float4/8 → float32/64
//	numeric(p,s) → decimal128(p,s) (decimal256 when p > 38)
//	numeric → Config.Numeric (default utf8 text, exactly as PostgreSQL prints it)
//	money → decimal128(19,2) (assumes a 2-digit lc_monetary)
//	text, varchar, bpchar (padded), name, "char", xml → utf8; bytea → binary
//	uuid → arrow.uuid; json, jsonb → arrow.json (utf8 storage)
//	date → date32; time → time64[us]; timestamp → timestamp[us];
//	timestamptz → timestamp[us, UTC]; interval → month_day_nano
//	timetz → struct{time time64[us], offset int32 (seconds east of UTC)}
//	inet, cidr, macaddr, macaddr8, bit, varbit → utf8 (PostgreSQL's text form)
//	arrays (1-D, any lower bound) → list<element>; a multi-dimensional value is
//	  an error (ErrMultiDimArray)
//	enums → dictionary<int32, utf8>; composites → struct; domains → base type
//	ranges → struct{lower T, upper T, flags uint8} (Range* flag bits)
//	anything else → binary with the raw send bytes, arrow.opaque extension
//	  naming the type (vendor "PostgreSQL")
//
// Every top-level field carries metadata pg.type (type name) and pg.typmod.
// NaN/±Infinity numerics and ±infinity or out-of-range dates and timestamps
// follow Config.NumericSpecial and Config.Infinity (default null; never a
// wrong value).
//
// # Memory
//
// The COPY path decodes a batch only when one is asked for (a Next): a
// consumer's read-ahead, such as a Reader's window, is the pipeline, and
// the adapter adds no batch of its own, so a window-1 consumer and the
// adapter together hold two batches (the one the consumer holds and the one
// being decoded). Buffers come from Config.Allocator; the default recycles
// the buffers of released batches instead of leaving them to the garbage
// collector, and does not zero what every append overwrites (a null's slot
// is zeroed when its batch is cut).
//
// # The socket reader
//
// Connections the adapter opens, and those of pools configured with
// [Tune], read COPY results below pgconn: while a COPY of the adapter's
// runs, the reader under pgconn's message decoder takes the CopyData
// messages out of the stream and feeds their payloads to the parser;
// pgconn sees every other message (notices, errors, CommandComplete,
// ReadyForQuery) as usual. This skips pgconn's per-message work, which is
// most of a raw drain's CPU time. Connections of an untuned pool work the
// same, through pgconn's CopyTo.
//
// # Cancellation and errors
//
// When a Source's Next context ends or Close is called mid-stream, the
// adapter sends a CancelRequest (repeated with backoff, since a request
// that reaches the backend before it started the statement is ignored) and
// drains the rest of the result, so the connection stays usable; after a
// 10 s grace period the connection is closed instead and IsValid reports
// false. Contexts given to Schema and Next are honoured the same way
// (pgconn itself would close the connection). A value that cannot be
// decoded (or meets a SpecialError policy) fails the query with an error
// naming the column, and the connection is drained, not closed.
//
// Server errors become *async.Error values with an errno from the SQLSTATE
// (EINVAL for syntax, undefined objects and data errors; ECANCELED for
// 57014; EIO for connection loss and 57P01 terminations; ...) and pg.*
// metadata (MetaSQLState, MetaSeverity, MetaMessage, MetaDetail, ...), the
// *pgconn.PgError being the Err. A connection lost without any server
// message (a server stopped with -m immediate, or a backend terminated,
// while the client's socket was full: the server cannot send its FATAL
// then) is EIO with no SQLSTATE; when the server did send a shutdown
// notice first, its SQLSTATE is attached.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
)

// Compile-time checks of the capabilities the adapter provides.
var (
	_ driver.Driver          = Driver{}
	_ driver.DriverContext   = Driver{}
	_ driver.Connector       = (*Connector)(nil)
	_ driver.Conn            = (*Conn)(nil)
	_ driver.Estimator       = (*Conn)(nil)
	_ driver.Validator       = (*Conn)(nil)
	_ driver.Pinger          = (*Conn)(nil)
	_ driver.SessionResetter = (*Conn)(nil)
	_ driver.ServerCanceler  = (*Conn)(nil)
	_ driver.Wrapper         = (*source)(nil)
)

func init() {
	driver.Register("postgres", Driver{})
	driver.Register("postgresql", Driver{})
}

// Driver is the PostgreSQL driver. Its zero value is ready to use and safe
// for concurrent use.
type Driver struct{}

// Open parses dsn (URL or keyword/value form, with optional volley_*
// parameters, see [ParamNumeric]) and opens one connection.
func (d Driver) Open(ctx context.Context, dsn string) (driver.Conn, error) {
	c, err := d.OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	return c.Connect(ctx)
}

// OpenConnector parses dsn once into a [*Connector].
func (Driver) OpenConnector(dsn string) (driver.Connector, error) {
	rest, cfg, err := splitDSN(dsn)
	if err != nil {
		return nil, err
	}
	pc, err := pgconn.ParseConfig(rest)
	if err != nil {
		// pgconn's ParseConfigError redacts the password.
		return nil, fmt.Errorf("%w: postgres: %v", async.ErrInvalid, err)
	}
	return NewConnector(pc, cfg)
}

// Connector opens connections from a parsed configuration, or acquires them
// from a pool ([FromPool]). It is safe for concurrent use.
type Connector struct {
	pc   *pgconn.Config
	pool *pgxpool.Pool
	cfg  Config
}

// NewConnector returns a Connector for pc (not modified; pass
// &pgxConfig.Config for a *pgx.ConnConfig) with the type-mapping policies
// cfg.
func NewConnector(pc *pgconn.Config, cfg Config) (*Connector, error) {
	if pc == nil {
		return nil, fmt.Errorf("%w: postgres: nil config", async.ErrInvalid)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Connector{pc: pc, cfg: cfg}, nil
}

// FromPool returns a Connector whose Connect acquires a connection from
// pool and whose Conn.Close releases it back (a connection left unusable,
// see [Conn.IsValid], is closed first so that the pool drops it). The pool
// stays the caller's: closing Volley's DB does not close it.
func FromPool(pool *pgxpool.Pool, cfg Config) (*Connector, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: postgres: nil pool", async.ErrInvalid)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Connector{pool: pool, cfg: cfg}, nil
}

// Driver returns the postgres [Driver].
func (c *Connector) Driver() driver.Driver { return Driver{} }

// Connect opens (or acquires) one connection.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	if c.pool != nil {
		pc, err := c.pool.Acquire(ctx)
		if err != nil {
			return nil, wrapErr("acquire", err)
		}
		conn := newConn(pc.Conn().PgConn(), c.cfg)
		conn.cc = copyReaderOf(pc.Conn().PgConn()) // with Tune
		conn.release = func(valid bool) {
			if !valid {
				_ = pc.Conn().PgConn().Close(context.Background())
			}
			pc.Release()
		}
		return conn, nil
	}
	conn := newConn(nil, c.cfg)
	pc := c.pc.Copy()
	userNotice := pc.OnNotice
	pc.OnNotice = func(p *pgconn.PgConn, n *pgconn.Notice) {
		// An immediate shutdown announces itself with a WARNING notice
		// (SQLSTATE 57P01) before the socket closes; keep it for the error.
		if strings.HasPrefix(n.Code, "57P") {
			conn.shutdown.Store((*pgconn.PgError)(n))
		}
		if userNotice != nil {
			userNotice(p, n)
		}
	}
	Tune(pc)
	pg, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, wrapErr("connect", err)
	}
	conn.pg = pg
	conn.cc = copyReaderOf(pg)
	return conn, nil
}

// wrap is wrapErr that, for a connection lost without a server error,
// attaches the shutdown notice the server sent, if any.
func (c *Conn) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if n := c.shutdown.Load(); n != nil && !errors.As(err, &pe) {
		err = &lostConnError{notice: n, err: err}
	}
	return wrapErr(what, err)
}

// lostConnError is a connection failure preceded by a server notice.
type lostConnError struct {
	notice *pgconn.PgError
	err    error
}

func (e *lostConnError) Error() string {
	return e.err.Error() + " (after server notice: " + e.notice.Message + ")"
}

func (e *lostConnError) Unwrap() []error { return []error{e.notice, e.err} }

// Conn is one PostgreSQL connection. Like every driver.Conn it is used by
// one goroutine at a time: Query, then the Source until its Close returned.
// CancelServer may be called from any goroutine.
type Conn struct {
	pg     *pgconn.PgConn
	cc     *copyReader // the socket reader that parses COPY data, or nil
	cfg    Config
	mem    memory.Allocator
	cat    *catalog
	tm     *pgtype.Map
	broken atomic.Bool
	// shutdown is the server's shutdown notice, if one came.
	shutdown atomic.Pointer[pgconn.PgError]
	closed   bool
	release  func(valid bool)
}

func newConn(pg *pgconn.PgConn, cfg Config) *Conn {
	mem := cfg.Allocator
	if mem == nil {
		mem = defaultAllocator
	}
	return &Conn{pg: pg, cfg: cfg, mem: mem, cat: newCatalog(), tm: pgtype.NewMap()}
}

// PgConn returns the underlying connection, for callers that need pgconn
// directly between queries. It must not be used while a Source is open.
func (c *Conn) PgConn() *pgconn.PgConn { return c.pg }

// Query prepares req; the returned Source describes it in Schema and runs
// it on the first Next.
func (c *Conn) Query(ctx context.Context, req *driver.Request) (async.Source, error) {
	if c.closed {
		return nil, fmt.Errorf("postgres: %w", driver.ErrClosed)
	}
	if req == nil || req.SQL == "" {
		return nil, fmt.Errorf("%w: postgres: empty statement", async.ErrInvalid)
	}
	return newSource(c, req), nil
}

// IsValid reports whether the connection may be reused: false after a
// protocol or network error, a cancel that could not be drained, or inside
// a failed transaction.
func (c *Conn) IsValid() bool {
	return !c.closed && !c.broken.Load() && !c.pg.IsClosed() && !c.pg.IsBusy() && c.pg.TxStatus() != 'E'
}

// Ping checks the connection with an empty query.
func (c *Conn) Ping(ctx context.Context) error { return wrapErr("ping", c.pg.Ping(ctx)) }

// ResetSession forgets cached types, so that types altered by other
// sessions are resolved again.
func (c *Conn) ResetSession(ctx context.Context) error {
	c.cat.invalidate()
	return nil
}

// CancelServer sends a CancelRequest for whatever the connection is
// running; it is safe from any goroutine.
func (c *Conn) CancelServer(ctx context.Context) error {
	return wrapErr("cancel", c.pg.CancelRequest(ctx))
}

// Close closes the connection (or releases it to its pool). It is
// idempotent.
func (c *Conn) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	if c.release != nil {
		c.release(!c.broken.Load() && !c.pg.IsClosed() && !c.pg.IsBusy() && c.pg.TxStatus() != 'E')
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.pg.Close(ctx)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return wrapErr("close", err)
	}
	return nil
}
