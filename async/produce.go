package async

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Produce turns src into a conformant producer for h and runs the stream on
// the calling goroutine until h's Release has returned.
//
// The calling goroutine (the owner) makes every handler call, so the calls
// are serialized (TH1, N1). The [Producer] handed to OnSchema touches only
// atomics in Request and wakes the owner through a 1-buffered channel with
// a non-blocking send; Cancel (and a Request(n <= 0)) also cancels the
// Source's context, which takes package context's short internal lock but
// never waits for the owner. The owner sleeps in a select while there is no
// demand, so an idle stream costs no CPU. The Producer stays safe to call
// after Release (it then does nothing), so a consumer that keeps calling
// Request on a finished stream cannot corrupt memory.
//
// Produce returns nil after a clean end of stream; an error wrapping
// [ErrRefused] when the handler refused the schema or a task (S4, N7); an
// error wrapping context.Canceled when the consumer cancelled (A2); the
// cause of ctx when ctx ended; else the [*Error] it sent through OnError. The
// Source is closed exactly once on every path, before Release.
//
// # State machine
//
//	start      Stats.MarkStart; Schema(ctx)
//	             error/panic        -> failed (OnError before OnSchema, E2)
//	             ok                 -> OnSchema(producer, schema)
//	                                     refused/panic -> released (Release only, S4)
//	                                     ok            -> running
//	running    loop, checking in this order:
//	             handler panicked             -> released (Release only)
//	             consumer Cancel              -> released (Release only, A2, X3, X4)
//	             a Request(n<=0) or a task
//	             extraction failure recorded  -> failed (R4, T5)
//	             ctx done                     -> failed (ECANCELED/ETIMEDOUT)
//	             demand == 0                  -> sleep until woken or ctx done
//	             demand > 0                   -> Next(ctx'):
//	                 io.EOF   -> Mover.Flush (a Flusher's pending copies);
//	                             a copy failure -> failed; Close; Close error -> failed; else
//	                             OnNextTask(nil) (A1: no demand needed) -> released
//	                 error    -> cancelled? released : failed
//	                 batch    -> move (opts.Mover) or pass through; demand--;
//	                             Stats.AddBatch; OnNextTask(task)
//	                                 refused/panic -> released (Release only, N7)
//	failed     Close; OnError(err) -> released
//	released   Close (if not yet); Release; Stats.MarkEnd; return
//
// ctx' is derived from ctx with a cancel cause; Cancel cancels it, so a
// Source blocked in Next returns promptly. The Source is pulled only while
// demand is positive, so it never reads ahead of the consumer: end of
// stream is therefore discovered by a pull, but it is sent at once, without
// using up demand. A Source that is an [EndNotifier] is also pulled, with
// no demand, once it says it has ended, so that its end (or error) reaches
// a consumer that asked for exactly as many batches as there were; a batch
// that pull yields after all waits for demand.
//
// A task refused by OnNextTask (or handed to a panicking OnNextTask) is
// discarded by the producer unless the handler already extracted or
// discarded it; the handler must not keep it.
func Produce(ctx context.Context, h Handler, src Source, opts ProduceOptions) error {
	if h == nil || src == nil {
		panic("async: Produce with a nil handler or source")
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	p := &producer{
		wake:   make(chan struct{}, 1),
		cancel: cancel,
		devTyp: DeviceCPU,
		md:     opts.AdditionalMetadata,
	}
	if opts.Mover != nil {
		p.devTyp = opts.Mover.Device().Type
	}
	r := run{ctx: ctx, sctx: sctx, h: h, src: src, p: p, opts: opts}
	return r.produce()
}

// errConsumerCanceled is the cause of the Source's context after the
// consumer's Cancel; Produce returns it.
var errConsumerCanceled = fmt.Errorf("async: stream cancelled by the consumer: %w", context.Canceled)

// producer is the Producer that Produce hands to OnSchema. Its methods touch
// only atomics, the cancel func and a non-blocking send on wake.
type producer struct {
	demand    atomic.Int64
	cancelled atomic.Bool
	failure   atomic.Pointer[Error] // first error met outside the owner (R4, T5)
	wake      chan struct{}
	cancel    context.CancelCauseFunc
	devTyp    DeviceType
	md        arrow.Metadata
}

func (p *producer) DeviceType() DeviceType             { return p.devTyp }
func (p *producer) AdditionalMetadata() arrow.Metadata { return p.md }

// Request adds n to the demand, saturating at math.MaxInt64 (R1). n <= 0
// records an EINVAL failure the owner reports through OnError (R4). After
// Cancel it does nothing (R3).
func (p *producer) Request(n int64) {
	if p.cancelled.Load() {
		return
	}
	if n <= 0 {
		p.fail(Errorf(EINVAL, "request(%d): n must be positive: %w", n, ErrInvalid))
		return
	}
	for {
		old := p.demand.Load()
		next := old + n
		if next < old { // overflow: demand is unbounded anyway
			next = math.MaxInt64
		}
		if p.demand.CompareAndSwap(old, next) {
			break
		}
	}
	p.poke()
}

// Cancel stops the stream (X1–X5): it is idempotent and thread-safe, cancels
// the Source's context and wakes the owner, which then calls Release only.
func (p *producer) Cancel() {
	if p.cancelled.CompareAndSwap(false, true) {
		p.cancel(errConsumerCanceled)
		p.poke()
	}
}

// fail records the first failure met outside the owner goroutine.
func (p *producer) fail(e *Error) {
	if p.failure.CompareAndSwap(nil, e) {
		p.cancel(e) // a Source blocked in Next returns promptly
		p.poke()
	}
}

// poke wakes the owner without ever blocking.
func (p *producer) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run is one Produce call's owner-side state; only the owner touches it.
type run struct {
	ctx, sctx context.Context
	h         Handler
	src       Source
	p         *producer
	opts      ProduceOptions
	schema    *arrow.Schema
	closed    bool
	closeErr  error
	// held is a batch pulled without demand (after an EndNotifier's notice
	// that proved early), delivered when demand comes.
	held Batch
}

// holding reports whether a batch pulled without demand waits in held.
func (r *run) holding() bool { return r.held.Record != nil || r.held.Device != nil }

// MetaPanicStack is the error metadata key under which a panic's goroutine
// stack travels; the message itself stays one line.
const MetaPanicStack = "go.panic.stack"

// panicError converts a recovered panic value.
func panicError(where string, v any) *Error {
	e := Errorf(EIO, "panic in %s: %v", where, v)
	e.Metadata = arrow.NewMetadata([]string{MetaPanicStack}, []string{string(debug.Stack())})
	return e
}

// produce runs the state machine documented on Produce.
func (r *run) produce() (ret error) {
	defer func() { r.held.Release(); r.held = Batch{} }()
	if st := r.opts.Stats; st != nil {
		st.MarkStart()
		defer st.MarkEnd()
	}
	schema, err := r.schemaSafe()
	if err != nil {
		return r.failed(AsError(err))
	}
	r.schema = schema
	if perr, err := r.callOnSchema(schema); perr != nil {
		return r.released(perr)
	} else if err != nil {
		return r.released(refused("schema", err))
	}
	for {
		switch {
		case r.p.cancelled.Load():
			return r.released(errConsumerCanceled)
		case r.p.failure.Load() != nil:
			return r.failed(r.p.failure.Load())
		case r.ctx.Err() != nil:
			return r.failed(AsError(context.Cause(r.ctx)))
		case r.p.demand.Load() <= 0:
			var ended <-chan struct{}
			if en, ok := r.src.(EndNotifier); ok && !r.holding() {
				ended = en.Ended()
			}
			select {
			case <-r.p.wake:
				continue
			case <-r.sctx.Done():
				continue
			case <-ended:
				// The source has ended: pull its end (or error) now.
			}
		}
		var b Batch
		var err error
		if r.holding() {
			b, r.held = r.held, Batch{}
		} else {
			b, err = r.nextSafe()
		}
		if err == nil && r.p.demand.Load() <= 0 {
			// A batch pulled on an end notice that was not an end: keep it
			// until demand allows it (N2).
			r.held = b
			continue
		}
		if f := r.p.failure.Load(); f != nil && !r.p.cancelled.Load() {
			b.Release()
			return r.failed(f)
		}
		if err != nil {
			if errors.Is(err, io.EOF) && !r.p.cancelled.Load() && r.ctx.Err() == nil {
				if ferr := r.flush(); ferr != nil {
					if r.p.cancelled.Load() {
						return r.released(errConsumerCanceled)
					}
					return r.failed(AsError(ferr))
				}
				if cerr := r.close(); cerr != nil {
					return r.failed(AsError(fmt.Errorf("async: closing the source: %w", cerr)))
				}
				if perr, err := r.callOnNextTask(nil, arrow.Metadata{}); perr != nil {
					return r.released(perr)
				} else if err != nil {
					return r.released(refused("end of stream", err))
				}
				return r.released(nil)
			}
			if r.p.cancelled.Load() {
				return r.released(errConsumerCanceled)
			}
			if r.ctx.Err() != nil {
				return r.failed(AsError(context.Cause(r.ctx)))
			}
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("async: source ended: %w", err)
			}
			return r.failed(AsError(err))
		}
		if r.p.cancelled.Load() {
			b.Release()
			return r.released(errConsumerCanceled)
		}
		t, err := r.taskFor(b)
		if err != nil {
			if r.p.cancelled.Load() {
				return r.released(errConsumerCanceled)
			}
			return r.failed(AsError(err))
		}
		r.p.demand.Add(-1)
		if st := r.opts.Stats; st != nil {
			st.AddBatch(t.rows, t.bytes)
		}
		perr, err := r.callOnNextTask(t, b.Metadata)
		if perr != nil || err != nil {
			t.Discard() // a refused task is not the handler's to keep
			if perr != nil {
				return r.released(perr)
			}
			return r.released(refused("task", err))
		}
	}
}

func refused(what string, err error) error {
	return fmt.Errorf("%w: %s refused: %w", ErrRefused, what, err)
}

// taskFor turns a pulled batch into a task on the stream's device.
func (r *run) taskFor(b Batch) (_ *task, err error) {
	var db *DeviceBatch
	switch {
	case b.Device != nil:
		if b.Record != nil {
			b.Record.Release()
		}
		db = b.Device
		if db.Device.Type != r.p.devTyp {
			db.Release()
			return nil, Errorf(EINVAL, "source yielded a batch on %s for a %s stream: %w", db.Device, r.p.devTyp, ErrInvalid)
		}
	case b.Record == nil:
		return nil, Errorf(EPROTO, "source yielded an empty batch: %w", ErrProtocol)
	case r.opts.Mover != nil:
		defer func() {
			if v := recover(); v != nil {
				err = panicError("Mover.Move", v)
			}
		}()
		db, err = r.opts.Mover.Move(r.sctx, b.Record)
		if err != nil {
			return nil, fmt.Errorf("async: moving a batch to %s: %w", r.opts.Mover.Device(), err)
		}
	default:
		db = NewCPUBatch(b.Record)
	}
	var bytes int64
	if db.Record != nil {
		bytes = RecordBytes(db.Record)
	} else if db.Array != nil {
		bytes = deviceArrayBytes(db.Array)
	}
	t := &task{rows: db.NumRows, bytes: bytes, p: r.p}
	t.batch.Store(db)
	return t, nil
}

// flush waits for a Flusher mover's copies before end of stream, so that an
// asynchronous copy failure is reported (T5) rather than lost.
func (r *run) flush() (err error) {
	f, ok := r.opts.Mover.(Flusher)
	if !ok {
		return nil
	}
	defer func() {
		if v := recover(); v != nil {
			err = panicError("Mover.Flush", v)
		}
	}()
	if err = f.Flush(r.sctx); err != nil {
		err = fmt.Errorf("async: completing the copies to %s: %w", r.opts.Mover.Device(), err)
	}
	return err
}

// schemaSafe calls Source.Schema, converting a panic.
func (r *run) schemaSafe() (s *arrow.Schema, err error) {
	defer func() {
		if v := recover(); v != nil {
			s, err = nil, panicError("Source.Schema", v)
		}
	}()
	s, err = r.src.Schema(r.sctx)
	if err == nil && s == nil {
		err = Errorf(EPROTO, "source returned a nil schema: %w", ErrProtocol)
	}
	if err != nil && r.ctx.Err() != nil {
		err = context.Cause(r.ctx)
	}
	return s, err
}

// nextSafe calls Source.Next, converting a panic into an error.
func (r *run) nextSafe() (b Batch, err error) {
	defer func() {
		if v := recover(); v != nil {
			b, err = Batch{}, panicError("Source.Next", v)
		}
	}()
	b, err = r.src.Next(r.sctx)
	if err != nil {
		b.Release()
		b = Batch{}
	}
	return b, err
}

// close closes the Source once, converting a panic.
func (r *run) close() (err error) {
	if r.closed {
		return r.closeErr
	}
	r.closed = true
	defer func() {
		if v := recover(); v != nil {
			err = panicError("Source.Close", v)
		}
		r.closeErr = err
	}()
	return r.src.Close()
}

// callOnSchema calls OnSchema; perr is set when it panicked.
func (r *run) callOnSchema(s *arrow.Schema) (perr, err error) {
	defer func() {
		if v := recover(); v != nil {
			perr = panicError("Handler.OnSchema", v)
		}
	}()
	return nil, r.h.OnSchema(r.p, s)
}

// callOnNextTask calls OnNextTask (t == nil: end of stream).
func (r *run) callOnNextTask(t *task, md arrow.Metadata) (perr, err error) {
	defer func() {
		if v := recover(); v != nil {
			perr = panicError("Handler.OnNextTask", v)
		}
	}()
	if t == nil {
		return nil, r.h.OnNextTask(nil, md)
	}
	return nil, r.h.OnNextTask(t, md)
}

// failed reports e through OnError and releases; it returns e.
func (r *run) failed(e *Error) error {
	r.close() // before OnError, so the query's resources are freed first; released joins its error
	var ret error = e
	func() {
		defer func() {
			if v := recover(); v != nil {
				ret = errors.Join(e, panicError("Handler.OnError", v))
			}
		}()
		r.h.OnError(e)
	}()
	return r.released(ret)
}

// released closes the Source (if still open) and calls Release; it returns
// err joined with any Release panic or close error on a failing path.
func (r *run) released(err error) (ret error) {
	cerr := r.close()
	ret = err
	if err != nil && cerr != nil && !errors.Is(err, cerr) {
		ret = errors.Join(err, fmt.Errorf("async: closing the source: %w", cerr))
	}
	defer func() {
		if v := recover(); v != nil {
			ret = errors.Join(ret, panicError("Handler.Release", v))
		}
	}()
	r.h.Release()
	return ret
}

// task is the Task that Produce hands to OnNextTask. Its state (the batch)
// is freed inside Extract or Discard, exactly once (T1, T2); it holds what
// it needs itself, so it stays extractable after Release (A4).
type task struct {
	batch atomic.Pointer[DeviceBatch]
	rows  int64
	bytes int64
	p     *producer
}

// Extract hands over the batch (T3); a second call returns ErrReleased.
func (t *task) Extract() (*DeviceBatch, error) {
	b := t.batch.Swap(nil)
	if b == nil {
		return nil, fmt.Errorf("%w: task already extracted or discarded", ErrReleased)
	}
	return b, nil
}

// Discard frees the batch; later calls do nothing.
func (t *task) Discard() {
	if b := t.batch.Swap(nil); b != nil {
		b.Release()
	}
}

// RecordBytes returns the bytes of rec's buffers that its rows cover:
// validity bitmaps, values, offsets and string data of each column and its
// children for rec's rows only, so that a slice counts its part and not
// the whole buffers it shares with its parent (padding is not counted
// either). Dictionaries count whole, once per column that uses them; types
// whose layout it does not walk (unions, run-end encoded, views) count
// their whole buffers.
func RecordBytes(rec arrow.RecordBatch) int64 {
	if rec == nil {
		return 0
	}
	var n int64
	for _, col := range rec.Columns() {
		d := col.Data()
		n += rangeBytes(d, d.Offset(), d.Len())
	}
	return n
}

// rangeBytes is the bytes of d's buffers that cover its elements
// [off, off+n), off counted from the start of d's buffers (d.Offset()
// included).
func rangeBytes(d arrow.ArrayData, off, n int) int64 {
	if d == nil || n <= 0 || off < 0 {
		return 0
	}
	dt := d.DataType()
	if ext, ok := dt.(arrow.ExtensionType); ok {
		dt = ext.StorageType()
	}
	bufs := d.Buffers()
	buf := func(i int) *memory.Buffer {
		if i < len(bufs) {
			return bufs[i]
		}
		return nil
	}
	part := func(i int, want int64) int64 { // want bytes of buffer i, at most its length
		if b := buf(i); b != nil {
			return min(want, int64(b.Len()))
		}
		return 0
	}
	bits := func(i int) int64 { return part(i, int64((off+n+7)/8-off/8)) }
	children := d.Children()
	switch id := dt.ID(); id {
	case arrow.NULL:
		return 0
	case arrow.BOOL:
		return bits(0) + bits(1)
	case arrow.BINARY, arrow.STRING, arrow.LIST, arrow.MAP, arrow.LARGE_BINARY, arrow.LARGE_STRING, arrow.LARGE_LIST:
		w := 4
		if id == arrow.LARGE_BINARY || id == arrow.LARGE_STRING || id == arrow.LARGE_LIST {
			w = 8
		}
		start, end, ok := offsetRange(buf(1), w, off, n)
		if !ok {
			break
		}
		total := bits(0) + int64(w*(n+1))
		switch id {
		case arrow.BINARY, arrow.STRING, arrow.LARGE_BINARY, arrow.LARGE_STRING:
			return total + part(2, int64(end-start)) // data: only this range counts
		}
		if len(children) == 1 {
			c := children[0]
			return total + rangeBytes(c, c.Offset()+start, end-start)
		}
	case arrow.FIXED_SIZE_LIST:
		if len(children) == 1 {
			k := int(dt.(*arrow.FixedSizeListType).Len())
			c := children[0]
			return bits(0) + rangeBytes(c, c.Offset()+off*k, n*k)
		}
	case arrow.STRUCT:
		total := bits(0)
		for _, c := range children {
			total += rangeBytes(c, c.Offset()+off, n)
		}
		return total
	case arrow.DICTIONARY:
		idx := array.NewData(dt.(*arrow.DictionaryType).IndexType, d.Len(), bufs, nil, d.NullN(), d.Offset())
		defer idx.Release()
		return rangeBytes(idx, off, n) + wholeBytes(d.Dictionary())
	default:
		if fw, ok := dt.(arrow.FixedWidthDataType); ok && fw.BitWidth() >= 8 && len(children) == 0 {
			w := fw.BitWidth() / 8
			return bits(0) + part(1, int64(n*w))
		}
	}
	return wholeBytes(d)
}

// offsetRange reads the first and last of the n+1 offsets (w bytes each)
// of elements [off, off+n) from b; ok is false when b cannot hold them or
// they are not a range.
func offsetRange(b *memory.Buffer, w, off, n int) (start, end int, ok bool) {
	if b == nil || b.Len() < w*(off+n+1) {
		return 0, 0, false
	}
	if w == 8 {
		o := arrow.Int64Traits.CastFromBytes(b.Bytes())
		start, end = int(o[off]), int(o[off+n])
	} else {
		o := arrow.Int32Traits.CastFromBytes(b.Bytes())
		start, end = int(o[off]), int(o[off+n])
	}
	return start, end, start >= 0 && end >= start
}

// wholeBytes is the total length of d's buffers, children's and
// dictionary's included.
func wholeBytes(d arrow.ArrayData) int64 {
	if d == nil {
		return 0
	}
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += wholeBytes(c)
	}
	if d.DataType() != nil && d.DataType().ID() == arrow.DICTIONARY {
		n += wholeBytes(d.Dictionary()) // typed nil for other types
	}
	return n
}

func deviceArrayBytes(a *DeviceArray) int64 {
	if a == nil {
		return 0
	}
	var n int64
	for _, b := range a.Buffers {
		n += b.Len
	}
	for _, c := range a.Children {
		n += deviceArrayBytes(c)
	}
	return n + deviceArrayBytes(a.Dictionary)
}
