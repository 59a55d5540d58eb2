package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
)

// DefaultBatchBytes is the batch size bound used when a Request leaves
// BatchBytes zero (the driver pool normally fills it).
const DefaultBatchBytes = 16 << 20

// Timings of the cancel path.
const (
	// cancelTimeout bounds sending one CancelRequest.
	cancelTimeout = 5 * time.Second
	// drainGrace is how long a cancelled query may take to finish before
	// the connection is closed instead (and reported invalid).
	drainGrace = 10 * time.Second
)

// source is one query's result. Lifecycle (one goroutine at a time, per
// async.Source): Schema → Next* → Close. The COPY path starts a goroutine
// at the first Next that runs pgconn.CopyTo; it owns the batcher, hands
// finished batches over an unbuffered channel and ends when CopyTo
// returns; Close waits for it.
type source struct {
	c    *Conn
	sql  string
	args []any
	maxB int64
	maxR int64

	described bool
	schema    *arrow.Schema
	fields    []pgconn.FieldDescription
	types     []*pgType
	typmods   []int32
	paramOIDs []uint32
	useCopy   bool

	started bool
	done    bool // end of stream or error delivered
	closed  bool
	err     error // sticky error

	// COPY path.
	out      chan arrow.RecordBatch
	want     chan struct{} // a Next after the first asks for one more batch
	stop     chan struct{}
	copyDone chan struct{}
	copyErr  error // set before copyDone is closed
	// copyNoData reports that the COPY failed before any data (set with
	// copyErr).
	copyNoData bool
	stopOnce   sync.Once
	stopFlag   atomic.Bool // set with stop, read by the COPY writer

	// Extended path.
	rr *pgconn.ResultReader
	b  *batcher

	// interrupts are goroutines sending CancelRequests; Close waits.
	interrupts sync.WaitGroup
}

func newSource(c *Conn, req *driver.Request) *source {
	maxB := req.BatchBytes
	if maxB <= 0 {
		maxB = DefaultBatchBytes
	}
	return &source{c: c, sql: req.SQL, args: req.Args, maxB: maxB, maxR: req.BatchRows}
}

// Unwrap returns the connection, so driver.As finds its capabilities.
func (s *source) Unwrap() any { return s.c }

// copyable reports whether sql can be wrapped in COPY (...) TO STDOUT: its
// first keyword (after comments and parentheses) is SELECT, WITH, VALUES or
// TABLE.
func copyable(sql string) bool {
	kw := firstKeyword(sql)
	switch kw {
	case "SELECT", "WITH", "VALUES", "TABLE":
		return true
	}
	return false
}

func firstKeyword(sql string) string {
	i := 0
	for i < len(sql) {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '(':
			i++
		case strings.HasPrefix(sql[i:], "--"):
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				return ""
			}
			i += j + 1
		case strings.HasPrefix(sql[i:], "/*"):
			depth := 0
			for i < len(sql) {
				if strings.HasPrefix(sql[i:], "/*") {
					depth++
					i += 2
				} else if strings.HasPrefix(sql[i:], "*/") {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
		default:
			j := i
			for j < len(sql) && (sql[j] >= 'a' && sql[j] <= 'z' || sql[j] >= 'A' && sql[j] <= 'Z') {
				j++
			}
			return strings.ToUpper(sql[i:j])
		}
	}
	return ""
}

// Schema describes the statement without executing it.
func (s *source) Schema(ctx context.Context) (*arrow.Schema, error) {
	if s.described {
		return s.schema, nil
	}
	pg := s.c.pg
	if s.c.closed {
		return nil, fmt.Errorf("postgres: %w", driver.ErrClosed)
	}
	// pgconn closes the connection when an operation's ctx ends; run with
	// Background and turn ctx's end into CancelRequests instead, so that a
	// cancelled describe leaves the connection usable.
	stop := s.watch(ctx)
	sd, err := pg.Prepare(context.Background(), "", s.sql, nil)
	if err == nil {
		oids := make([]uint32, len(sd.Fields))
		for i, f := range sd.Fields {
			oids[i] = f.DataTypeOID
		}
		err = s.c.cat.resolve(context.Background(), pg, oids)
	}
	stop()
	if err != nil {
		return nil, s.ctxErr(ctx, s.c.wrap("describe", err))
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("postgres: %w", context.Cause(ctx))
	}
	fs := make([]arrow.Field, len(sd.Fields))
	s.types = make([]*pgType, len(sd.Fields))
	s.typmods = make([]int32, len(sd.Fields))
	for i, f := range sd.Fields {
		t := s.c.cat.lookup(f.DataTypeOID)
		s.types[i], s.typmods[i] = t, f.TypeModifier
		fs[i] = arrow.Field{Name: f.Name, Type: arrowType(t, f.TypeModifier, &s.c.cfg, 0), Nullable: true,
			Metadata: fieldMeta(t, f.TypeModifier)}
	}
	s.fields = sd.Fields
	s.paramOIDs = sd.ParamOIDs
	s.schema = arrow.NewSchema(fs, nil)
	s.useCopy = len(s.args) == 0 && len(sd.ParamOIDs) == 0 && len(sd.Fields) > 0 && copyable(s.sql)
	switch firstKeyword(s.sql) {
	case "CREATE", "ALTER", "DROP":
		s.c.cat.invalidate() // the statement may change types we cached
	}
	s.described = true
	return s.schema, nil
}

// ctxErr prefers the context's cause when ctx ended (the error then is the
// consequence of the cancellation).
func (s *source) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("postgres: %w", context.Cause(ctx))
	}
	return err
}

// Next returns the next batch, or io.EOF after the last.
func (s *source) Next(ctx context.Context) (async.Batch, error) {
	if s.closed {
		return async.Batch{}, async.ErrReleased
	}
	if s.err != nil {
		return async.Batch{}, s.err
	}
	if s.done {
		return async.Batch{}, io.EOF
	}
	if !s.described {
		if _, err := s.Schema(ctx); err != nil {
			s.err = err
			return async.Batch{}, err
		}
	}
	var rec arrow.RecordBatch
	var err error
	if s.useCopy {
		rec, err = s.nextCopy(ctx)
	} else {
		rec, err = s.nextExtended(ctx)
	}
	if err != nil {
		if err != io.EOF {
			s.err = err
		}
		s.done = true
		return async.Batch{}, err
	}
	return async.Batch{Record: rec}, nil
}

// --- COPY path ---

func (s *source) startCopy() error {
	b, err := newBatcher(s.c.mem, s.schema, s.types, s.typmods, &s.c.cfg, s.maxR, s.maxB)
	if err != nil {
		return err
	}
	s.out = make(chan arrow.RecordBatch)
	s.want = make(chan struct{}, 1)
	s.stop = make(chan struct{})
	s.copyDone = make(chan struct{})
	stopped := false
	send := func(rec arrow.RecordBatch) error {
		if stopped {
			rec.Release()
			return nil
		}
		select {
		case s.out <- rec:
			return nil
		case <-s.stop:
			rec.Release()
			stopped = true
			return nil
		}
	}
	p := &copyParser{b: b, ncols: len(s.fields)}
	p.full = func() error { return send(b.flush()) }
	p.resume = func() error {
		// Decode the next batch only once it is asked for: the consumer's
		// read-ahead (a Reader's window) is the pipeline, and the adapter
		// adds no batch of its own to it. Meanwhile the socket fills and
		// TCP back-pressure pauses the server. (The end of the data needs
		// no asking: it closes copyDone, which Ended hands the runtime.)
		if stopped {
			return nil
		}
		select {
		case <-s.want:
		case <-s.stop:
			stopped = true
		}
		return nil
	}
	w := &stopWriter{p: p, stop: &s.stopFlag, cancel: s.interrupt}
	// The newline ends a trailing -- comment.
	sql := "COPY (" + trimStatement(s.sql) + "\n) TO STDOUT (FORMAT binary)"
	pg, cc := s.c.pg, s.c.cc
	go func() {
		defer close(s.copyDone)
		defer close(s.out)
		defer b.release()
		// The context is Background: cancellation goes through
		// CancelRequest and the drain, so the connection survives it.
		if cc != nil {
			cc.arm(w) // pgconn then sees no CopyData; w gets them off the wire
		}
		_, err := pg.CopyTo(context.Background(), w, sql)
		if cc != nil {
			cc.disarm()
		}
		if w.failed != nil && (err == nil || sqlState(err) == "57014") {
			err = w.failed
		}
		if err == nil && !w.stopped {
			err = p.finish()
		}
		if err == nil && !w.stopped {
			if rec := b.flush(); rec != nil {
				err = send(rec)
			}
		}
		if err != nil {
			s.copyErr = err
			s.copyNoData = p.state == 0
		}
	}()
	return nil
}

// stopWriter feeds the parser until stop is closed, then discards the rest
// of the stream (the drain after a CancelRequest).
//
// A decode error does not fail the Write (pgconn would close the
// connection): the writer keeps it, asks the server to cancel and drains,
// so the connection survives a bad value.
type stopWriter struct {
	p       *copyParser
	stop    *atomic.Bool
	stopped bool  // latched by the COPY goroutine
	failed  error // the decode error that stopped the parse
	cancel  func()
}

func (w *stopWriter) Write(b []byte) (int, error) {
	if w.stopped || w.stop.Load() {
		w.stopped = true
		return len(b), nil
	}
	if _, err := w.p.Write(b); err != nil {
		w.failed, w.stopped = err, true
		w.cancel()
	}
	return len(b), nil
}

// writeRun takes whole CopyData messages off the front of b for a
// copyReader (runWriter) and returns their total size.
func (w *stopWriter) writeRun(b []byte) int {
	return eachCopyData(b, func(payload []byte) { _, _ = w.Write(payload) })
}

func trimStatement(sql string) string {
	return strings.TrimRight(strings.TrimSpace(sql), "; \t\r\n")
}

func (s *source) nextCopy(ctx context.Context) (arrow.RecordBatch, error) {
	if !s.started {
		s.started = true
		if err := s.startCopy(); err != nil {
			return nil, err
		}
	} else {
		select {
		case s.want <- struct{}{}:
		default: // asked already by a Next that ended with its context
		}
	}
	select {
	case rec, ok := <-s.out:
		if ok {
			return rec, nil
		}
		<-s.copyDone
		if s.copyErr != nil {
			if s.copyNoData && sqlState(s.copyErr) == "42601" {
				// The statement is valid (it was described) but COPY
				// cannot wrap it (e.g. a trailing comment after a
				// semicolon): run it through the extended protocol.
				s.useCopy, s.started = false, false
				return s.nextExtended(ctx)
			}
			return nil, s.c.wrap("query", s.copyErr)
		}
		return nil, io.EOF
	case <-ctx.Done():
		s.interrupt()
		return nil, fmt.Errorf("postgres: %w", context.Cause(ctx))
	}
}

// Ended implements async.EndNotifier. Once a COPY has started, copyDone
// closes when its goroutine is done, after which Next returns the end
// (io.EOF) or the error at once. On the extended path the end is known
// once the result reader is done (the last batch was a partial one, or an
// error ended it).
func (s *source) Ended() <-chan struct{} {
	switch {
	case !s.started:
		return nil
	case s.useCopy:
		return s.copyDone
	case s.rr == nil || s.err != nil:
		return closedChan
	}
	return nil
}

// closedChan is a closed channel: an end already known.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// --- Extended path ---

func (s *source) encodeArgs() ([][]byte, []int16, error) {
	if len(s.args) != len(s.paramOIDs) {
		return nil, nil, fmt.Errorf("%w: postgres: statement has %d parameters, got %d arguments",
			async.ErrInvalid, len(s.paramOIDs), len(s.args))
	}
	vals := make([][]byte, len(s.args))
	formats := make([]int16, len(s.args))
	for i, a := range s.args {
		oid := s.paramOIDs[i]
		f := s.c.tm.FormatCodeForOID(oid)
		buf, err := s.c.tm.Encode(oid, f, a, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: postgres: parameter $%d: %v", async.ErrInvalid, i+1, err)
		}
		vals[i], formats[i] = buf, f
	}
	return vals, formats, nil
}

func (s *source) nextExtended(ctx context.Context) (arrow.RecordBatch, error) {
	if !s.started {
		s.started = true
		vals, formats, err := s.encodeArgs()
		if err != nil {
			return nil, err
		}
		b, err := newBatcher(s.c.mem, s.schema, s.types, s.typmods, &s.c.cfg, s.maxR, s.maxB)
		if err != nil {
			return nil, err
		}
		s.b = b
		results := make([]int16, len(s.fields))
		for i := range results {
			results[i] = 1
		}
		// ExecParams blocks until the server flushes the row description,
		// which may be after a long execution: watch ctx already.
		stop := s.watch(ctx)
		s.rr = s.c.pg.ExecParams(context.Background(), s.sql, vals, s.paramOIDs, formats, results)
		stop()
		if fds := s.rr.FieldDescriptions(); len(fds) != len(s.fields) && len(s.fields) > 0 {
			_, err := s.rr.Close()
			s.rr = nil
			if err != nil {
				return nil, s.c.wrap("query", err)
			}
			return nil, fmt.Errorf("%w: postgres: result has %d columns, described %d (schema changed?)",
				async.ErrProtocol, len(fds), len(s.fields))
		}
	}
	if s.rr == nil {
		return nil, io.EOF
	}
	// A blocking read honours ctx through a CancelRequest.
	stop := s.watch(ctx)
	defer stop()
	for s.rr.NextRow() {
		vals := s.rr.Values()
		if len(vals) != len(s.fields) {
			return nil, fmt.Errorf("%w: postgres: row has %d values, want %d", async.ErrProtocol, len(vals), len(s.fields))
		}
		for i, v := range vals {
			if err := s.b.add(i, v); err != nil {
				return nil, err
			}
		}
		if s.b.endRow() {
			return s.b.flush(), nil
		}
	}
	_, err := s.rr.Close()
	s.rr = nil
	if err != nil {
		s.b.release()
		return nil, s.ctxErr(ctx, s.c.wrap("query", err))
	}
	if ctx.Err() != nil {
		s.b.release()
		return nil, fmt.Errorf("postgres: %w", context.Cause(ctx))
	}
	rec := s.b.flush()
	s.b.release()
	if rec == nil {
		return nil, io.EOF
	}
	return rec, nil
}

// watch cancels the query on the server when ctx ends during a blocking
// read; the returned func stops watching (and ends the cancel loop).
func (s *source) watch(ctx context.Context) func() {
	if ctx.Done() == nil {
		return func() {}
	}
	done := make(chan struct{})
	s.interrupts.Add(1)
	stop := context.AfterFunc(ctx, func() {
		defer s.interrupts.Done()
		s.cancelUntil(done)
	})
	return func() {
		close(done)
		if stop() {
			s.interrupts.Done()
		}
	}
}

// interrupt runs cancelUntil(copyDone) on its own goroutine (Close waits).
func (s *source) interrupt() {
	s.interrupts.Add(1)
	go func() {
		defer s.interrupts.Done()
		s.cancelUntil(s.copyDone)
	}()
}

// cancelUntil sends CancelRequests until done is closed. A CancelRequest
// that reaches the backend before it started the statement is ignored by
// the server, so it is repeated with backoff (50ms, 100ms, ... 1s); after
// drainGrace the connection is closed instead, and reported invalid.
// Every request has completed (the server signalled the backend) when it
// returns, so no late cancel can hit the connection's next statement.
func (s *source) cancelUntil(done <-chan struct{}) {
	deadline := time.Now().Add(drainGrace)
	delay := 50 * time.Millisecond
	for {
		s.sendCancel()
		t := time.NewTimer(delay)
		select {
		case <-done:
			t.Stop()
			return
		case <-t.C:
		}
		if time.Now().After(deadline) {
			s.c.broken.Store(true)
			_ = s.c.pg.Conn().Close()
			return
		}
		delay = min(2*delay, time.Second)
	}
}

func (s *source) sendCancel() {
	ctx, cancel := context.WithTimeout(context.Background(), cancelTimeout)
	defer cancel()
	_ = s.c.pg.CancelRequest(ctx)
}

func (s *source) stopCopy() {
	s.stopOnce.Do(func() {
		s.stopFlag.Store(true)
		close(s.stop)
	})
}

// running reports whether the query is still in flight on the server.
func (s *source) running() bool {
	if !s.started {
		return false
	}
	if s.useCopy {
		select {
		case <-s.copyDone:
			return false
		default:
			return true
		}
	}
	return s.rr != nil
}

// Close stops the query if it is still running (CancelRequest, then drain
// for up to drainGrace, then close the connection) and frees everything.
// It is idempotent. It returns nil for a cancelled query; the connection's
// IsValid tells whether it survived.
func (s *source) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.running() {
		if s.useCopy {
			s.stopCopy()
			s.cancelUntil(s.copyDone)
			<-s.copyDone
			if e := s.copyErr; e != nil && sqlState(e) != "57014" {
				err = s.c.wrap("cancel", e)
			}
		} else {
			done := make(chan struct{})
			s.interrupts.Add(1)
			go func() {
				defer s.interrupts.Done()
				s.cancelUntil(done)
			}()
			_, e := s.rr.Close()
			close(done)
			s.rr = nil
			if e != nil && sqlState(e) != "57014" {
				err = s.c.wrap("cancel", e)
			}
		}
	} else if s.useCopy && s.started {
		s.stopCopy()
		<-s.copyDone
	}
	if s.b != nil {
		s.b.release()
	}
	s.interrupts.Wait()
	if s.c.pg.IsClosed() {
		s.c.broken.Store(true)
	}
	if err != nil && errors.Is(err, context.Canceled) {
		err = nil
	}
	if err != nil && !s.c.IsValid() {
		return nil // the connection is gone; the error was reported by Next or is moot
	}
	return err
}
