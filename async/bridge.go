package async

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// SourceFromRecordReader returns a [Source] that yields rr's record batches
// on the CPU. It retains rr, and its Close releases that reference, so the
// caller keeps (and releases) its own. Each yielded batch is retained for
// the caller of Next. rr.Next cannot be interrupted: ctx is checked between
// batches.
func SourceFromRecordReader(rr array.RecordReader) Source {
	rr.Retain()
	return &rrSource{rr: rr}
}

type rrSource struct {
	rr     array.RecordReader
	closed bool
}

func (s *rrSource) Schema(ctx context.Context) (*arrow.Schema, error) {
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	return s.rr.Schema(), nil
}

func (s *rrSource) Next(ctx context.Context) (Batch, error) {
	if ctx.Err() != nil {
		return Batch{}, context.Cause(ctx)
	}
	if !s.rr.Next() {
		if err := s.rr.Err(); err != nil && !errors.Is(err, io.EOF) {
			return Batch{}, err
		}
		return Batch{}, io.EOF
	}
	rec := s.rr.RecordBatch()
	rec.Retain()
	return Batch{Record: rec}, nil
}

func (s *rrSource) Close() error {
	if !s.closed {
		s.closed = true
		s.rr.Release()
	}
	return nil
}

// RecordReader returns an array.RecordReader view of the Reader's stream,
// for CPU streams (and other host-accessible streams whose batches carry a
// Record). ctx bounds every wait of the view. The view's Schema blocks
// until the schema has arrived and returns nil on failure (see Err). Each
// record is valid until the next call to Next or Release (retain it to keep
// it). Releasing the view (its last reference) closes the Reader.
func (r *Reader) RecordReader(ctx context.Context) array.RecordReader {
	v := &recordView{ctx: ctx, r: r}
	v.refs.Store(1)
	return v
}

// NewRecordReader waits for r's schema and returns r's stream as an
// array.RecordReader (see [Reader.RecordReader]); it fails when the stream
// fails before its schema, or when the stream's device is not host
// accessible.
func NewRecordReader(ctx context.Context, r *Reader) (array.RecordReader, error) {
	if _, err := r.Schema(ctx); err != nil {
		return nil, err
	}
	r.mu.Lock()
	dt := r.devType
	r.mu.Unlock()
	if !hostAccessible(dt) {
		r.Close()
		return nil, fmt.Errorf("%w: async: a %s stream cannot be read as a RecordReader", errors.ErrUnsupported, dt)
	}
	return r.RecordReader(ctx), nil
}

func hostAccessible(t DeviceType) bool {
	switch t {
	case DeviceCPU, DeviceCUDAHost, DeviceCUDAManaged, DeviceROCMHost:
		return true
	}
	return false
}

type recordView struct {
	ctx  context.Context
	r    *Reader
	refs atomic.Int64
	mu   sync.Mutex
	cur  *DeviceBatch
	err  error
	done bool
}

func (v *recordView) Retain() { v.refs.Add(1) }

func (v *recordView) Release() {
	if v.refs.Add(-1) != 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.cur.Release()
	v.cur = nil
	v.r.Close()
}

func (v *recordView) Schema() *arrow.Schema {
	s, err := v.r.Schema(v.ctx)
	if err != nil {
		v.mu.Lock()
		if v.err == nil {
			v.err = err
		}
		v.mu.Unlock()
		return nil
	}
	return s
}

func (v *recordView) Next() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.cur.Release()
	v.cur = nil
	if v.done || v.err != nil {
		return false
	}
	b, err := v.r.Next(v.ctx)
	if err == nil && b.Record == nil {
		b.Release()
		err = fmt.Errorf("%w: async: a %s batch has no host-accessible record", errors.ErrUnsupported, b.Device)
	}
	if err == nil {
		err = b.Wait(v.ctx)
		if err != nil {
			b.Release()
		}
	}
	switch {
	case errors.Is(err, io.EOF):
		v.done = true
		return false
	case err != nil:
		v.err = err
		return false
	}
	v.cur = b
	return true
}

func (v *recordView) RecordBatch() arrow.RecordBatch {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cur == nil {
		return nil
	}
	return v.cur.Record
}

// Record is the deprecated name of RecordBatch.
func (v *recordView) Record() arrow.RecordBatch { return v.RecordBatch() }

func (v *recordView) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

// Stream is a [Produce] running on its own goroutine, started by [Start].
type Stream struct {
	done chan struct{}
	err  error
}

// Start runs Produce(ctx, h, src, opts) on a new goroutine and returns at
// once; the caller owns the Stream and must Wait for it (the goroutine ends
// when Release has returned).
func Start(ctx context.Context, h Handler, src Source, opts ProduceOptions) *Stream {
	s := &Stream{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = Produce(ctx, h, src, opts)
	}()
	return s
}

// Wait blocks until the stream's Release has returned and returns what
// Produce returned. It may be called any number of times, from any
// goroutine.
func (s *Stream) Wait() error {
	<-s.done
	return s.err
}

// Done is closed when the stream has ended (after Release returned).
func (s *Stream) Done() <-chan struct{} { return s.done }
