package adbc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"time"

	goadbc "github.com/apache/arrow-adbc/go/adbc"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
)

// StatementCanceler is an optional interface of an adbc.Statement (ADBC
// 1.1's AdbcStatementCancel, which the Go interfaces of v1.12 do not
// name): cancel the statement's execution from another goroutine. Go
// drivers that have it get it called on cancellation; C drivers loaded
// through the driver manager get AdbcStatementCancel either way.
type StatementCanceler interface {
	Cancel() error
}

// source is one query's result on one statement: the async.Source that
// Conn.Query returns. The runtime calls Schema, Next and Close from one
// goroutine at a time; interrupt may come from any goroutine.
//
// Lifecycle: new -> Schema (ExecuteSchema, or ExecuteQuery) -> Next...
// (ExecuteQuery at the first Next when not yet run; then one reader Next
// per batch, or a slice of a batch already read) -> Close (cancel when not
// drained, release the reader, close the statement).
type source struct {
	conn *Conn
	cfg  *Config
	st   goadbc.Statement
	cst  *cStatement // the C statement behind st, or nil
	req  *driver.Request

	// execCtx is the statement's context for drivers that honour one (Go
	// drivers keep using the context of ExecuteQuery while the reader
	// streams); it ends with interrupt and Close.
	execCtx    context.Context
	execCancel context.CancelCauseFunc

	schema  *arrow.Schema
	rdr     array.RecordReader
	eof     bool
	slicer  slicer // a batch being handed out in slices
	partial bool   // partition source: no statement to own

	mu     sync.Mutex // guards closed against interrupt
	closed bool
}

func (c *Conn) newSource(st goadbc.Statement, req *driver.Request) *source {
	ctx, cancel := context.WithCancelCause(context.Background())
	s := &source{conn: c, cfg: &c.c.cfg, st: st, cst: cStatementOf(st), req: req,
		execCtx: ctx, execCancel: cancel}
	c.setActive(s)
	return s
}

// interrupt cancels the statement's work: its context and, where the
// driver has one, its cancel function. It is safe from any goroutine and
// does nothing once Close has begun.
func (s *source) interrupt(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.execCancel(cause)
	s.cancelStatementLocked()
}

// cancelStatementLocked calls the driver's statement cancel, if it has one.
// s.mu is held.
func (s *source) cancelStatementLocked() {
	if s.st == nil {
		return
	}
	switch {
	case s.cst != nil:
		_ = protect("StatementCancel", s.cst.cancel)
	default:
		if c, ok := s.st.(StatementCanceler); ok {
			_ = protect("Statement.Cancel", c.Cancel)
		}
	}
}

// watch interrupts the statement if ctx ends before the returned stop is
// called.
func (s *source) watch(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() { s.interrupt(context.Cause(ctx)) })
}

// ended returns whichever of ctx and the statement's own context has
// ended (the latter after interrupt, e.g. CancelServer), preferring ctx;
// ctx itself when neither has.
func (s *source) ended(ctx context.Context) context.Context {
	if ctx.Err() == nil && s.execCtx.Err() != nil {
		return s.execCtx
	}
	return ctx
}

// Schema describes the result before any row is read: ExecuteSchema where
// the statement supports it, else the reader's schema once ExecuteQuery
// has returned.
func (s *source) Schema(ctx context.Context) (*arrow.Schema, error) {
	if c := s.ended(ctx); c.Err() != nil {
		return nil, fmt.Errorf("adbc: schema: %w", context.Cause(c))
	}
	if s.schema != nil {
		return s.schema, nil
	}
	if sc, err := s.executeSchema(ctx); err == nil && sc != nil {
		s.schema = sc
		return sc, nil
	} else if cerr := ctxError(s.ended(ctx), "schema", err, s.cfg); cerr != nil {
		return nil, cerr
	}
	// ExecuteSchema is missing or failed (some statements cannot be
	// described, e.g. with parameters): execute, and report that error.
	if err := s.execute(ctx); err != nil {
		return nil, err
	}
	s.schema = s.rdr.Schema()
	return s.schema, nil
}

// executeSchema asks the statement for its result schema.
func (s *source) executeSchema(ctx context.Context) (sc *arrow.Schema, err error) {
	stop := s.watch(ctx)
	defer stop()
	err = s.conn.protect("Statement.ExecuteSchema", func() (err error) {
		switch st := s.st.(type) {
		case goadbc.StatementExecuteSchema:
			sc, err = st.ExecuteSchema(s.execCtx)
		default:
			if s.cst == nil {
				return goadbc.Error{Code: goadbc.StatusNotImplemented}
			}
			sc, err = s.cst.executeSchema()
		}
		return err
	})
	return sc, err
}

// whileRunning runs fn, a driver call that may run the statement. A driver
// may drop a cancel that reaches it just before its statement starts
// running (DuckDB does), so if the statement's context ends while fn runs
// the driver's cancel is repeated, with backoff, until fn returns. The
// retrying goroutine is this call's: it ends before whileRunning returns.
func (s *source) whileRunning(fn func()) {
	running, retried := make(chan struct{}), make(chan struct{})
	stop := context.AfterFunc(s.execCtx, func() {
		defer close(retried)
		for d := time.Millisecond; ; d = min(2*d, 100*time.Millisecond) {
			t := time.NewTimer(d)
			select {
			case <-running:
				t.Stop()
				return
			case <-t.C:
			}
			s.mu.Lock()
			if !s.closed {
				s.cancelStatementLocked()
			}
			s.mu.Unlock()
		}
	})
	fn()
	close(running)
	if !stop() {
		<-retried
	}
}

// execute runs the query and keeps its reader.
func (s *source) execute(ctx context.Context) error {
	stop := s.watch(ctx)
	defer stop()
	if c := s.ended(ctx); c.Err() != nil {
		return fmt.Errorf("adbc: execute: %w", context.Cause(c))
	}
	var (
		rdr array.RecordReader
		err error
	)
	s.whileRunning(func() {
		err = s.conn.protect("Statement.ExecuteQuery", func() (err error) {
			rdr, _, err = s.st.ExecuteQuery(s.execCtx)
			return err
		})
	})
	if cerr := ctxError(s.ended(ctx), "execute", err, s.cfg); cerr != nil {
		if rdr != nil {
			s.conn.protect("RecordReader.Release", func() error { rdr.Release(); return nil })
		}
		return cerr
	}
	if err != nil {
		return MapError("execute", err, s.cfg)
	}
	if rdr == nil {
		return &async.Error{Code: async.EPROTO, Message: "adbc: execute: the driver returned no reader", Err: async.ErrProtocol}
	}
	s.rdr = rdr
	if s.schema != nil && !sameSchema(s.schema, rdr.Schema()) {
		return &async.Error{Code: async.EPROTO,
			Message: fmt.Sprintf("adbc: execute: the result's schema %s differs from the described %s", rdr.Schema(), s.schema),
			Err:     ErrSchemaMismatch}
	}
	return nil
}

// sameSchema compares field names, types and nullability, ignoring
// metadata (drivers attach different metadata to described and executed
// schemas).
func sameSchema(a, b *arrow.Schema) bool {
	if a.NumFields() != b.NumFields() {
		return false
	}
	for i := range a.NumFields() {
		fa, fb := a.Field(i), b.Field(i)
		if fa.Name != fb.Name || !arrow.TypeEqual(fa.Type, fb.Type) {
			return false
		}
	}
	return true
}

// Next returns the next batch: a slice of the batch being handed out, or
// the reader's next batch, pulled only now.
func (s *source) Next(ctx context.Context) (async.Batch, error) {
	if c := s.ended(ctx); c.Err() != nil {
		return async.Batch{}, fmt.Errorf("adbc: next: %w", context.Cause(c))
	}
	if s.rdr == nil && !s.eof {
		if err := s.execute(ctx); err != nil {
			return async.Batch{}, err
		}
	}
	if s.slicer.pending() {
		return async.Batch{Record: s.slicer.next()}, nil
	}
	if s.eof {
		return async.Batch{}, io.EOF
	}
	var (
		ok  bool
		rec arrow.RecordBatch
		err error
	)
	stop := s.watch(ctx)
	if c := s.ended(ctx); c.Err() != nil {
		// interrupted between the check above and the watch: the driver's
		// cancel may have come before the read, so do not start it
		stop()
		return async.Batch{}, fmt.Errorf("adbc: next: %w", context.Cause(c))
	}
	var perr error
	s.whileRunning(func() {
		perr = s.conn.protect("RecordReader.Next", func() error {
			ok = s.rdr.Next()
			if ok {
				rec = s.rdr.RecordBatch()
				rec.Retain()
			} else {
				err = s.rdr.Err()
			}
			return nil
		})
	})
	stop()
	if perr != nil {
		err = perr
	}
	if cerr := ctxError(s.ended(ctx), "next", err, s.cfg); cerr != nil {
		if rec != nil {
			rec.Release()
		}
		return async.Batch{}, cerr
	}
	if err != nil {
		return async.Batch{}, readError(err, s.cfg)
	}
	if !ok {
		s.eof = true
		return async.Batch{}, io.EOF
	}
	if rec, err = s.conform(rec); err != nil {
		return async.Batch{}, err
	}
	return async.Batch{Record: s.slicer.start(rec, s.req)}, nil
}

// conform returns rec with exactly the described schema (N6): the same
// record when it already has it, else the same columns under the described
// schema when they only differ in metadata or nullability, else an error.
// It takes ownership of rec.
func (s *source) conform(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	if s.schema == nil || rec.Schema().Equal(s.schema) {
		return rec, nil
	}
	defer rec.Release()
	if !sameSchema(s.schema, rec.Schema()) {
		return nil, &async.Error{Code: async.EPROTO,
			Message: "adbc: read: a batch does not match the result's schema", Err: ErrSchemaMismatch}
	}
	return array.NewRecordBatch(s.schema, rec.Columns(), rec.NumRows()), nil
}

// slicer hands out a batch in slices that respect a request's BatchRows
// and BatchBytes bounds. Slices share the batch's buffers.
type slicer struct {
	rec   arrow.RecordBatch // the batch being handed out, nil when none
	off   int64             // rows already handed out
	limit int64             // rows per slice
}

// start returns rec itself when it is within req's bounds, else its first
// slice, keeping the rest for next. It takes ownership of rec.
func (sl *slicer) start(rec arrow.RecordBatch, req *driver.Request) arrow.RecordBatch {
	limit := sliceRows(rec, req)
	if limit <= 0 || rec.NumRows() <= limit {
		return rec
	}
	sl.rec, sl.off, sl.limit = rec, 0, limit
	return sl.next()
}

// pending reports whether slices are left.
func (sl *slicer) pending() bool { return sl.rec != nil }

// next returns the next slice.
func (sl *slicer) next() arrow.RecordBatch {
	end := min(sl.off+sl.limit, sl.rec.NumRows())
	out := sl.rec.NewSlice(sl.off, end)
	sl.off = end
	if end == sl.rec.NumRows() {
		sl.release()
	}
	return out
}

// release drops what is left.
func (sl *slicer) release() {
	if sl.rec != nil {
		sl.rec.Release()
		sl.rec = nil
	}
}

// sliceRows is the row bound for batches like rec: the request's
// BatchRows, tightened so that a slice stays within BatchBytes; 0 when
// there is no bound.
func sliceRows(rec arrow.RecordBatch, req *driver.Request) int64 {
	if req == nil || rec.NumRows() <= 1 {
		return 0
	}
	limit := req.BatchRows
	if req.BatchBytes > 0 {
		if b := async.RecordBytes(rec); b > req.BatchBytes {
			n := max(1, rec.NumRows()*req.BatchBytes/b)
			if limit == 0 || n < limit {
				limit = n
			}
		}
	}
	return limit
}

// Close stops the query when it has not been drained, releases the reader
// and closes the statement. It is called once, by the runtime.
func (s *source) Close() error {
	if !s.eof && (s.rdr != nil || s.schema != nil) {
		s.interrupt(context.Canceled)
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.execCancel(context.Canceled)
	s.conn.clearActive(s)
	s.slicer.release()
	var errs []error
	if s.rdr != nil {
		errs = append(errs, s.conn.protect("RecordReader.Release", func() error { s.rdr.Release(); return nil }))
		s.rdr = nil
	}
	if s.st != nil && !s.partial {
		if err := s.conn.protect("Statement.Close", s.st.Close); err != nil {
			errs = append(errs, MapError("close statement", err, s.cfg))
		}
		s.st = nil
	}
	return errors.Join(errs...)
}

// readError maps a reader's failure. The C stream interface reports an
// errno-like code with no meaning of its own (DuckDB returns 1 for every
// failure) beside the driver's message, so a bare errno from a C reader
// becomes EIO with that message.
func readError(err error, cfg *Config) error {
	var sys syscall.Errno
	if _, ok := adbcError(err); !ok && errors.As(err, &sys) {
		msg := strings.TrimPrefix(err.Error(), sys.Error()+": ")
		return &async.Error{Code: async.EIO, Message: scrub("adbc: read: "+msg, cfg.secrets()), Err: err}
	}
	return MapError("read", err, cfg)
}
