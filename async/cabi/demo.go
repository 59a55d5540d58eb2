package cabi

import (
	"context"
	"io"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/volleyhq/volley/async"
)

// DemoSchema is the schema of [DemoSource]: id int64, name utf8.
var DemoSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "name", Type: arrow.BinaryTypes.String},
}, nil)

// DemoSource is an in-process [async.Source] for tests and demos that need
// no database: Batches batches (negative: endless) of Rows rows; id counts
// 0, 1, 2, ... over the stream and name is "r<id>". Batch i (1-based)
// carries the task metadata {"batch": "<i>"}. Use it from one goroutine at
// a time, as the Source contract says.
type DemoSource struct {
	// Alloc allocates the batches (default memory.DefaultAllocator).
	Alloc   memory.Allocator
	Batches int64
	Rows    int64

	sent int64
	next int64
}

// Schema implements [async.Source].
func (s *DemoSource) Schema(ctx context.Context) (*arrow.Schema, error) {
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	return DemoSchema, nil
}

// Next implements [async.Source].
func (s *DemoSource) Next(ctx context.Context) (async.Batch, error) {
	if err := ctx.Err(); err != nil {
		return async.Batch{}, context.Cause(ctx)
	}
	if s.Batches >= 0 && s.sent >= s.Batches {
		return async.Batch{}, io.EOF
	}
	mem := s.Alloc
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	b := array.NewRecordBuilder(mem, DemoSchema)
	defer b.Release()
	ids := b.Field(0).(*array.Int64Builder)
	names := b.Field(1).(*array.StringBuilder)
	rows := max(s.Rows, 0)
	ids.Reserve(int(rows))
	names.Reserve(int(rows))
	var buf []byte
	for range rows {
		ids.UnsafeAppend(s.next)
		buf = strconv.AppendInt(append(buf[:0], 'r'), s.next, 10)
		names.BinaryBuilder.Append(buf)
		s.next++
	}
	s.sent++
	return async.Batch{Record: b.NewRecordBatch(),
		Metadata: arrow.NewMetadata([]string{"batch"}, []string{strconv.FormatInt(s.sent, 10)})}, nil
}

// Close implements [async.Source].
func (s *DemoSource) Close() error { return nil }

// DemoMetadata is the additional metadata [ProduceDemo] sets: a value with
// a zero byte inside, so C tests can check metadata is never strlen'd.
var DemoMetadata = arrow.NewMetadata([]string{"volley.demo"}, []string{"1\x00x"})

// ProduceDemo streams a [DemoSource] into the C handler h (see
// volley_produce_demo in volley.h); it blocks until h's release returned.
func ProduceDemo(ctx context.Context, batches, rows int64, h *CHandler) error {
	if rows < 0 {
		rows = 0
	}
	src := &DemoSource{Batches: batches, Rows: rows}
	return Produce(ctx, h, src, async.ProduceOptions{AdditionalMetadata: DemoMetadata})
}
