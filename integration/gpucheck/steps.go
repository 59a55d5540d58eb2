package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/devicebuf"
)

var cuda0 = async.Device{Type: async.DeviceCUDA, ID: 0}

// verifyStream streams recs onto cuda:0 and compares every buffer, copied
// back after the batch's sync event, with the CPU batch.
func verifyStream(ctx context.Context, m *devicebuf.Manager, cuda *devicebuf.CUDA, recs []arrow.RecordBatch, c config) error {
	var compared int64
	elapsed, err := stream(ctx, m, cuda0, recs, c.window, func(i int, b *async.DeviceBatch) error {
		if b.Device != cuda0 || b.Array == nil || b.Record != nil || b.SyncEvent == nil {
			return fmt.Errorf("batch on %s, array %v, record %v, sync event %v", b.Device, b.Array != nil, b.Record != nil, b.SyncEvent)
		}
		// Wait as a C consumer does: cuEventSynchronize on the CUevent
		// behind sync_event; Go's Wait must then report the data ready.
		if err := cuda.WaitSyncEvent(0, b.SyncEvent); err != nil {
			return fmt.Errorf("cuEventSynchronize on the sync event: %w", err)
		}
		if err := goWait(ctx, b); err != nil {
			return err
		}
		rec := recs[i]
		if b.NumRows != rec.NumRows() || len(b.Array.Children) != int(rec.NumCols()) {
			return fmt.Errorf("%d rows / %d columns, want %d / %d", b.NumRows, len(b.Array.Children), rec.NumRows(), rec.NumCols())
		}
		for col, arr := range rec.Columns() {
			want := arr.Data().Buffers()
			got := b.Array.Children[col].Buffers
			if len(got) != len(want) {
				return fmt.Errorf("column %s: %d buffers, want %d", rec.ColumnName(col), len(got), len(want))
			}
			for j, w := range want {
				if w == nil || w.Len() == 0 {
					continue
				}
				if got[j].Len != int64(w.Len()) {
					return fmt.Errorf("column %s buffer %d: %d bytes, want %d", rec.ColumnName(col), j, got[j].Len, w.Len())
				}
				host := make([]byte, w.Len())
				if err := cuda.CopyToHost(0, host, got[j].Addr); err != nil {
					return fmt.Errorf("column %s buffer %d: copy back: %w", rec.ColumnName(col), j, err)
				}
				if !bytes.Equal(host, w.Bytes()) {
					return fmt.Errorf("column %s buffer %d: %w", rec.ColumnName(col), j, errMismatch)
				}
				compared += int64(w.Len())
				if col == 0 && j == 1 {
					mt, err := cuda.MemoryType(0, got[j].Addr)
					if err != nil {
						return fmt.Errorf("cuPointerGetAttribute: %w", err)
					}
					if mt != devicebuf.CUDAMemoryDevice {
						return fmt.Errorf("cuPointerGetAttribute says memory type %d, want device (%d)", mt, devicebuf.CUDAMemoryDevice)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Printf("stream: %d batches, each waited on through cuEventSynchronize(*sync_event), %.2f GiB compared, device memory confirmed by cuPointerGetAttribute, %v (with copy-back)\n",
		len(recs), gib(compared), elapsed.Round(time.Millisecond))
	return nil
}

// bandwidth measures raw pinned copies, the Volley pipeline onto cuda:0
// and cuda_host:0, and a CPU stream; it reports whether the pipeline met
// the target fraction of raw pinned bandwidth.
func bandwidth(ctx context.Context, m *devicebuf.Manager, cuda *devicebuf.CUDA, recs []arrow.RecordBatch, total int64, c config) (bool, error) {
	const rawSize = 64 << 20
	iters := int(max(1, total/rawSize))
	var raw float64
	for range c.reps {
		bw, err := cuda.RawCopyBandwidth(0, rawSize, iters)
		if err != nil {
			return false, fmt.Errorf("raw pinned copies: %w", err)
		}
		raw = max(raw, bw)
	}
	best := func(dev async.Device) (float64, error) {
		var bw float64
		for range c.reps {
			d, err := stream(ctx, m, dev, recs, c.window, func(_ int, b *async.DeviceBatch) error { return goWait(ctx, b) })
			if err != nil {
				return 0, fmt.Errorf("%s stream: %w", dev, err)
			}
			bw = max(bw, float64(total)/d.Seconds())
		}
		return bw, nil
	}
	pipe, err := best(cuda0)
	if err != nil {
		return false, err
	}
	host, err := best(async.Device{Type: async.DeviceCUDAHost, ID: 0})
	if err != nil {
		return false, err
	}
	cpu, err := best(async.CPU)
	if err != nil {
		return false, err
	}
	ratio := pipe / raw
	fmt.Printf("bandwidth: raw pinned cuMemcpyHtoDAsync %.2f GB/s (%d x 64 MiB)\n", raw/1e9, iters)
	fmt.Printf("bandwidth: volley stream -> cuda:0      %.2f GB/s = %.0f%% of raw pinned (target %.0f%%)\n", pipe/1e9, 100*ratio, 100*c.target)
	fmt.Printf("bandwidth: volley stream -> cuda_host:0 %.2f GB/s\n", host/1e9)
	fmt.Printf("bandwidth: volley stream -> cpu         %.2f GB/s (no copy: runtime overhead only)\n", cpu/1e9)
	return ratio >= c.target, nil
}

// fallback points the CUDA library nowhere, checks the inventory says why
// cuda:0 cannot be used, and streams to the CPU instead.
func fallback(ctx context.Context, c config) bool {
	m := devicebuf.NewManager(devicebuf.Options{CUDALibraryPath: c.fallbackLib})
	defer m.Close()
	var reason string
	for _, in := range m.Inventory(ctx) {
		if in.Device == cuda0 {
			if in.Usable {
				fmt.Printf("FAIL fallback: cuda:0 usable with the library at %s\n", c.fallbackLib)
				return false
			}
			reason = in.Reason
		}
	}
	if !strings.Contains(reason, "libcuda.so.1 not found") {
		fmt.Printf("FAIL fallback: cuda:0 reason %q does not say the library is missing\n", reason)
		return false
	}
	dev := cuda0
	if _, err := m.Mover(ctx, cuda0, devicebuf.MoverOptions{}); err != nil {
		if !errors.Is(err, devicebuf.ErrUnavailable) {
			fmt.Printf("FAIL fallback: Mover(cuda:0): %v, want ErrUnavailable\n", err)
			return false
		}
		dev = async.CPU
	}
	recs, _ := generate(memory.DefaultAllocator, 4<<20, 4096)
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	_, err := stream(ctx, m, dev, recs, 4, func(i int, b *async.DeviceBatch) error {
		if err := goWait(ctx, b); err != nil {
			return err
		}
		if b.Device != async.CPU || b.Record == nil {
			return fmt.Errorf("batch on %s", b.Device)
		}
		if !array.RecordEqual(b.Record, recs[i]) {
			return errMismatch
		}
		return nil
	})
	if err != nil || dev != async.CPU {
		fmt.Printf("FAIL fallback: streamed to %s: %v\n", dev, err)
		return false
	}
	fmt.Printf("PASS fallback: %d batches streamed to cpu because cuda:0 is unusable: %s\n", len(recs), reason)
	return true
}
