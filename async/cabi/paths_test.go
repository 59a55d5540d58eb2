package cabi

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/async/asynctest"
)

// noCLeft fails t if the bridge's C allocations did not return to what
// they were when the test started.
func noCLeft(t *testing.T) {
	t.Helper()
	before := LiveCAllocations()
	t.Cleanup(func() {
		if n := LiveCAllocations(); n != before {
			t.Errorf("%d C allocations of the bridge left (before %d, after %d)", n-before, before, n)
		}
	})
}

// stream runs src through the bridge into a fresh Reader (window w) and
// reads it to its end; it returns the batches read, the Reader's final
// error and Produce's error.
func stream(t *testing.T, ctx context.Context, src async.Source, w int, opts async.ProduceOptions, read func(r *async.Reader, n int) bool) (int, error, error) {
	t.Helper()
	r := async.NewReader(async.ReaderOptions{Window: w})
	done := make(chan error, 1)
	go func() { done <- bridge(ctx, r, src, opts) }()
	n := 0
	var rerr error
	for {
		b, err := r.Next(ctx)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				rerr = err
			}
			break
		}
		b.Release()
		n++
		if read != nil && !read(r, n) {
			break
		}
	}
	perr := <-done
	r.Close()
	return n, rerr, perr
}

func TestErrorPaths(t *testing.T) {
	md := arrow.NewMetadata([]string{"where\x00"}, []string{"\x00\x00 deep"})
	for _, tc := range []struct {
		name     string
		src      *asynctest.Source
		wantRead int
		wantCode async.Errno
	}{
		{"schema-error", &asynctest.Source{SchemaErr: &async.Error{Code: async.ECONNREFUSED, Message: "no server", Metadata: md}}, 0, async.ECONNREFUSED},
		{"fail-after-3", &asynctest.Source{Batches: 10, FailAt: 4, Err: &async.Error{Code: async.EIO, Message: "disk", Metadata: md}}, 3, async.EIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noCLeft(t)
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			tc.src.Alloc = mem
			n, rerr, perr := stream(t, t.Context(), tc.src, 2, async.ProduceOptions{}, nil)
			if n != tc.wantRead {
				t.Errorf("read %d batches, want %d", n, tc.wantRead)
			}
			var e *async.Error
			if !errors.As(rerr, &e) {
				t.Fatalf("reader error %v (%T), want an *async.Error", rerr, rerr)
			}
			if e.Code != tc.wantCode {
				t.Errorf("code %s, want %s", e.Code, tc.wantCode)
			}
			// E3: the error's metadata crossed the C boundary by its binary
			// length, zero bytes and all.
			if v, ok := e.Metadata.GetValue("where\x00"); !ok || v != "\x00\x00 deep" {
				t.Errorf("error metadata %q, want where\\x00=\\x00\\x00 deep", e.Metadata)
			}
			if async.CodeOf(perr) != tc.wantCode {
				t.Errorf("Produce = %v, want code %s", perr, tc.wantCode)
			}
		})
	}
}

func TestConsumerCancel(t *testing.T) {
	noCLeft(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	src := &asynctest.Source{Alloc: mem, Batches: -1}
	n, _, perr := stream(t, t.Context(), src, 4, async.ProduceOptions{}, func(r *async.Reader, n int) bool {
		if n == 5 {
			r.Close() // cancels across the boundary; queued tasks are discarded
		}
		return true
	})
	if n != 5 {
		t.Errorf("read %d batches, want 5", n)
	}
	if !errors.Is(perr, context.Canceled) {
		t.Errorf("Produce = %v, want context.Canceled (A2)", perr)
	}
}

func TestProducerContextCancel(t *testing.T) {
	noCLeft(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	src := &asynctest.Source{Alloc: mem, Batches: -1, BlockAt: 3}
	ctx, cancel := context.WithCancel(t.Context())
	blocked := src.Blocked()
	go func() { <-blocked; cancel() }()
	r := async.NewReader(async.ReaderOptions{Window: 4})
	done := make(chan error, 1)
	go func() { done <- bridge(ctx, r, src, async.ProduceOptions{}) }()
	var rerr error
	for {
		b, err := r.Next(t.Context())
		if err != nil {
			rerr = err
			break
		}
		b.Release()
	}
	perr := <-done
	r.Close()
	if async.CodeOf(rerr) != async.ECANCELED || !errors.Is(rerr, context.Canceled) {
		t.Errorf("reader error %v, want ECANCELED matching context.Canceled", rerr)
	}
	if !errors.Is(perr, context.Canceled) {
		t.Errorf("Produce = %v, want context.Canceled", perr)
	}
}

// refuser refuses the schema or the n-th task, across the bridge.
type refuser struct {
	atTask   int
	tasks    int
	released atomic.Int32
	errs     atomic.Int32
}

func (h *refuser) OnSchema(p async.Producer, _ *arrow.Schema) error {
	if h.atTask == 0 {
		return async.Errorf(async.EPERM, "no thanks")
	}
	p.Request(100)
	return nil
}

func (h *refuser) OnNextTask(t async.Task, _ arrow.Metadata) error {
	if t == nil {
		return nil
	}
	h.tasks++
	if h.tasks == h.atTask {
		return async.Errorf(async.EPERM, "not this one") // the bridge discards it
	}
	t.Discard()
	return nil
}

func (h *refuser) OnError(*async.Error) { h.errs.Add(1) }
func (h *refuser) Release()             { h.released.Add(1) }

func TestRefusals(t *testing.T) {
	for _, at := range []int{0, 3} {
		noCLeft(t)
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		h := &refuser{atTask: at}
		err := bridge(t.Context(), h, &asynctest.Source{Alloc: mem, Batches: 10}, async.ProduceOptions{})
		if !errors.Is(err, async.ErrRefused) || async.CodeOf(err) != async.EPERM {
			t.Errorf("refuse at %d: Produce = %v, want ErrRefused with EPERM", at, err)
		}
		if h.released.Load() != 1 || h.errs.Load() != 0 {
			t.Errorf("refuse at %d: %d releases, %d errors; want 1 release only (S4, N7)", at, h.released.Load(), h.errs.Load())
		}
		mem.AssertSize(t, 0)
	}
}

// fakeMover "moves" batches to cuda:0 by describing them as device arrays
// whose buffer addresses are the host buffers' (never dereferenced by the
// bridge), with a sync event, and counts releases.
type fakeMover struct {
	released, moved atomic.Int64
	addrs           chan uintptr // column 0's values address, per batch
}

var fakeEvent [8]byte // stands for a CUevent; only its address travels

func (m *fakeMover) Device() async.Device { return async.Device{Type: async.DeviceCUDA, ID: 0} }

func (m *fakeMover) Move(_ context.Context, rec arrow.RecordBatch) (*async.DeviceBatch, error) {
	m.moved.Add(1)
	top := &async.DeviceArray{Length: rec.NumRows(), Buffers: []async.DeviceBuffer{{}}}
	for _, col := range rec.Columns() {
		d := col.Data()
		da := &async.DeviceArray{Length: int64(d.Len()), NullCount: int64(d.NullN()), Offset: int64(d.Offset())}
		for _, b := range d.Buffers() {
			var db async.DeviceBuffer
			if b != nil && b.Len() > 0 {
				db = async.DeviceBuffer{Addr: uintptr(unsafe.Pointer(&b.Bytes()[0])), Len: int64(b.Len())}
			}
			da.Buffers = append(da.Buffers, db)
		}
		top.Children = append(top.Children, da)
	}
	m.addrs <- top.Children[0].Buffers[1].Addr
	return async.NewDeviceBatch(async.DeviceBatchParts{Device: m.Device(), Schema: rec.Schema(), NumRows: rec.NumRows(),
		Array: top, SyncEvent: unsafe.Pointer(&fakeEvent), Release: func() { m.released.Add(1); rec.Release() }}), nil
}

// TestDeviceBatchRoundTrip exports DeviceBatches with Array trees (device
// addresses, sync event, device id) and imports them back as device
// batches whose Release runs the C array's release, which releases the
// producer's batch exactly once.
func TestDeviceBatchRoundTrip(t *testing.T) {
	noCLeft(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	mv := &fakeMover{addrs: make(chan uintptr, 16)}
	r := async.NewReader(async.ReaderOptions{Window: 2, Accept: []async.DeviceType{async.DeviceCUDA}})
	done := make(chan error, 1)
	src := &asynctest.Source{Alloc: mem, Batches: 6, Rows: 5, Cols: 2}
	go func() { done <- bridge(t.Context(), r, src, async.ProduceOptions{Mover: mv}) }()
	n := 0
	for {
		b, err := r.Next(t.Context())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if b.Device != (async.Device{Type: async.DeviceCUDA, ID: 0}) || b.Record != nil || b.Array == nil {
			t.Fatalf("batch on %s, record %v, array %v; want a cuda:0 device batch", b.Device, b.Record != nil, b.Array != nil)
		}
		if b.SyncEvent != unsafe.Pointer(&fakeEvent) {
			t.Errorf("sync event %p, want %p (D2)", b.SyncEvent, &fakeEvent)
		}
		if b.NumRows != 5 || len(b.Array.Children) != 2 || b.Array.Children[0].Length != 5 {
			t.Errorf("layout %+v", b.Array)
		}
		c := b.Array.Children[0]
		if len(c.Buffers) != 2 || c.Buffers[1].Addr == 0 || c.Buffers[1].Len != 5*8 {
			t.Errorf("column 0 buffers %+v, want a 40-byte values buffer", c.Buffers)
		}
		if want := <-mv.addrs; c.Buffers[1].Addr != want {
			t.Errorf("batch %d: values at %#x, the producer's are at %#x", n, c.Buffers[1].Addr, want)
		}
		b.Release()
		n++
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.Close()
	if n != 6 || mv.moved.Load() != 6 || mv.released.Load() != 6 {
		t.Errorf("read %d, moved %d, released %d; want 6 each (release exactly once)", n, mv.moved.Load(), mv.released.Load())
	}
}

// dictSource yields record batches with a dictionary column, which the fast
// export does not handle: they go through arrow/cdata.
type dictSource struct {
	mem  memory.Allocator
	sent int
}

var dictSchema = arrow.NewSchema([]arrow.Field{{Name: "d", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}}}, nil)

func (s *dictSource) Schema(context.Context) (*arrow.Schema, error) { return dictSchema, nil }
func (s *dictSource) Close() error                                  { return nil }
func (s *dictSource) Next(context.Context) (async.Batch, error) {
	if s.sent == 3 {
		return async.Batch{}, io.EOF
	}
	s.sent++
	b := array.NewDictionaryBuilder(s.mem, dictSchema.Field(0).Type.(*arrow.DictionaryType)).(*array.BinaryDictionaryBuilder)
	defer b.Release()
	for _, v := range []string{"x", "y", "x"} {
		b.AppendString(v)
	}
	arr := b.NewArray()
	defer arr.Release()
	return async.Batch{Record: array.NewRecordBatch(dictSchema, []arrow.Array{arr}, 3)}, nil
}

func TestCDataFallbackExport(t *testing.T) {
	noCLeft(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r := async.NewReader(async.ReaderOptions{Window: 1})
	done := make(chan error, 1)
	go func() { done <- bridge(t.Context(), r, &dictSource{mem: mem}, async.ProduceOptions{}) }()
	n := 0
	for {
		b, err := r.Next(t.Context())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		d := b.Record.Column(0).(*array.Dictionary)
		dict := d.Dictionary().(*array.String)
		if d.Len() != 3 || dict.Value(d.GetValueIndex(0)) != "x" || dict.Value(d.GetValueIndex(1)) != "y" {
			t.Errorf("batch %d: %v", n, d)
		}
		b.Release()
		n++
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.Close()
	if n != 3 {
		t.Errorf("read %d batches, want 3", n)
	}
}

// panicker panics in OnSchema or in the n-th OnNextTask.
type panicker struct {
	refuser
	inSchema bool
}

func (h *panicker) OnSchema(p async.Producer, s *arrow.Schema) error {
	if h.inSchema {
		panic("handler panics in OnSchema")
	}
	p.Request(100)
	return nil
}

func (h *panicker) OnNextTask(t async.Task, _ arrow.Metadata) error {
	if t == nil {
		return nil
	}
	h.tasks++
	if h.tasks == h.atTask {
		panic("handler panics in OnNextTask")
	}
	t.Discard()
	return nil
}

// TestHandlerPanicAcrossC: a Go handler that panics inside a callback from
// C must not unwind into C: the callback returns EIO, the producer ends the
// stream with release only, and nothing leaks.
func TestHandlerPanicAcrossC(t *testing.T) {
	for _, h := range []*panicker{{inSchema: true}, {refuser: refuser{atTask: 2}}} {
		noCLeft(t)
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		err := bridge(t.Context(), h, &asynctest.Source{Alloc: mem, Batches: 5}, async.ProduceOptions{})
		if !errors.Is(err, async.ErrRefused) || async.CodeOf(err) != async.EIO {
			t.Errorf("Produce = %v, want a refusal with EIO", err)
		}
		if h.released.Load() != 1 {
			t.Errorf("%d releases, want 1", h.released.Load())
		}
		mem.AssertSize(t, 0)
	}
}

// hollowMover yields device batches with neither a Record nor an Array
// tree: the bridge cannot export them, so every extract_data fails.
type hollowMover struct{ moved, released atomic.Int64 }

func (m *hollowMover) Device() async.Device { return async.CPU }

func (m *hollowMover) Move(_ context.Context, rec arrow.RecordBatch) (*async.DeviceBatch, error) {
	m.moved.Add(1)
	return async.NewDeviceBatch(async.DeviceBatchParts{Device: async.CPU, Schema: rec.Schema(), NumRows: rec.NumRows(),
		Release: func() { m.released.Add(1); rec.Release() }}), nil
}

// T5: an extract_data that fails is followed by one on_error for that
// failure, then release only; the Go producer ends, and nothing leaks.
// The consumer extracts inside on_next_task, so on_error must not be
// called from inside extract_data.
func TestExtractFailureReported(t *testing.T) {
	noCLeft(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	m := &hollowMover{}
	h := &asynctest.Handler{InitialRequest: 4}
	// Bounded: without T5 the stream would wait for demand forever.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	perr := bridge(ctx, h, &asynctest.Source{Alloc: mem, Batches: 10}, async.ProduceOptions{Mover: m})
	wctx, wcancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer wcancel()
	if err := h.WaitReleased(wctx); err != nil {
		t.Fatal(err)
	}
	if n := len(h.ExtractErrors()); n < 1 {
		t.Fatalf("%d extraction errors, want at least 1", n)
	}
	if n := h.Count(asynctest.EvError); n != 1 {
		t.Fatalf("%d on_error calls, want 1 (T5)", n)
	}
	var got *async.Error
	var sawErr bool
	for _, e := range h.Events() {
		switch {
		case e.Kind == asynctest.EvError:
			got, sawErr = e.Err, true
		case sawErr && e.Kind != asynctest.EvRelease:
			t.Errorf("%v after on_error (E1)", e.Kind)
		}
	}
	if got.Code != async.EINVAL || !strings.Contains(got.Message, "extract_data") {
		t.Errorf("on_error(%v, %q), want EINVAL naming extract_data", got.Code, got.Message)
	}
	if h.Count(asynctest.EvRelease) != 1 {
		t.Errorf("%d releases", h.Count(asynctest.EvRelease))
	}
	if v := h.Violations(); len(v) > 0 {
		t.Errorf("consumer-side violations: %v", v)
	}
	if perr == nil {
		t.Error("Produce returned nil for a stream that ended in an error")
	}
	if m.moved.Load() != m.released.Load() {
		t.Errorf("%d batches moved, %d released", m.moved.Load(), m.released.Load())
	}
	mem.AssertSize(t, 0)
}
