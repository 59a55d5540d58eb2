// Package asynctest is the conformance kit of the async device stream
// protocol (shared/SPEC.md): scripted fakes (a [Source], a recording
// [Handler], a [ScriptedProducer]) and exported checks that hold any Go
// producer ([RunProducerChecks]) or consumer ([RunHandlerChecks]) to the
// protocol's rules, one sub-test per rule ID. [CRuleIDs] lists the rules
// that only the C ABI can observe.
//
// The checks take a [TB] so that they can also run against a recorder:
// [CheckProducer] and [CheckHandler] return the failures instead of failing
// a test, which is how the kit's own tests show that every check can fail.
//
// An adapter or bridge plugs in with a factory:
//
//	func TestMyProducerConforms(t *testing.T) {
//		asynctest.RunProducerChecks(t, asynctest.Blocking(
//			func(ctx context.Context, h async.Handler, spec asynctest.StreamSpec) error {
//				return myProduce(ctx, h, spec) // a stream shaped as spec says
//			}))
//	}
//
//	func TestMyConsumerConforms(t *testing.T) {
//		asynctest.RunHandlerChecks(t, func() asynctest.HandlerUnderTest {
//			c := newMyConsumer()
//			return asynctest.HandlerUnderTest{Handler: c, Drain: c.drain, Close: c.close}
//		})
//	}
//
// The checks run one after another and are not parallel: the idle-cost
// check measures the whole process's CPU time (getrusage), so the test
// binary must not run other work (t.Parallel tests) at the same time.
package asynctest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/volleyhq/volley/async"
)

// ErrScripted is the error a [Source] fails with when its Err is nil; use
// errors.Is.
var ErrScripted = errors.New("asynctest: scripted failure")

// Source is a scripted [async.Source] of int64 columns. The zero value
// yields nothing (end of stream at once) from the Go allocator. Batch i
// (1-based) holds the values (i-1)*Rows … i*Rows-1 in every column, so data
// order can be checked. The runtime calls it from one goroutine at a time;
// the counters may be read from any goroutine.
type Source struct {
	// Alloc allocates the batches (default memory.DefaultAllocator).
	Alloc memory.Allocator
	// Batches is the number of batches before end of stream; negative
	// means endless.
	Batches int
	// Rows per batch (default 1) and Cols int64 columns (default 1).
	Rows, Cols int
	// SchemaErr makes Schema fail with it.
	SchemaErr error
	// FailAt makes the FailAt-th call of Next (1-based) fail with Err
	// (default [ErrScripted]).
	FailAt int
	Err    error
	// BlockAt makes the BlockAt-th call of Next block until its ctx ends,
	// then return context.Cause(ctx).
	BlockAt int
	// PanicAt makes the PanicAt-th call of Next panic; PanicInSchema makes
	// Schema panic.
	PanicAt       int
	PanicInSchema bool
	// Metadata, when set, gives batch i its per-task metadata.
	Metadata func(i int) arrow.Metadata

	nexts, yielded, closes, schemas atomic.Int64
	blocked                         chan struct{}
}

// SchemaFor returns the schema of a Source with cols columns.
func SchemaFor(cols int) *arrow.Schema {
	if cols <= 0 {
		cols = 1
	}
	fs := make([]arrow.Field, cols)
	for i := range fs {
		fs[i] = arrow.Field{Name: fmt.Sprintf("c%d", i), Type: arrow.PrimitiveTypes.Int64}
	}
	return arrow.NewSchema(fs, nil)
}

// Schema implements [async.Source].
func (s *Source) Schema(ctx context.Context) (*arrow.Schema, error) {
	s.schemas.Add(1)
	if s.PanicInSchema {
		panic("asynctest: scripted panic in Schema")
	}
	if s.SchemaErr != nil {
		return nil, s.SchemaErr
	}
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	return SchemaFor(s.Cols), nil
}

// Next implements [async.Source].
func (s *Source) Next(ctx context.Context) (async.Batch, error) {
	n := int(s.nexts.Add(1))
	switch {
	case n == s.PanicAt:
		panic(fmt.Sprintf("asynctest: scripted panic in Next %d", n))
	case n == s.FailAt:
		if s.Err != nil {
			return async.Batch{}, s.Err
		}
		return async.Batch{}, fmt.Errorf("%w at Next %d", ErrScripted, n)
	case n == s.BlockAt:
		if s.blocked != nil {
			close(s.blocked)
		}
		<-ctx.Done()
		return async.Batch{}, context.Cause(ctx)
	}
	if err := ctx.Err(); err != nil {
		return async.Batch{}, context.Cause(ctx)
	}
	if s.Batches >= 0 && int(s.yielded.Load()) >= s.Batches {
		return async.Batch{}, io.EOF
	}
	i := int(s.yielded.Add(1))
	b := async.Batch{Record: MakeBatch(s.Alloc, s.Cols, s.Rows, int64(i-1)*int64(max(s.Rows, 1)))}
	if s.Metadata != nil {
		b.Metadata = s.Metadata(i)
	}
	return b, nil
}

// Close implements [async.Source].
func (s *Source) Close() error {
	s.closes.Add(1)
	return nil
}

// Blocked returns a channel closed when Next blocks at BlockAt. Call it
// before the stream starts.
func (s *Source) Blocked() <-chan struct{} {
	if s.blocked == nil {
		s.blocked = make(chan struct{})
	}
	return s.blocked
}

// Nexts is the number of Next calls so far.
func (s *Source) Nexts() int { return int(s.nexts.Load()) }

// Yielded is the number of batches yielded so far.
func (s *Source) Yielded() int { return int(s.yielded.Load()) }

// Closes is the number of Close calls so far (1 after a conformant run).
func (s *Source) Closes() int { return int(s.closes.Load()) }

// MakeBatch returns a record batch of cols int64 columns (default 1) and
// rows rows (default 1) whose values count up from first, allocated from
// alloc (default memory.DefaultAllocator). The caller releases it.
func MakeBatch(alloc memory.Allocator, cols, rows int, first int64) arrow.RecordBatch {
	if alloc == nil {
		alloc = memory.DefaultAllocator
	}
	if rows <= 0 {
		rows = 1
	}
	schema := SchemaFor(cols)
	arrs := make([]arrow.Array, len(schema.Fields()))
	b := array.NewInt64Builder(alloc)
	defer b.Release()
	vals := make([]int64, rows)
	for j := range vals {
		vals[j] = first + int64(j)
	}
	for i := range arrs {
		b.AppendValues(vals, nil)
		arrs[i] = b.NewArray()
	}
	rec := array.NewRecordBatch(schema, arrs, int64(rows))
	for _, a := range arrs {
		a.Release()
	}
	return rec
}
