package driver

import (
	"context"
	"errors"
	"io"
	"iter"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/volleyhq/volley/async"
)

// Stream starts sql like [DB.Query] and returns a pull reader over its
// result for Go callers: batches as they arrive, on the device placement
// picked (CPU unless opts accept more, with [WithAccept]). The reader keeps
// the option's window of tasks requested. Close the Rows when done: it
// cancels the query if it is still running and waits for it to end.
func (db *DB) Stream(ctx context.Context, sql string, args []any, opts ...QueryOption) (*Rows, error) {
	o := db.cfg.Query
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	accept := o.Accept
	if accept == nil {
		accept = []async.DeviceType{async.DeviceCPU}
	}
	r := async.NewReader(async.ReaderOptions{Window: o.Window, Accept: accept})
	q, err := db.Query(ctx, r, sql, args, WithOptions(o))
	if err != nil {
		return nil, err
	}
	return &Rows{r: r, q: q}, nil
}

// Rows is a pull reader over one query's result. Its methods are for one
// goroutine at a time, except Close and Query, which are safe from any.
type Rows struct {
	r     *async.Reader
	q     *Query
	ended atomic.Bool // Next has returned io.EOF or an error
}

// Schema waits for the result's schema.
func (r *Rows) Schema(ctx context.Context) (*arrow.Schema, error) { return r.r.Schema(ctx) }

// Next returns the next batch, which the caller must Release; io.EOF after
// the last one; the query's error if it failed.
func (r *Rows) Next(ctx context.Context) (*async.DeviceBatch, error) {
	b, err := r.r.Next(ctx)
	if err != nil {
		r.ended.Store(true)
	}
	return b, err
}

// All iterates over the batches; each must be released by the loop body.
// It stops at the first error, which it yields.
func (r *Rows) All(ctx context.Context) iter.Seq2[*async.DeviceBatch, error] {
	return func(yield func(*async.DeviceBatch, error) bool) {
		for {
			b, err := r.Next(ctx)
			if err == io.EOF {
				return
			}
			if !yield(b, err) || err != nil {
				return
			}
		}
	}
}

// RecordReader views a CPU result as an array.RecordReader.
func (r *Rows) RecordReader(ctx context.Context) (array.RecordReader, error) {
	return async.NewRecordReader(ctx, r.r)
}

// Query returns the query's handle (placement, stats, Wait).
func (r *Rows) Query() *Query { return r.q }

// Close cancels the query if it is still running, discards what is queued
// and waits until the stream has ended. It returns the query's error unless
// the stream was cancelled by this Close. It is idempotent.
func (r *Rows) Close() error {
	early := !r.ended.Load()
	r.r.Close()
	err := r.q.Wait()
	if early && errors.Is(err, context.Canceled) {
		return nil // this Close cancelled the stream
	}
	return err
}
