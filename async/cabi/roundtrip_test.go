package cabi

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/async/asynctest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bridge runs src through the whole C boundary: Go producer -> Forwarder ->
// C handler made by Import -> Go handler h. It returns Produce's error.
func bridge(ctx context.Context, h async.Handler, src async.Source, opts async.ProduceOptions) error {
	return Produce(ctx, Import(h), src, opts, async.AcceptedDevices(h)...)
}

// readAll drains r, checking data order (asynctest.Source's values) and
// returns the batches and rows read and the stream's final error.
func readAll(t *testing.T, ctx context.Context, r *async.Reader) (batches, rows int64, err error) {
	t.Helper()
	var next int64
	for {
		b, md, err := r.NextWithMetadata(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return batches, rows, nil
			}
			return batches, rows, err
		}
		_ = md
		rec := b.Record
		if rec == nil {
			b.Release()
			t.Fatalf("batch %d has no Record (device %s)", batches, b.Device)
		}
		col := rec.Column(0).(*array.Int64)
		for i := range col.Len() {
			if col.Value(i) != next {
				t.Errorf("batch %d row %d = %d, want %d", batches, i, col.Value(i), next)
			}
			next++
		}
		batches++
		rows += rec.NumRows()
		b.Release()
	}
}

func TestRoundTrip(t *testing.T) {
	noCLeft(t)
	for _, tc := range []struct {
		name               string
		batches, rows, win int
	}{
		{"empty", 0, 1, 1},
		{"one", 1, 10, 1},
		{"many-window1", 50, 7, 1},
		{"many-window16", 200, 3, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			src := &asynctest.Source{Alloc: mem, Batches: tc.batches, Rows: tc.rows, Cols: 2,
				Metadata: func(i int) arrow.Metadata {
					return arrow.NewMetadata([]string{"k\x00ey"}, []string{string(rune('a'+i%26)) + "\x00"})
				}}
			r := async.NewReader(async.ReaderOptions{Window: tc.win})
			ctx := t.Context()
			done := make(chan error, 1)
			go func() {
				done <- bridge(ctx, r, src, async.ProduceOptions{AdditionalMetadata: arrow.NewMetadata([]string{"placement"}, []string{"cpu\x00(zero)"})})
			}()
			batches, rows, err := readAll(t, ctx, r)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if perr := <-done; perr != nil {
				t.Fatalf("Produce: %v", perr)
			}
			if batches != int64(tc.batches) || rows != int64(tc.batches*tc.rows) {
				t.Errorf("read %d batches / %d rows, want %d / %d", batches, rows, tc.batches, tc.batches*tc.rows)
			}
			md := r.AdditionalMetadata()
			if v, ok := md.GetValue("placement"); !ok || v != "cpu\x00(zero)" {
				t.Errorf("additional metadata = %v, want placement=cpu\\x00(zero)", md)
			}
			r.Close()
		})
	}
}
