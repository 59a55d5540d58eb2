package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/volleyhq/volley/async"
)

// lineitemSchema is TPC-H lineitem's shape.
var lineitemSchema = arrow.NewSchema([]arrow.Field{
	{Name: "l_orderkey", Type: arrow.PrimitiveTypes.Int64},
	{Name: "l_partkey", Type: arrow.PrimitiveTypes.Int64},
	{Name: "l_suppkey", Type: arrow.PrimitiveTypes.Int64},
	{Name: "l_linenumber", Type: arrow.PrimitiveTypes.Int32},
	{Name: "l_quantity", Type: arrow.PrimitiveTypes.Float64},
	{Name: "l_extendedprice", Type: arrow.PrimitiveTypes.Float64},
	{Name: "l_discount", Type: arrow.PrimitiveTypes.Float64},
	{Name: "l_tax", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "l_returnflag", Type: arrow.BinaryTypes.String},
	{Name: "l_linestatus", Type: arrow.BinaryTypes.String},
	{Name: "l_shipdate", Type: arrow.FixedWidthTypes.Date32},
	{Name: "l_commitdate", Type: arrow.FixedWidthTypes.Date32},
	{Name: "l_receiptdate", Type: arrow.FixedWidthTypes.Date32},
	{Name: "l_shipinstruct", Type: arrow.BinaryTypes.String},
	{Name: "l_shipmode", Type: arrow.BinaryTypes.String},
	{Name: "l_comment", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

var (
	instructs = []string{"DELIVER IN PERSON", "COLLECT COD", "NONE", "TAKE BACK RETURN"}
	modes     = []string{"REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB"}
	words     = strings.Fields("furiously regular deposits sleep carefully final packages haggle quickly ironic accounts wake blithely express pinto beans nag slyly even requests")
)

// rng is splitmix64: deterministic per batch.
type rng uint64

func (r *rng) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	z := uint64(*r)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// lineitemBatch builds batch number idx of rows rows.
func lineitemBatch(mem memory.Allocator, idx, rows int) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, lineitemSchema)
	defer b.Release()
	for _, f := range b.Fields() {
		f.Reserve(rows)
	}
	r := rng(idx + 1)
	var sb strings.Builder
	for i := range rows {
		key := int64(idx*rows + i)
		v := r.next()
		b.Field(0).(*array.Int64Builder).UnsafeAppend(key/4 + 1)
		b.Field(1).(*array.Int64Builder).UnsafeAppend(int64(v%200000) + 1)
		b.Field(2).(*array.Int64Builder).UnsafeAppend(int64(v>>20%10000) + 1)
		b.Field(3).(*array.Int32Builder).UnsafeAppend(int32(key%7) + 1)
		q := float64(v>>8%50) + 1
		b.Field(4).(*array.Float64Builder).UnsafeAppend(q)
		b.Field(5).(*array.Float64Builder).UnsafeAppend(q * float64(v>>12%100000) / 100)
		b.Field(6).(*array.Float64Builder).UnsafeAppend(float64(v>>16%11) / 100)
		if v%97 == 0 {
			b.Field(7).AppendNull()
		} else {
			b.Field(7).(*array.Float64Builder).UnsafeAppend(float64(v>>24%9) / 100)
		}
		b.Field(8).(*array.StringBuilder).Append([]string{"A", "N", "R"}[v>>28%3])
		b.Field(9).(*array.StringBuilder).Append([]string{"F", "O"}[v>>30%2])
		ship := arrow.Date32(8036 + v>>32%2500)
		b.Field(10).(*array.Date32Builder).UnsafeAppend(ship)
		b.Field(11).(*array.Date32Builder).UnsafeAppend(ship + arrow.Date32(v>>40%60) - 30)
		b.Field(12).(*array.Date32Builder).UnsafeAppend(ship + arrow.Date32(v>>44%30) + 1)
		b.Field(13).(*array.StringBuilder).Append(instructs[v>>48%4])
		b.Field(14).(*array.StringBuilder).Append(modes[v>>50%7])
		if v%61 == 0 {
			b.Field(15).AppendNull()
		} else {
			sb.Reset()
			for w := range 2 + int(v>>53%5) {
				if w > 0 {
					sb.WriteByte(' ')
				}
				sb.WriteString(words[(v>>(w*3))%uint64(len(words))])
			}
			b.Field(15).(*array.StringBuilder).Append(sb.String())
		}
	}
	return b.NewRecordBatch()
}

// generate builds batches of rows rows until they hold at least total
// bytes, on every core.
func generate(mem memory.Allocator, total int64, rows int) ([]arrow.RecordBatch, int64) {
	probe := lineitemBatch(mem, 0, rows)
	per := async.RecordBytes(probe)
	probe.Release()
	n := int(max(1, (total+per-1)/per))
	out := make([]arrow.RecordBatch, n)
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := range next {
				out[i] = lineitemBatch(mem, i, rows)
			}
		})
	}
	wg.Wait()
	var sum int64
	for _, r := range out {
		sum += async.RecordBytes(r)
	}
	return out, sum
}

// sliceSource is an in-process Source over prepared batches: each Next
// hands out one more reference to the next batch, so producing costs no
// decoding and the stream measures movement alone.
type sliceSource struct {
	recs []arrow.RecordBatch
	next int
}

func (s *sliceSource) Schema(ctx context.Context) (*arrow.Schema, error) { return lineitemSchema, nil }

func (s *sliceSource) Next(ctx context.Context) (async.Batch, error) {
	if err := context.Cause(ctx); err != nil {
		return async.Batch{}, fmt.Errorf("lineitem source: %w", err)
	}
	if s.next == len(s.recs) {
		return async.Batch{}, io.EOF
	}
	rec := s.recs[s.next]
	s.next++
	rec.Retain()
	return async.Batch{Record: rec}, nil
}

func (s *sliceSource) Close() error { return nil }
