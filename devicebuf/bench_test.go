package devicebuf_test

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/devicebuf"
)

// BenchmarkMove moves one 8 MiB batch (eight int64 columns of 128 Ki rows)
// per iteration and waits for it, on the CPU (no-op), into pinned host
// memory and into simulated device memory through the staging pool.
func BenchmarkMove(b *testing.B) {
	for _, dev := range []string{"cpu", "cuda_host:0", "cuda:0"} {
		b.Run(dev, func(b *testing.B) {
			sim := devicebuf.NewSimulated(devicebuf.SimOptions{})
			m := devicebuf.NewManager(devicebuf.Options{Backends: []devicebuf.Backend{sim}})
			defer m.Close()
			d, _ := async.ParseDevice(dev)
			mv, err := m.Mover(b.Context(), d, devicebuf.MoverOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer mv.(interface{ Close() error }).Close()
			rec := wideInt64Record(memory.NewGoAllocator(), 8, 128<<10)
			defer rec.Release()
			b.SetBytes(async.RecordBytes(rec))
			var prev *async.DeviceBatch
			for b.Loop() {
				rec.Retain()
				batch, err := mv.Move(b.Context(), rec)
				if err != nil {
					b.Fatal(err)
				}
				// Keep one batch in flight, as a producer does.
				if prev != nil {
					if err := prev.Wait(b.Context()); err != nil {
						b.Fatal(err)
					}
					prev.Release()
				}
				prev = batch
			}
			if err := prev.Wait(b.Context()); err != nil {
				b.Fatal(err)
			}
			prev.Release()
		})
	}
}
