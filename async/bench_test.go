package async_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/async/asynctest"
)

// benchSource yields the same record n times (retained for each caller), so
// the benchmarks measure the runtime and the Reader, not batch building.
type benchSource struct {
	rec  arrow.RecordBatch
	n, i int
}

func (s *benchSource) Schema(context.Context) (*arrow.Schema, error) { return s.rec.Schema(), nil }

func (s *benchSource) Next(ctx context.Context) (async.Batch, error) {
	if s.i == s.n {
		return async.Batch{}, io.EOF
	}
	s.i++
	s.rec.Retain()
	return async.Batch{Record: s.rec}, nil
}

func (s *benchSource) Close() error { return nil }

// benchStream streams b.N batches of rec through Produce to a Reader; one
// op is one batch.
func benchStream(b *testing.B, rec arrow.RecordBatch, window int) {
	b.ReportAllocs()
	ctx := context.Background()
	r := async.NewReader(async.ReaderOptions{Window: window})
	b.ResetTimer()
	s := async.Start(ctx, r, &benchSource{rec: rec, n: b.N}, async.ProduceOptions{})
	for {
		bt, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		bt.Release()
	}
	if err := s.Wait(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(int64(b.N)*rec.NumRows())/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkDispatch is the runtime's per-batch overhead: Source → Produce →
// Reader → Release with 1-row batches.
func BenchmarkDispatch(b *testing.B) {
	rec := asynctest.MakeBatch(memory.DefaultAllocator, 1, 1, 0)
	defer rec.Release()
	for _, w := range []int{1, 4, 64} {
		b.Run(fmt.Sprintf("window=%d", w), func(b *testing.B) { benchStream(b, rec, w) })
	}
}

// BenchmarkThroughput streams 64k-row batches (4 int64 columns, 2 MiB):
// "shared" hands the same record over each time (the runtime is zero-copy,
// so this is dispatch-bound), "built" builds every batch in the Source as
// an adapter would (allocation and filling dominate).
func BenchmarkThroughput(b *testing.B) {
	const rows, cols = 64 << 10, 4
	rec := asynctest.MakeBatch(memory.DefaultAllocator, cols, rows, 0)
	defer rec.Release()
	b.Run("rows=65536/shared", func(b *testing.B) { benchStream(b, rec, 4) })
	b.Run("rows=65536/built", func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		r := async.NewReader(async.ReaderOptions{})
		b.ResetTimer()
		s := async.Start(ctx, r, &asynctest.Source{Batches: b.N, Rows: rows, Cols: cols}, async.ProduceOptions{})
		for bt, err := range r.All(ctx) {
			if err != nil {
				b.Fatal(err)
			}
			bt.Release()
		}
		if err := s.Wait(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
		b.SetBytes(rows * cols * 8)
	})
}
