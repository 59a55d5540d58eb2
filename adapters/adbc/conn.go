package adbc

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"

	goadbc "github.com/apache/arrow-adbc/go/adbc"
	"github.com/apache/arrow-adbc/go/adbc/drivermgr"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
)

// Name is the name the package registers its driver under.
const Name = "adbc"

func init() { driver.Register(Name, Driver{}) }

// Driver is the Volley driver for DSNs naming a C ADBC driver (syntax in
// the package documentation). Its zero value is ready to use and safe for
// concurrent use.
type Driver struct{}

// Open parses dsn and opens one connection on a database of its own, which
// the connection closes when it is closed. Pools use [Driver.OpenConnector]
// instead, whose connections share one database.
func (Driver) Open(ctx context.Context, dsn string) (driver.Conn, error) {
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	c, err := cfg.Connector()
	if err != nil {
		return nil, err
	}
	conn, err := c.connect(ctx)
	if err != nil {
		c.Close()
		return nil, err
	}
	conn.closeConnector = c
	return conn, nil
}

// OpenConnector parses dsn once into a [*Connector].
func (Driver) OpenConnector(dsn string) (driver.Connector, error) {
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	return cfg.Connector()
}

// Connector opens Volley connections on one ADBC database. It is safe for
// concurrent use. A connector made from a Config ([Config.Connector],
// [FromDriver]) opens the database at its first Connect and closes it when
// its last connection has closed, so a pool that closes its connections
// leaves nothing open (an in-memory database is therefore dropped when no
// connection is left); Close closes it for good. A connector made with
// [NewConnector] uses the caller's database and never closes it.
type Connector struct {
	cfg Config
	own bool // the connector opens and closes the database

	mu     sync.Mutex
	db     goadbc.Database
	refs   int
	closed bool
}

// Connector validates c and returns a connector for it; it opens nothing.
func (c Config) Connector() (*Connector, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Connector{cfg: c.clone(), own: true}, nil
}

// FromDriver returns a connector for a Go ADBC driver and its database
// options.
func FromDriver(drv goadbc.Driver, opts map[string]string) (*Connector, error) {
	return Config{Driver: drv, Options: maps.Clone(opts)}.Connector()
}

// NewConnector returns a connector on an open database, which stays the
// caller's: the connector never closes it. cfg supplies the other settings
// (statement options, partitions, allocator); its Driver, Library and
// Options are not used.
func NewConnector(db goadbc.Database, cfg Config) *Connector {
	if db == nil {
		panic("adbc: NewConnector with a nil database")
	}
	cfg = cfg.clone()
	return &Connector{cfg: cfg, db: db}
}

// Config returns a copy of the connector's configuration.
func (c *Connector) Config() Config { return c.cfg.clone() }

// Driver returns [Driver].
func (c *Connector) Driver() driver.Driver { return Driver{} }

// Connect opens a connection.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// Close stops the connector from opening connections and closes its
// database once no connection uses it (at once when none does). It is
// idempotent.
func (c *Connector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.refs == 0 {
		return c.closeDBLocked()
	}
	return nil
}

func (c *Connector) closeDBLocked() error {
	if !c.own || c.db == nil {
		return nil
	}
	db := c.db
	c.db = nil
	return MapError("close database", protect("Database.Close", db.Close), &c.cfg)
}

// acquire returns the database, opening it if needed, and counts a user.
func (c *Connector) acquire(ctx context.Context) (goadbc.Database, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("%w: connector", ErrClosed)
	}
	if c.db == nil {
		var db goadbc.Database
		err := protect("NewDatabase", func() (err error) {
			opts := c.cfg.databaseOptions()
			drv := c.cfg.Driver
			if drv == nil {
				drv = drivermgr.Driver{}
			}
			if dc, ok := drv.(goadbc.DriverWithContext); ok {
				db, err = dc.NewDatabaseWithContext(ctx, opts)
			} else {
				db, err = drv.NewDatabase(opts)
			}
			return err
		})
		if err != nil {
			what := "open database"
			if c.cfg.Driver == nil {
				what = "load C driver " + c.cfg.Library
			}
			return nil, MapError(what, err, &c.cfg)
		}
		c.db = db
	}
	c.refs++
	return c.db, nil
}

// release drops a user, closing the database after the last one when the
// connector owns it.
func (c *Connector) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refs--
	if c.refs == 0 && (c.closed || c.own) {
		return c.closeDBLocked()
	}
	return nil
}

// openADBC opens a raw ADBC connection on the database; the caller holds
// a reference (acquire) for as long as it is open.
func (c *Connector) openADBC(ctx context.Context, db goadbc.Database) (goadbc.Connection, error) {
	var cn goadbc.Connection
	err := protect("Database.Open", func() (err error) {
		cn, err = db.Open(ctx)
		return err
	})
	if err != nil {
		return nil, MapError("open connection", err, &c.cfg)
	}
	return cn, nil
}

func (c *Connector) connect(ctx context.Context) (*Conn, error) {
	db, err := c.acquire(ctx)
	if err != nil {
		return nil, err
	}
	cn, err := c.openADBC(ctx, db)
	if err != nil {
		c.release()
		return nil, err
	}
	return &Conn{c: c, cn: cn}, nil
}

// Conn is one ADBC connection as a Volley connection. Like every
// driver.Conn it is used by one goroutine at a time, except CancelServer,
// which may be called from any goroutine.
type Conn struct {
	c              *Connector
	cn             goadbc.Connection
	closeConnector *Connector // set by Driver.Open: the connector to close with the conn

	broken atomic.Bool // a driver call panicked
	closed atomic.Bool

	mu     sync.Mutex
	active *source // the query in flight, for CancelServer
}

var (
	_ driver.Driver         = Driver{}
	_ driver.DriverContext  = Driver{}
	_ driver.Connector      = (*Connector)(nil)
	_ driver.Conn           = (*Conn)(nil)
	_ driver.Validator      = (*Conn)(nil)
	_ driver.ServerCanceler = (*Conn)(nil)
	_ driver.Partitioner    = (*Conn)(nil)
	_ driver.Wrapper        = (*Conn)(nil)
)

// ADBC returns the underlying ADBC connection. It stays owned by the Conn.
func (c *Conn) ADBC() goadbc.Connection { return c.cn }

// Unwrap returns the underlying ADBC connection (see driver.As).
func (c *Conn) Unwrap() any { return c.cn }

// IsValid reports whether the connection may be reused: false after a
// driver panic or Close.
func (c *Conn) IsValid() bool { return !c.broken.Load() && !c.closed.Load() }

// CancelServer cancels the query in flight, if any.
func (c *Conn) CancelServer(ctx context.Context) error {
	c.mu.Lock()
	s := c.active
	c.mu.Unlock()
	if s != nil {
		s.interrupt(context.Canceled)
	}
	return nil
}

// Close closes the connection (and, for a connector-owned database, the
// database after its last connection). It is idempotent.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := MapError("close connection", protect("Connection.Close", c.cn.Close), &c.c.cfg)
	if rerr := c.c.release(); err == nil {
		err = rerr
	}
	if c.closeConnector != nil {
		if cerr := c.closeConnector.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Query prepares req on a new statement and returns its result as a
// Source; nothing runs until the Source's Schema.
func (c *Conn) Query(ctx context.Context, req *driver.Request) (async.Source, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("%w: connection", ErrClosed)
	}
	if c.c.cfg.Partitions > 0 {
		return c.newMerge(ctx, req)
	}
	st, err := c.newStatement(ctx, req)
	if err != nil {
		return nil, err
	}
	return c.newSource(st, req), nil
}

// newStatement creates a statement with req's SQL, options and
// parameters.
func (c *Conn) newStatement(ctx context.Context, req *driver.Request) (goadbc.Statement, error) {
	cfg := &c.c.cfg
	var st goadbc.Statement
	err := c.protect("Connection.NewStatement", func() (err error) {
		st, err = c.cn.NewStatement()
		return err
	})
	if err != nil {
		return nil, MapError("new statement", err, cfg)
	}
	fail := func(op string, err error) (goadbc.Statement, error) {
		c.protect("Statement.Close", st.Close)
		return nil, MapError(op, err, cfg)
	}
	for k, v := range cfg.StatementOptions {
		if err := c.protect("Statement.SetOption", func() error { return st.SetOption(k, v) }); err != nil {
			return fail("set statement option "+k, err)
		}
	}
	if err := c.protect("Statement.SetSqlQuery", func() error { return st.SetSqlQuery(req.SQL) }); err != nil {
		return fail("set query", err)
	}
	if len(req.Args) > 0 {
		rec, err := ParamRecord(cfg.Allocator, req.Args)
		if err != nil {
			return fail("bind", err)
		}
		defer rec.Release()
		if err := c.protect("Statement.Prepare", func() error { return st.Prepare(ctx) }); err != nil {
			return fail("prepare", err)
		}
		if err := c.protect("Statement.Bind", func() error { return st.Bind(ctx, rec) }); err != nil {
			return fail("bind", err)
		}
	}
	return st, nil
}

// protect is the package's protect, marking the connection broken after a
// panic.
func (c *Conn) protect(op string, fn func() error) error {
	err := protect(op, fn)
	if err != nil && isPanic(err) {
		c.broken.Store(true)
	}
	return err
}

func (c *Conn) setActive(s *source) {
	c.mu.Lock()
	c.active = s
	c.mu.Unlock()
}

func (c *Conn) clearActive(s *source) {
	c.mu.Lock()
	if c.active == s {
		c.active = nil
	}
	c.mu.Unlock()
}
