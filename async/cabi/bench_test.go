package cabi

import (
	"context"
	"testing"

	"github.com/volleyhq/volley/async"
)

func benchStream(b *testing.B, bridged bool) {
	ctx := context.Background()
	r := async.NewReader(async.ReaderOptions{Window: 64})
	src := &DemoSource{Batches: int64(b.N), Rows: 1}
	done := make(chan error, 1)
	b.ResetTimer()
	go func() {
		if bridged {
			done <- Produce(ctx, Import(r), src, async.ProduceOptions{})
		} else {
			done <- async.Produce(ctx, r, src, async.ProduceOptions{})
		}
	}()
	n := 0
	for {
		batch, err := r.Next(ctx)
		if err != nil {
			break
		}
		batch.Release()
		n++
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if n != b.N {
		b.Fatalf("read %d of %d", n, b.N)
	}
	r.Close()
}

// BenchmarkStreamNative is the Go-only baseline: DemoSource -> Produce ->
// Reader, 1-row batches.
func BenchmarkStreamNative(b *testing.B) { benchStream(b, false) }

// BenchmarkStreamBridged crosses the C ABI twice per batch (export to a C
// handler, import back into the Reader), 1-row batches.
func BenchmarkStreamBridged(b *testing.B) { benchStream(b, true) }
