package devicebuf_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/devicebuf"
)

// cBufferCount is the number of buffers the Arrow C data interface gives
// each type (spec "Buffers" table), view types aside.
var cBufferCount = map[arrow.Type]int{
	arrow.INT8: 2, arrow.UINT8: 2, arrow.INT16: 2, arrow.INT32: 2, arrow.INT64: 2, arrow.UINT16: 2,
	arrow.FLOAT32: 2, arrow.FLOAT64: 2, arrow.BOOL: 2, arrow.DATE32: 2, arrow.TIMESTAMP: 2,
	arrow.DECIMAL128: 2, arrow.STRING: 3, arrow.LARGE_STRING: 3, arrow.BINARY: 3,
	arrow.LIST: 2, arrow.FIXED_SIZE_LIST: 1, arrow.STRUCT: 1, arrow.DICTIONARY: 2, arrow.NULL: 0,
	arrow.MAP: 2, arrow.LARGE_LIST: 2, arrow.LIST_VIEW: 3, arrow.SPARSE_UNION: 1, arrow.DENSE_UNION: 2,
	arrow.RUN_END_ENCODED: 0,
}

// expectedBuffers is what the C data interface carries for d, in order.
func expectedBuffers(t *testing.T, d arrow.ArrayData) [][]byte {
	t.Helper()
	var out [][]byte
	bufs := d.Buffers()
	id := d.DataType().ID()
	switch id {
	case arrow.NULL, arrow.RUN_END_ENCODED:
		return nil
	case arrow.SPARSE_UNION, arrow.DENSE_UNION: // arrow-go keeps an empty validity slot
		if bufs[0] != nil && bufs[0].Len() > 0 {
			t.Fatalf("%s: union with a validity buffer", d.DataType())
		}
		bufs = bufs[1:]
	}
	for _, b := range bufs {
		if b == nil {
			out = append(out, nil)
		} else {
			out = append(out, b.Bytes())
		}
	}
	if id == arrow.STRING_VIEW {
		sizes := make([]byte, 0)
		for _, b := range bufs[2:] {
			n := uint64(b.Len())
			sizes = append(sizes, byte(n), byte(n>>8), byte(n>>16), byte(n>>24), byte(n>>32), byte(n>>40), byte(n>>48), byte(n>>56))
		}
		out = append(out, sizes)
	} else if want, ok := cBufferCount[id]; !ok || want != len(out) {
		t.Fatalf("%s: arrow-go has %d buffers, the C data interface %d (known %v)", d.DataType(), len(out), want, ok)
	}
	return out
}

// compareDevice checks one device array against its CPU original, reading
// the device buffers back.
func compareDevice(t *testing.T, sim *devicebuf.Simulated, path string, da *async.DeviceArray, d arrow.ArrayData) {
	t.Helper()
	if da.Length != int64(d.Len()) || da.Offset != int64(d.Offset()) || da.NullCount != int64(d.NullN()) {
		t.Errorf("%s: length/offset/nulls %d/%d/%d, want %d/%d/%d", path, da.Length, da.Offset, da.NullCount, d.Len(), d.Offset(), d.NullN())
	}
	want := expectedBuffers(t, d)
	if len(da.Buffers) != len(want) {
		t.Fatalf("%s (%s): %d buffers, want %d", path, d.DataType(), len(da.Buffers), len(want))
	}
	for i, w := range want {
		b := da.Buffers[i]
		if w == nil {
			if b.Addr != 0 || b.Len != 0 {
				t.Errorf("%s buffer %d: %+v, want absent", path, i, b)
			}
			continue
		}
		if b.Len != int64(len(w)) {
			t.Errorf("%s buffer %d: %d bytes, want %d", path, i, b.Len, len(w))
			continue
		}
		if b.Len == 0 {
			continue
		}
		got, err := sim.CopyToHost(0, b.Addr, b.Len)
		if err != nil {
			t.Fatalf("%s buffer %d: CopyToHost: %v", path, i, err)
		}
		if !bytes.Equal(got, w) {
			t.Errorf("%s buffer %d: device bytes differ from the CPU original", path, i)
		}
	}
	if len(da.Children) != len(d.Children()) {
		t.Fatalf("%s: %d children, want %d", path, len(da.Children), len(d.Children()))
	}
	for i, c := range d.Children() {
		compareDevice(t, sim, path+"."+string(rune('0'+i)), da.Children[i], c)
	}
	isDict := d.DataType().ID() == arrow.DICTIONARY
	if (da.Dictionary != nil) != isDict {
		t.Fatalf("%s: dictionary presence differs", path)
	}
	if isDict {
		compareDevice(t, sim, path+".dict", da.Dictionary, d.Dictionary())
	}
}

func TestMoveEveryTypeToDevice(t *testing.T) {
	e := newEnv(t, devicebuf.SimOptions{}, devicebuf.Options{})
	mv := e.mover("cuda:0", devicebuf.MoverOptions{})
	rec := allTypesRecord(t, e.alloc)
	defer rec.Release()
	rec.Retain() // Move takes one reference
	batch, err := mv.Move(t.Context(), rec)
	if err != nil {
		t.Fatal(err)
	}
	defer batch.Release()
	if batch.Device != (async.Device{Type: async.DeviceCUDA, ID: 0}) || batch.Record != nil || batch.Array == nil {
		t.Fatalf("batch: device %s record %v array %v", batch.Device, batch.Record != nil, batch.Array != nil)
	}
	if batch.NumRows != rec.NumRows() || !batch.Schema.Equal(rec.Schema()) {
		t.Fatalf("batch rows %d schema %s", batch.NumRows, batch.Schema)
	}
	if batch.SyncEvent == nil || *(*uintptr)(batch.SyncEvent) == 0 {
		t.Fatal("device batch has no sync event handle")
	}
	if err := batch.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	top := batch.Array
	if top.Length != rec.NumRows() || len(top.Buffers) != 1 || top.Buffers[0].Addr != 0 || len(top.Children) != int(rec.NumCols()) {
		t.Fatalf("top-level struct: %+v", top)
	}
	for i, col := range rec.Columns() {
		compareDevice(t, e.sim, rec.ColumnName(i), top.Children[i], col.Data())
		for _, b := range top.Children[i].Buffers {
			if b.Addr != 0 && b.Addr < 1<<40 {
				t.Errorf("%s: device address %#x looks like a host pointer", rec.ColumnName(i), b.Addr)
			}
		}
	}
	// String offsets carry length+1 entries past the slice offset.
	str := top.Children[7]
	if need := (str.Offset + str.Length + 1) * 4; str.Buffers[1].Len < need {
		t.Errorf("string offsets: %d bytes, need %d", str.Buffers[1].Len, need)
	}
}

func TestMoveLessCommonLayouts(t *testing.T) {
	e := newEnv(t, devicebuf.SimOptions{}, devicebuf.Options{})
	dev := e.mover("cuda:0", devicebuf.MoverOptions{})
	host := e.mover("cuda_host:0", devicebuf.MoverOptions{})
	rec := moreTypesRecord(t, e.alloc)
	defer rec.Release()
	rec.Retain()
	b, err := dev.Move(t.Context(), rec)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if err := b.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i, col := range rec.Columns() {
		compareDevice(t, e.sim, rec.ColumnName(i), b.Array.Children[i], col.Data())
	}
	if n := len(b.Array.Children[6].Buffers); n != 4 { // validity, views, 1 data buffer, sizes
		t.Errorf("string view: %d buffers", n)
	}
	rec.Retain()
	hb, err := host.Move(t.Context(), rec)
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Release()
	if !array.RecordEqual(hb.Record, rec) {
		t.Error("pinned record of the less common layouts differs")
	}
}

func TestMoveEveryTypeToPinnedHost(t *testing.T) {
	for _, labelled := range []bool{false, true} {
		t.Run(map[bool]string{false: "cuda_host", true: "cpu-labelled"}[labelled], func(t *testing.T) {
			e := newEnv(t, devicebuf.SimOptions{}, devicebuf.Options{})
			mv := e.mover("cuda_host:0", devicebuf.MoverOptions{CPULabelledPinned: labelled})
			rec := allTypesRecord(t, e.alloc)
			defer rec.Release()
			rec.Retain()
			pinsBefore := e.sim.Pins()
			batch, err := mv.Move(t.Context(), rec)
			if err != nil {
				t.Fatal(err)
			}
			want := async.Device{Type: async.DeviceCUDAHost, ID: 0}
			if labelled {
				want = async.CPU
			}
			if batch.Device != want || mv.Device() != want {
				t.Errorf("device %s / mover %s, want %s", batch.Device, mv.Device(), want)
			}
			if batch.SyncEvent != nil || batch.Record == nil || batch.Array == nil {
				t.Fatalf("pinned batch: event %v record %v array %v", batch.SyncEvent, batch.Record != nil, batch.Array != nil)
			}
			if err := batch.Wait(t.Context()); err != nil {
				t.Fatal(err)
			}
			if !array.RecordEqual(batch.Record, rec) {
				t.Fatal("pinned record differs from the original")
			}
			if e.sim.Pins() != pinsBefore+1 {
				t.Errorf("pins: %d new, want 1 block", e.sim.Pins()-pinsBefore)
			}
			// The record's buffers are the pinned block the Array describes.
			col := batch.Record.Column(2).Data().Buffers()[1].Bytes()
			if addr := batch.Array.Children[2].Buffers[1].Addr; addr == 0 || uintptr(unsafePointer(col)) != addr {
				t.Errorf("record buffer not at the Array's address %#x", addr)
			}
			// A retained record outlives the batch.
			kept := batch.Record
			kept.Retain()
			batch.Release()
			again := allTypesRecord(t, e.alloc) // reuse would overwrite kept's block
			b2, err := mv.Move(t.Context(), again)
			if err != nil {
				t.Fatal(err)
			}
			if !array.RecordEqual(kept, rec) {
				t.Error("retained record changed after its batch was released")
			}
			kept.Release()
			b2.Release()
			// Now the block is free and reused: no new pin.
			pins := e.sim.Pins()
			b3, err := mv.Move(t.Context(), allTypesRecord(t, e.alloc))
			if err != nil {
				t.Fatal(err)
			}
			b3.Release()
			if e.sim.Pins() != pins {
				t.Errorf("released block not reused: %d new pins", e.sim.Pins()-pins)
			}
		})
	}
}

func TestCPULabelledPinnedFromCPU(t *testing.T) {
	e := newEnv(t, devicebuf.SimOptions{}, devicebuf.Options{})
	mv := e.mover("cpu", devicebuf.MoverOptions{CPULabelledPinned: true})
	rec := intRecord(e.alloc, 10, 0)
	rec.Retain()
	defer rec.Release()
	b, err := mv.Move(t.Context(), rec)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if b.Device != async.CPU || b.Record == rec || !array.RecordEqual(b.Record, rec) || b.Array == nil {
		t.Fatalf("pinned cpu-labelled batch: device %s, same record %v", b.Device, b.Record == rec)
	}
	// Without a usable GPU it is the plain CPU mover.
	e2 := newEnv(t, devicebuf.SimOptions{NoDevice: true}, devicebuf.Options{})
	mv2 := e2.mover("cpu", devicebuf.MoverOptions{CPULabelledPinned: true})
	rec2 := intRecord(e2.alloc, 10, 0)
	b2, err := mv2.Move(t.Context(), rec2)
	if err != nil {
		t.Fatal(err)
	}
	if b2.Record != rec2 {
		t.Error("without a GPU the cpu mover should pass records through")
	}
	b2.Release()
}

func TestNoDeviceInventory(t *testing.T) {
	e := newEnv(t, devicebuf.SimOptions{NoDevice: true}, devicebuf.Options{})
	inv := e.m.Inventory(t.Context())
	if len(inv) != 3 || inv[0].Device != async.CPU || !inv[0].Usable {
		t.Fatalf("inventory %+v", inv)
	}
	for _, in := range inv[1:] {
		if in.Usable || !strings.Contains(in.Reason, "CUDA_ERROR_NO_DEVICE") || in.Device.ID != 0 {
			t.Errorf("%s: usable %v reason %q", in.Device, in.Usable, in.Reason)
		}
	}
	_, err := e.m.Mover(t.Context(), async.Device{Type: async.DeviceCUDA, ID: 0}, devicebuf.MoverOptions{})
	if !errors.Is(err, devicebuf.ErrUnavailable) || !strings.Contains(err.Error(), "CUDA_ERROR_NO_DEVICE") {
		t.Errorf("Mover: %v", err)
	}
}

func TestInventoryNumbersGPUsAcrossBackends(t *testing.T) {
	sim := devicebuf.NewSimulated(devicebuf.SimOptions{Devices: 2, TotalBytes: 8 << 30})
	m := devicebuf.NewManager(devicebuf.Options{Backends: []devicebuf.Backend{
		devicebuf.NewSimulated(devicebuf.SimOptions{NoDevice: true}), sim}})
	defer m.Close()
	var got []string
	for _, in := range m.Inventory(t.Context()) {
		got = append(got, in.Device.String()+map[bool]string{true: "+", false: "-"}[in.Usable])
		if in.Device.Type == async.DeviceCUDA && in.Usable && (in.TotalBytes != 8<<30 || in.FreeBytes != 8<<30 || !in.Simulated || in.Name != "simulated GPU") {
			t.Errorf("%+v", in)
		}
	}
	want := "cpu+ cuda_host:0- cuda:0- cuda_host:1+ cuda:1+ cuda_host:2+ cuda:2+"
	if strings.Join(got, " ") != want {
		t.Errorf("inventory %q, want %q", strings.Join(got, " "), want)
	}
}

func TestCPUMoverIsNoOp(t *testing.T) {
	e := newEnv(t, devicebuf.SimOptions{}, devicebuf.Options{})
	mv := e.mover("cpu", devicebuf.MoverOptions{})
	rec := intRecord(e.alloc, 10, 0)
	batch, err := mv.Move(t.Context(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if batch.Record != rec || batch.Device != async.CPU || batch.SyncEvent != nil || mv.Device() != async.CPU {
		t.Fatalf("cpu batch: %+v", batch)
	}
	batch.Release()
}

func TestWaitOrdersReads(t *testing.T) {
	e := newEnv(t, devicebuf.SimOptions{}, devicebuf.Options{})
	mv := e.mover("cuda:0", devicebuf.MoverOptions{})
	e.sim.Hold()
	batch, err := mv.Move(t.Context(), intRecord(e.alloc, 1000, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer batch.Release()
	buf := batch.Array.Children[0].Buffers[1]
	raw, err := e.sim.PeekDevice(0, buf.Addr, buf.Len)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, bytes.Repeat([]byte{0xDE}, int(buf.Len))) {
		t.Fatal("device memory read before the copy ran is not the 0xDE poison")
	}
	if _, err := e.sim.CopyToHost(0, buf.Addr, buf.Len); !errors.Is(err, devicebuf.ErrNotSynchronized) {
		t.Fatalf("CopyToHost before Wait: %v, want ErrNotSynchronized", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := batch.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled ctx while the copy is held: %v", err)
	}
	e.sim.Resume()
	if err := batch.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := e.sim.CopyToHost(0, buf.Addr, buf.Len)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if v := int64(got[8*i]) | int64(got[8*i+1])<<8; v != int64(7+i) {
			t.Fatalf("value %d: %d", i, v)
		}
	}
}

func TestPoolingAndCoalescing(t *testing.T) {
	e := newEnv(t, devicebuf.SimOptions{}, devicebuf.Options{PinnedPoolBytes: 4 << 20, SlabBytes: 1 << 20})
	mv := e.mover("cuda:0", devicebuf.MoverOptions{})
	// First batch: the staging pool is pinned once, plus one page of event slots.
	b, err := mv.Move(t.Context(), wideRecord(e.alloc, 40, 100))
	if err != nil {
		t.Fatal(err)
	}
	// Wait before releasing: a batch released while its copy is in flight
	// returns its block to the pool only when the copy completes, and the
	// next Move would not find it there yet.
	if err := b.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.Release()
	pins, allocs, copies := e.sim.Pins(), e.sim.DeviceAllocs(), e.sim.Copies()
	if pins != 2 {
		t.Errorf("pins after the first batch: %d, want 2 (staging pool + event slots)", pins)
	}
	const batches = 50
	for i := range batches {
		b, err := mv.Move(t.Context(), wideRecord(e.alloc, 40, 100))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if got := e.sim.Copies() - copies; got != 1 {
				t.Errorf("40 columns (80 buffers) took %d copies, want 1 coalesced copy", got)
			}
		}
		b.Release()
	}
	if n := e.sim.Pins() - pins; n != 0 {
		t.Errorf("%d pins for %d batches: staging memory is pinned per batch", n, batches)
	}
	if n := e.sim.DeviceAllocs() - allocs; n != 0 {
		t.Errorf("%d device allocations for %d batches: the block pool is not reused", n, batches)
	}
	if n := e.sim.Copies() - copies; n != batches {
		t.Errorf("%d copies for %d batches", n, batches)
	}
	// A batch larger than a slab is split into slab-sized copies with one
	// sync event at the end.
	copies = e.sim.Copies()
	const bigRows = (3<<20 - 128<<10) / 8 // values and validity just under 3 MiB
	big := intRecord(e.alloc, bigRows, 0)
	b, err = mv.Move(t.Context(), big)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.Copies() - copies; n != 3 {
		t.Errorf("3 MiB through 1 MiB slabs took %d copies, want 3", n)
	}
	buf := b.Array.Children[0].Buffers[1]
	got, err := e.sim.CopyToHost(0, buf.Addr, buf.Len)
	if err != nil {
		t.Fatal(err)
	}
	ref := intRecord(e.alloc, bigRows, 0)
	if !bytes.Equal(got, ref.Column(0).Data().Buffers()[1].Bytes()) {
		t.Error("multi-slab batch differs on the device")
	}
	ref.Release()
	b.Release()
}

func TestPoolBoundsMemory(t *testing.T) {
	e := newEnv(t, devicebuf.SimOptions{}, devicebuf.Options{PinnedPoolBytes: 2 << 20, SlabBytes: 1 << 20})
	mv := e.mover("cuda:0", devicebuf.MoverOptions{})
	e.sim.Hold()
	var held []*async.DeviceBatch
	for range 2 { // each takes one slab, which stays in flight
		b, err := mv.Move(t.Context(), intRecord(e.alloc, 1000, 0))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, b)
	}
	ctx, cancel := context.WithCancelCause(t.Context())
	cause := errors.New("consumer gave up")
	cancel(cause)
	if _, err := mv.Move(ctx, intRecord(e.alloc, 1000, 0)); !errors.Is(err, cause) {
		t.Fatalf("Move with every slab in flight: %v, want the ctx cause", err)
	}
	// A Move that waits gets a slab once the copies complete.
	var wg sync.WaitGroup
	var moved *async.DeviceBatch
	var moveErr error
	wg.Go(func() { moved, moveErr = mv.Move(t.Context(), intRecord(e.alloc, 1000, 0)) })
	e.sim.Resume()
	wg.Wait()
	if moveErr != nil {
		t.Fatal(moveErr)
	}
	for _, b := range append(held, moved) {
		if err := b.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		b.Release()
	}
}

func TestReleaseFromOtherGoroutines(t *testing.T) {
	// 32 slabs: the 20 held copies fit.
	e := newEnv(t, devicebuf.SimOptions{}, devicebuf.Options{PinnedPoolBytes: 32 << 20, SlabBytes: 1 << 20})
	mv := e.mover("cuda:0", devicebuf.MoverOptions{})
	e.sim.Hold() // some batches are released before their copy completes
	var batches []*async.DeviceBatch
	for i := range 20 {
		b, err := mv.Move(t.Context(), intRecord(e.alloc, 100+i, i))
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, b)
	}
	var wg sync.WaitGroup
	for _, b := range batches {
		for range 3 { // three goroutines race to release each batch
			wg.Go(b.Release)
		}
	}
	wg.Wait()
	e.sim.Resume()
	for _, b := range batches {
		if !b.Released() {
			t.Fatal("batch not released")
		}
		if err := b.Wait(t.Context()); !errors.Is(err, async.ErrReleased) {
			t.Errorf("Wait after Release: %v", err)
		}
	}
	// Cleanup checks that every block and event was freed exactly once.
}

func TestTwoStreamsShareAGPU(t *testing.T) {
	e := newEnv(t, devicebuf.SimOptions{}, devicebuf.Options{PinnedPoolBytes: 2 << 20, SlabBytes: 256 << 10})
	var wg sync.WaitGroup
	for s := range 2 {
		mv := e.mover("cuda:0", devicebuf.MoverOptions{})
		wg.Go(func() {
			for i := range 30 {
				rec := intRecord(e.alloc, 50000, s*1000+i)
				want := append([]byte(nil), rec.Column(0).Data().Buffers()[1].Bytes()...)
				b, err := mv.Move(t.Context(), rec)
				if err != nil {
					t.Error(err)
					return
				}
				if err := b.Wait(t.Context()); err != nil {
					t.Error(err)
				}
				buf := b.Array.Children[0].Buffers[1]
				got, err := e.sim.CopyToHost(0, buf.Addr, buf.Len)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("stream %d batch %d: %v / equal %v", s, i, err, bytes.Equal(got, want))
				}
				b.Release()
			}
		})
	}
	wg.Wait()
}

func TestOutOfMemory(t *testing.T) {
	e := newEnv(t, devicebuf.SimOptions{OOMAfterBytes: 1 << 20}, devicebuf.Options{})
	mv := e.mover("cuda:0", devicebuf.MoverOptions{})
	_, err := mv.Move(t.Context(), intRecord(e.alloc, 1<<18, 0)) // 2 MiB
	if !errors.Is(err, devicebuf.ErrOutOfMemory) || !errors.Is(err, async.ErrOutOfMemory) {
		t.Fatalf("Move past the memory limit: %v", err)
	}
	if async.CodeOf(err) != async.ENOMEM {
		t.Errorf("errno %v, want ENOMEM", async.CodeOf(err))
	}
	for _, want := range []string{"cuda:0", "CUDA_ERROR_OUT_OF_MEMORY", "rows"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// A batch that fits still moves.
	b, err := mv.Move(t.Context(), intRecord(e.alloc, 1000, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.Release()
}

func TestCopyFailureAtBatchK(t *testing.T) {
	const k = 3
	e := newEnv(t, devicebuf.SimOptions{FailCopyAt: k}, devicebuf.Options{})
	mv := e.mover("cuda:0", devicebuf.MoverOptions{})
	for i := 1; i <= k; i++ {
		b, err := mv.Move(t.Context(), intRecord(e.alloc, 100, i))
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		err = b.Wait(t.Context())
		b.Release()
		if i < k && err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if i == k && !errors.Is(err, devicebuf.ErrCopyFailed) {
			t.Fatalf("batch %d (failing copy): Wait returned %v, want ErrCopyFailed", i, err)
		}
	}
	if _, err := mv.Move(t.Context(), intRecord(e.alloc, 100, 0)); !errors.Is(err, devicebuf.ErrCopyFailed) {
		t.Fatalf("Move after a failed copy: %v, want the earlier failure", err)
	}
	// The failure was not sticky: a new stream works.
	mv2 := e.mover("cuda:0", devicebuf.MoverOptions{})
	b, err := mv2.Move(t.Context(), intRecord(e.alloc, 100, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.Release()
}

func TestStickyErrorPoisons(t *testing.T) {
	t.Run("copy", func(t *testing.T) {
		e := newEnv(t, devicebuf.SimOptions{PoisonAtCopy: 2}, devicebuf.Options{})
		mv := e.mover("cuda:0", devicebuf.MoverOptions{})
		b1, err := mv.Move(t.Context(), intRecord(e.alloc, 100, 0))
		if err != nil {
			t.Fatal(err)
		}
		defer b1.Release()
		b2, err := mv.Move(t.Context(), intRecord(e.alloc, 100, 0))
		switch {
		case err != nil:
			// The copy ran (and failed) before Move recorded its event: like
			// CUDA's, the sticky error surfaces at the next call.
			if !errors.Is(err, devicebuf.ErrPoisoned) {
				t.Fatalf("Move whose copy hit an illegal address: %v", err)
			}
		default:
			if err := b2.Wait(t.Context()); !errors.Is(err, devicebuf.ErrPoisoned) {
				t.Errorf("Wait on the batch whose copy hit an illegal address: %v", err)
			}
			b2.Release()
		}
		// The first batch's copy completed before the fault; a wait on it
		// may still report the sticky error, as cuEventSynchronize may.
		if err := b1.Wait(t.Context()); err != nil && !errors.Is(err, devicebuf.ErrPoisoned) {
			t.Errorf("Wait on the batch copied before the fault: %v", err)
		}
		assertPoisoned(t, e, "CUDA_ERROR_ILLEGAL_ADDRESS")
		if _, err := mv.Move(t.Context(), intRecord(e.alloc, 10, 0)); !errors.Is(err, devicebuf.ErrPoisoned) {
			t.Errorf("Move on a poisoned device: %v", err)
		}
	})
	t.Run("kernel", func(t *testing.T) {
		e := newEnv(t, devicebuf.SimOptions{}, devicebuf.Options{})
		mv := e.mover("cuda:0", devicebuf.MoverOptions{})
		e.sim.Poison(0, 719)
		if _, err := mv.Move(t.Context(), intRecord(e.alloc, 10, 0)); !errors.Is(err, devicebuf.ErrPoisoned) || !errors.Is(err, devicebuf.ErrUnavailable) {
			t.Errorf("Move on a poisoned device: %v", err)
		}
		assertPoisoned(t, e, "CUDA_ERROR_LAUNCH_FAILED")
	})
}

func assertPoisoned(t *testing.T, e *env, name string) {
	t.Helper()
	for _, in := range e.m.Inventory(t.Context()) {
		if in.Device.Type == async.DeviceCPU {
			continue
		}
		if in.Usable || !strings.HasPrefix(in.Reason, "poisoned: ") || !strings.Contains(in.Reason, name) {
			t.Errorf("%s: usable %v reason %q, want poisoned with %s", in.Device, in.Usable, in.Reason, name)
		}
	}
	_, err := e.m.Mover(t.Context(), async.Device{Type: async.DeviceCUDA, ID: 0}, devicebuf.MoverOptions{})
	if !errors.Is(err, devicebuf.ErrPoisoned) || !strings.Contains(err.Error(), name) {
		t.Errorf("Mover on a poisoned device: %v", err)
	}
}

func TestBatchOutlivesMoverAndManager(t *testing.T) {
	e := newEnv(t, devicebuf.SimOptions{}, devicebuf.Options{})
	d := async.Device{Type: async.DeviceCUDA, ID: 0}
	mv, err := e.m.Mover(t.Context(), d, devicebuf.MoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := intRecord(e.alloc, 500, 3)
	want := append([]byte(nil), rec.Column(0).Data().Buffers()[1].Bytes()...)
	b, err := mv.Move(t.Context(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Close(); err != nil { // closes the mover too
		t.Fatal(err)
	}
	if err := e.m.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := mv.Move(t.Context(), intRecord(e.alloc, 1, 0)); !errors.Is(err, devicebuf.ErrClosed) {
		t.Errorf("Move after Close: %v", err)
	}
	if _, err := e.m.Mover(t.Context(), d, devicebuf.MoverOptions{}); !errors.Is(err, devicebuf.ErrClosed) {
		t.Errorf("Mover after Close: %v", err)
	}
	if err := b.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	buf := b.Array.Children[0].Buffers[1]
	got, err := e.sim.CopyToHost(0, buf.Addr, buf.Len)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("batch after Close: %v", err)
	}
	if e.sim.Allocated() == 0 {
		t.Fatal("batch memory freed before its release")
	}
	b.Release()
	e.assertNoLeaks()
}

func TestCloseStopsAWaitingMove(t *testing.T) {
	e := newEnv(t, devicebuf.SimOptions{}, devicebuf.Options{PinnedPoolBytes: 2 << 20, SlabBytes: 1 << 20})
	d := async.Device{Type: async.DeviceCUDA, ID: 0}
	mv, err := e.m.Mover(t.Context(), d, devicebuf.MoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.sim.Hold()
	var held []*async.DeviceBatch
	for range 2 {
		b, err := mv.Move(t.Context(), intRecord(e.alloc, 1000, 0))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, b)
	}
	moved := make(chan error, 1)
	go func() {
		_, err := mv.Move(t.Context(), intRecord(e.alloc, 1000, 0)) // waits for a slab
		moved <- err
	}()
	closed := make(chan error, 1)
	go func() { closed <- mv.(interface{ Close() error }).Close() }()
	// The waiting Move gives up at once, while the copies are still held.
	if err := <-moved; !errors.Is(err, devicebuf.ErrClosed) {
		t.Fatalf("Move waiting for a slab during Close: %v, want ErrClosed", err)
	}
	e.sim.Resume() // Close waits for the copies in flight
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for _, b := range held {
		if err := b.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		b.Release()
	}
}
