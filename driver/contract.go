package driver

import (
	"context"

	"github.com/volleyhq/volley/async"
)

// Driver opens connections to one kind of database. Adapters register a
// Driver under a name with [Register]; it must be safe for concurrent use.
type Driver interface {
	// Open parses dsn and opens one connection. Errors must not contain
	// secrets from the DSN (passwords, tokens).
	Open(ctx context.Context, dsn string) (Conn, error)
}

// DriverContext is an optional interface of a [Driver]: it parses a DSN once
// into a [Connector], which the pool then uses for every connection.
type DriverContext interface {
	OpenConnector(dsn string) (Connector, error)
}

// Connector opens connections from typed configuration, bypassing DSN
// strings ([OpenDB] takes one). It must be safe for concurrent use.
type Connector interface {
	Connect(ctx context.Context) (Conn, error)
	// Driver returns the driver the connector belongs to.
	Driver() Driver
}

// Conn is one connection. The pool uses a Conn from one goroutine at a time:
// Query, then the returned Source until its Close has returned, then maybe
// another Query, and finally Close.
type Conn interface {
	// Query prepares req and returns its result as a Source. Nothing need be
	// executed yet: the Source's Schema describes the statement (the Arrow
	// schema before any row is read) and its first Next runs it. Parameters
	// in req.Args are always bound, never interpolated into the SQL.
	Query(ctx context.Context, req *Request) (async.Source, error)
	// Close closes the connection. It is idempotent.
	Close() error
}

// Request is one statement to run, as the pool hands it to a [Conn].
type Request struct {
	// SQL is the statement text; parameters are referred to with the
	// database's own placeholders ($1 for PostgreSQL, ? for most ADBC
	// drivers).
	SQL string
	// Args are the bound parameters.
	Args []any
	// BatchBytes bounds each batch's buffer size in bytes (a batch may
	// exceed it by one row); never zero here: the pool fills the default.
	BatchBytes int64
	// BatchRows bounds each batch's row count; 0 means no row bound.
	BatchRows int64
}

// The optional capabilities below are found by type assertion on a Conn
// (through any wrapper that implements [Wrapper]; see [As]).

// Estimator is an optional interface of a [Conn]: an estimate of a query's
// result size, for placement. It is only called when the policy asks.
type Estimator interface {
	Estimate(ctx context.Context, req *Request) (Estimate, error)
}

// Estimate is an adapter's guess of a result's size.
type Estimate struct {
	Rows  int64
	Bytes int64
}

// Validator is an optional interface of a [Conn]: IsValid reports whether the
// connection may be reused. The pool asks after every query; a connection
// that saw a protocol error or a cancel it could not drain reports false and
// is discarded.
type Validator interface {
	IsValid() bool
}

// Pinger is an optional interface of a [Conn]: a health check the pool runs
// on reuse after the connection sat idle.
type Pinger interface {
	Ping(ctx context.Context) error
}

// SessionResetter is an optional interface of a [Conn]: reset session state
// before the connection is reused.
type SessionResetter interface {
	ResetSession(ctx context.Context) error
}

// ServerCanceler is an optional interface of a [Conn]: cancel the statement
// running on the server from another goroutine (PostgreSQL's CancelRequest,
// ADBC's statement cancel). A Source's Close cancels too; this is for
// cancelling while a call is blocked.
type ServerCanceler interface {
	CancelServer(ctx context.Context) error
}

// Partitioner is an optional interface of a [Conn]: run a query as several
// partitions that can be read in parallel (ADBC's ExecutePartitions).
type Partitioner interface {
	QueryPartitions(ctx context.Context, req *Request) (Partitions, error)
}

// Partitions is a partitioned result: a schema and the partitions' handles,
// each readable once on a connection of the same database.
type Partitions interface {
	// Count is the number of partitions.
	Count() int
	// Read returns partition i's result on conn (which may be a different
	// connection from the one that planned the query).
	Read(ctx context.Context, conn Conn, i int) (async.Source, error)
	// Close releases the plan.
	Close() error
}

// DeviceProducer is an optional interface of a [Conn]: the adapter yields
// batches already on a device (async.Batch.Device) for these device types.
type DeviceProducer interface {
	NativeDevices() []async.DeviceType
}

// Transactor is an optional interface of a [Conn]: transactions.
type Transactor interface {
	Begin(ctx context.Context) (Tx, error)
}

// Tx is an open transaction on one connection.
type Tx interface {
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Wrapper is implemented by a Conn (or Source) that wraps another; [As] walks
// Unwrap so wrappers never hide a capability.
type Wrapper interface {
	Unwrap() any
}

// As finds the first value in v's Unwrap chain that implements T.
func As[T any](v any) (T, bool) {
	for v != nil {
		if t, ok := v.(T); ok {
			return t, true
		}
		w, ok := v.(Wrapper)
		if !ok {
			break
		}
		v = w.Unwrap()
	}
	var zero T
	return zero, false
}
