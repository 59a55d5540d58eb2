package cabi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"unsafe"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/devicebuf"
)

// TestSimulatedCUDAThroughTheBridge streams DemoSource batches moved onto a
// simulated cuda:0 (devicebuf's simulated backend: device addresses that
// are not host pointers, memory poisoned until the copy ran, events) through
// the C ABI into a Reader that accepts CUDA. The imported batches wait on
// the producer's sync_event through ImportOptions.Wait, their contents are
// read back from the simulated device, and releasing them across the
// boundary frees every device allocation and event.
func TestSimulatedCUDAThroughTheBridge(t *testing.T) {
	noCLeft(t)
	ctx := t.Context()
	be := devicebuf.NewSimulated(devicebuf.SimOptions{})
	sim := be.(*devicebuf.Simulated)
	m := devicebuf.NewManager(devicebuf.Options{Backends: []devicebuf.Backend{be}})
	defer m.Close()
	dev := async.Device{Type: async.DeviceCUDA, ID: 0}
	mv, err := m.Mover(ctx, dev, devicebuf.MoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gpu, err := sim.Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer gpu.Close()
	wait := func(_ context.Context, d async.Device, ev unsafe.Pointer) error {
		if d != dev {
			return fmt.Errorf("wait on %s, want %s", d, dev)
		}
		return gpu.SyncEvent(*(*uintptr)(ev))
	}
	r := async.NewReader(async.ReaderOptions{Window: 3, Accept: []async.DeviceType{async.DeviceCUDA}})
	done := make(chan error, 1)
	const batches, rows = 8, 50
	go func() {
		done <- Produce(ctx, ImportWith(r, ImportOptions{Wait: wait}), &DemoSource{Batches: batches, Rows: rows},
			async.ProduceOptions{Mover: mv}, async.DeviceCUDA)
	}()
	var next int64
	n := 0
	for {
		b, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if b.Device != dev || b.Array == nil || b.SyncEvent == nil {
			t.Fatalf("batch on %s, array %v, event %v", b.Device, b.Array != nil, b.SyncEvent)
		}
		if err := b.Wait(ctx); err != nil {
			t.Fatalf("wait: %v", err)
		}
		ids := b.Array.Children[0]
		vals := ids.Buffers[1]
		if vals.Len != rows*8 {
			t.Errorf("id values buffer %d bytes, want %d", vals.Len, rows*8)
		}
		raw, err := sim.CopyToHost(0, vals.Addr+uintptr(ids.Offset*8), rows*8)
		if err != nil {
			t.Fatalf("reading the device: %v", err)
		}
		for i := range rows {
			if v := int64(binary.LittleEndian.Uint64(raw[i*8:])); v != next {
				t.Fatalf("batch %d row %d = %d, want %d", n, i, v, next)
			}
			next++
		}
		b.Release()
		n++
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.Close()
	mv.(io.Closer).Close()
	if n != batches {
		t.Errorf("read %d batches, want %d", n, batches)
	}
	if a, ev := sim.Allocated(), sim.LiveEvents(); a != 0 || ev != 0 {
		t.Errorf("simulated device: %d bytes and %d events still allocated after every release", a, ev)
	}
}
