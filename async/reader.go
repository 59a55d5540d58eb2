package async

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
)

// ReaderOptions configure [NewReader]. The zero value buffers up to 4 tasks
// and accepts CPU streams.
type ReaderOptions struct {
	// Window is the most tasks the Reader holds at once, queued plus
	// requested (default 4; negative is invalid). It bounds the memory a
	// stream can make the Reader hold.
	Window int
	// Accept lists the device types the Reader takes, best first (default
	// CPU alone). A producer on another device type is refused in OnSchema.
	Accept []DeviceType
}

// Validate reports an invalid option as an error wrapping [ErrInvalid].
func (o ReaderOptions) Validate() error {
	if o.Window < 0 {
		return fmt.Errorf("%w: reader window %d must be >= 1 (0 means the default, 4)", ErrInvalid, o.Window)
	}
	return nil
}

// EnsureDefaults returns o with its zero fields set to their defaults.
func (o ReaderOptions) EnsureDefaults() ReaderOptions {
	if o.Window == 0 {
		o.Window = 4
	}
	if len(o.Accept) == 0 {
		o.Accept = []DeviceType{DeviceCPU}
	}
	return o
}

// ErrReaderClosed reports a Next on a [Reader] after its Close; use
// errors.Is. It wraps [ErrReleased].
var ErrReaderClosed = fmt.Errorf("%w: reader closed", ErrReleased)

// Reader is a consumer: a [Handler] (and [DeviceAcceptor]) to give to one
// producer, with a pull API (Next, All, RecordReader) for the goroutine that
// reads the stream.
//
// Flow control: in OnSchema the Reader requests Window tasks; each task Next
// takes out of the queue is replaced by a Request(1) (until end of stream),
// so queued plus requested never exceeds Window and, whenever a Next waits
// on an empty queue, Window requests are outstanding (A1): a producer that
// waits for demand before its end of stream is served as soon as the reader
// reads. Tasks are extracted lazily, in Next, so at most Window batches
// exist at a time besides those the caller holds.
//
// It follows every consumer rule: it treats the producer as unset in an
// OnError before OnSchema (A5); accepts and discards tasks, end of stream
// and errors after its own Cancel (N8); never calls the producer from
// OnError or Release, nor after Release (E2, E5, A3); extracts or discards
// every task exactly once (T1); and surfaces extraction failures through
// Next. A task beyond the demand it made is refused as [ErrProtocol].
//
// Goroutines: the handler methods are for the producer. Next, All, Schema,
// RecordReader and Close may be called from any goroutine; batches are
// delivered in stream order. A Reader serves one stream.
type Reader struct {
	opts ReaderOptions

	pmu          sync.Mutex // serializes producer calls with Release (A3)
	producerGone bool       // under pmu: Release has been called

	mu          sync.Mutex
	changed     chan struct{} // closed and replaced on every change
	p           Producer
	devType     DeviceType // the producer's, kept after Release
	schema      *arrow.Schema
	md          arrow.Metadata
	queue       []queued
	outstanding int64
	eos         bool
	err         error // the stream's error (OnError, refusal, protocol)
	cancelled   bool  // we called (or will call) Cancel
	cancelErr   error // what Next returns after our cancel
	closed      bool
	released    bool
	done        chan struct{} // closed by Release
}

type queued struct {
	t  Task
	md arrow.Metadata
}

// NewReader returns a Reader for one stream. It panics if opts is invalid,
// as a programming error; call opts.Validate first for untrusted values.
func NewReader(opts ReaderOptions) *Reader {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	return &Reader{opts: opts.EnsureDefaults(), changed: make(chan struct{}), done: make(chan struct{})}
}

// notifyLocked wakes every waiter; r.mu is held.
func (r *Reader) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// AcceptedDevices returns the device types the Reader takes.
func (r *Reader) AcceptedDevices() []DeviceType { return slices.Clone(r.opts.Accept) }

// OnSchema implements [Handler]: it refuses a producer on a device type the
// Reader does not accept (the Release that follows works as ever), else it
// requests Window tasks.
func (r *Reader) OnSchema(p Producer, schema *arrow.Schema) error {
	r.mu.Lock()
	switch {
	case r.schema != nil || r.released:
		r.mu.Unlock()
		return fmt.Errorf("%w: second OnSchema", ErrProtocol)
	case r.err != nil:
		r.mu.Unlock()
		return fmt.Errorf("%w: OnSchema after OnError", ErrProtocol)
	case p == nil || schema == nil:
		r.err = fmt.Errorf("%w: OnSchema with a nil producer or schema", ErrProtocol)
		r.notifyLocked()
		r.mu.Unlock()
		return r.err
	case !slices.Contains(r.opts.Accept, p.DeviceType()):
		r.err = fmt.Errorf("%w: async: reader does not accept %s streams (accepts %v)", errors.ErrUnsupported, p.DeviceType(), r.opts.Accept)
		r.schema = schema
		r.notifyLocked()
		r.mu.Unlock()
		return r.err
	}
	r.p, r.schema, r.md, r.devType = p, schema, p.AdditionalMetadata(), p.DeviceType()
	cancelled := r.cancelled
	r.outstanding = int64(r.opts.Window)
	r.notifyLocked()
	r.mu.Unlock()
	if cancelled { // Close or a cancelled Next came first
		r.callProducer(Producer.Cancel)
		return nil
	}
	r.callProducer(func(p Producer) { p.Request(int64(r.opts.Window)) })
	return nil
}

// callProducer calls f on the producer unless Release has come (A3).
func (r *Reader) callProducer(f func(Producer)) {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	if r.producerGone {
		return
	}
	r.mu.Lock()
	p := r.p
	r.mu.Unlock()
	if p != nil {
		f(p)
	}
}

// OnNextTask implements [Handler]: it queues the task (or notes end of
// stream); after the Reader's own cancel it discards it (N8).
func (r *Reader) OnNextTask(t Task, md arrow.Metadata) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t == nil {
		r.eos = true
		r.notifyLocked()
		return nil
	}
	switch {
	case r.cancelled || r.closed || r.err != nil:
		t.Discard()
		return nil
	case r.outstanding <= 0:
		t.Discard()
		r.err = fmt.Errorf("%w: task beyond the demand the reader made (N2)", ErrProtocol)
		r.notifyLocked()
		return r.err
	}
	r.outstanding--
	r.queue = append(r.queue, queued{t: t, md: md})
	r.notifyLocked()
	return nil
}

// OnError implements [Handler]: it records err for Next. It calls no
// producer method (E2).
func (r *Reader) OnError(err *Error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
	r.notifyLocked()
}

// Release implements [Handler]: the stream is over; it calls no producer
// method and, once it returns, none is called again (E5).
func (r *Reader) Release() {
	r.pmu.Lock()
	r.producerGone = true
	r.pmu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.released {
		return
	}
	r.released = true
	r.p = nil
	close(r.done)
	r.notifyLocked()
}

// Done is closed when the producer has called Release.
func (r *Reader) Done() <-chan struct{} { return r.done }

// Schema waits for the stream's schema and returns it, or the stream's
// error, or ctx's cause.
func (r *Reader) Schema(ctx context.Context) (*arrow.Schema, error) {
	for {
		r.mu.Lock()
		s, err, ch := r.schema, r.err, r.changed
		released, closed := r.released, r.closed
		r.mu.Unlock()
		switch {
		case err != nil:
			return nil, err
		case s != nil:
			return s, nil
		case closed:
			return nil, ErrReaderClosed
		case released:
			return nil, fmt.Errorf("%w: stream released before its schema", ErrProtocol)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// AdditionalMetadata returns the producer's additional metadata, empty
// before OnSchema.
func (r *Reader) AdditionalMetadata() arrow.Metadata {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.md
}

// Next returns the next batch, which the caller owns and must Release; it
// waits for one as long as needed. It returns io.EOF after the end of
// stream, the stream's error (an [*Error] from OnError, or the refusal or
// extraction failure), or, when ctx ends first, ctx's cause: the Reader
// then cancels the producer and discards what it holds, and later calls
// return the same error.
func (r *Reader) Next(ctx context.Context) (*DeviceBatch, error) {
	b, _, err := r.NextWithMetadata(ctx)
	return b, err
}

// NextWithMetadata is [Reader.Next] that also returns the task's metadata.
func (r *Reader) NextWithMetadata(ctx context.Context) (*DeviceBatch, arrow.Metadata, error) {
	for {
		if ctx.Err() != nil {
			return nil, arrow.Metadata{}, r.abandon(context.Cause(ctx))
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, arrow.Metadata{}, ErrReaderClosed
		}
		if r.cancelErr != nil {
			err := r.cancelErr
			r.mu.Unlock()
			return nil, arrow.Metadata{}, err
		}
		if len(r.queue) > 0 {
			q := r.queue[0]
			r.queue[0] = queued{}
			r.queue = r.queue[1:]
			more := !r.eos && r.err == nil && !r.released
			if more {
				r.outstanding++
			}
			r.mu.Unlock()
			if more {
				r.callProducer(func(p Producer) { p.Request(1) })
			}
			b, err := q.t.Extract()
			if err != nil {
				err = fmt.Errorf("async: extracting a task: %w", err)
				r.mu.Lock()
				if r.err == nil {
					r.err = err
				}
				r.mu.Unlock()
				return nil, arrow.Metadata{}, err
			}
			return b, q.md, nil
		}
		err, eos, released, ch := r.err, r.eos, r.released, r.changed
		gotSchema := r.schema != nil
		r.mu.Unlock()
		switch {
		case err != nil:
			return nil, arrow.Metadata{}, err
		case eos:
			return nil, arrow.Metadata{}, io.EOF
		case released && gotSchema:
			return nil, arrow.Metadata{}, fmt.Errorf("%w: stream released without end of stream or error", ErrProtocol)
		case released:
			return nil, arrow.Metadata{}, fmt.Errorf("%w: stream released before its schema", ErrProtocol)
		}
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
}

// abandon cancels the producer after ctx ended, discards the queue and
// returns err, which later Next calls return too.
func (r *Reader) abandon(err error) error {
	r.mu.Lock()
	if r.cancelErr == nil {
		r.cancelErr = err
	}
	err = r.cancelErr
	q := r.cancelLocked()
	r.mu.Unlock()
	discardAll(q)
	r.callProducer(Producer.Cancel)
	return err
}

// cancelLocked marks the stream cancelled and takes the queue; r.mu held.
func (r *Reader) cancelLocked() []queued {
	r.cancelled = true
	q := r.queue
	r.queue = nil
	r.notifyLocked()
	return q
}

func discardAll(q []queued) {
	for _, e := range q {
		e.t.Discard()
	}
}

// Close abandons the stream: it cancels the producer (unless the stream
// already ended) and discards every queued task (T1); tasks that arrive
// later are discarded as they arrive (N8). Close is idempotent and does not
// wait for the producer's Release, so a misbehaving producer cannot block
// it; wait on [Reader.Done] for that. Before OnSchema there is no producer
// to cancel (O6): the Reader cancels it as soon as OnSchema delivers it.
// Later Next calls return [ErrReaderClosed].
func (r *Reader) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	ended := r.eos || r.err != nil || r.released
	q := r.cancelLocked()
	r.mu.Unlock()
	discardAll(q)
	if !ended {
		r.callProducer(Producer.Cancel)
	}
	return nil
}

// All returns an iterator over the stream's batches, each owned by the
// loop body, which must Release it. A failure is yielded once as (nil, err)
// and ends the iteration; io.EOF is not yielded. Breaking out of the loop
// closes the Reader.
func (r *Reader) All(ctx context.Context) iter.Seq2[*DeviceBatch, error] {
	return func(yield func(*DeviceBatch, error) bool) {
		for {
			b, err := r.Next(ctx)
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(b, nil) {
				r.Close()
				return
			}
		}
	}
}
