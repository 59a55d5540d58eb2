package async_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/async/asynctest"
)

func checkedAlloc(t *testing.T) *memory.CheckedAllocator {
	t.Helper()
	a := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { a.AssertSize(t, 0) })
	return a
}

func waitReleased(t *testing.T, h *asynctest.Handler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), asynctest.Timeout)
	defer cancel()
	if err := h.WaitReleased(ctx); err != nil {
		t.Fatal(err)
	}
}

func kindsOf(h *asynctest.Handler) string {
	var b strings.Builder
	for i, e := range h.Events() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(e.Kind.String())
	}
	return b.String()
}

func noViolations(t *testing.T, h *asynctest.Handler) {
	t.Helper()
	for _, v := range h.Violations() {
		t.Error(v)
	}
}

// simMover is a Mover onto a simulated host-accessible device whose copies
// complete asynchronously: Wait blocks until a goroutine-free "copy" (a
// closed channel) is done. It checks the runtime uses Mover.Device and the
// batch's Wait.
type simMover struct {
	dev   async.Device
	moves atomic.Int64
	fail  error
}

func (m *simMover) Device() async.Device { return m.dev }

func (m *simMover) Move(ctx context.Context, rec arrow.RecordBatch) (*async.DeviceBatch, error) {
	m.moves.Add(1)
	if m.fail != nil {
		rec.Release()
		return nil, m.fail
	}
	done := make(chan struct{})
	close(done) // the "copy" completes at once; Wait still goes through it
	return async.NewDeviceBatch(async.DeviceBatchParts{Device: m.dev, Record: rec,
		Wait: func(ctx context.Context) error {
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}}), nil
}

// TestProduceConformsWithMover runs the conformance kit against the
// runtime moving every batch to a (simulated) pinned-host device.
func TestProduceConformsWithMover(t *testing.T) {
	mover := &simMover{dev: async.Device{Type: async.DeviceCUDAHost, ID: 0}}
	asynctest.RunProducerChecks(t, asynctest.ProduceFactory(async.ProduceOptions{Mover: mover}))
	if mover.moves.Load() == 0 {
		t.Fatal("the mover was never used")
	}
}

func TestProduceCleanEndAndStats(t *testing.T) {
	alloc := checkedAlloc(t)
	var st async.Stats
	src := &asynctest.Source{Alloc: alloc, Batches: 4, Rows: 10, Cols: 3}
	h := &asynctest.Handler{InitialRequest: 100}
	md := arrow.NewMetadata([]string{"volley.placement"}, []string{"cpu"})
	err := async.Produce(t.Context(), h, src, async.ProduceOptions{Stats: &st, AdditionalMetadata: md})
	if err != nil {
		t.Fatalf("Produce = %v", err)
	}
	noViolations(t, h)
	if got, want := kindsOf(h), "OnSchema OnNextTask OnNextTask OnNextTask OnNextTask OnNextTask(end) Release"; got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
	if src.Closes() != 1 {
		t.Errorf("source closed %d times", src.Closes())
	}
	if n, rows := h.Extracted(); n != 4 || rows != 40 {
		t.Errorf("extracted %d tasks, %d rows", n, rows)
	}
	s := st.Snapshot()
	ref := asynctest.MakeBatch(alloc, 3, 10, 0)
	perBatch := async.RecordBytes(ref) // checked on its own in TestRecordBytes
	ref.Release()
	if s.Rows != 40 || s.Batches != 4 || s.Bytes != 4*perBatch || perBatch < 3*80 {
		t.Errorf("stats %+v, want 40 rows, 4 batches, %d bytes", s, 4*perBatch)
	}
	if s.Start.IsZero() || s.FirstBatch.IsZero() || s.End.IsZero() || s.End.Before(s.Start) || s.Elapsed() <= 0 {
		t.Errorf("stats times %+v", s)
	}
	if got := h.Producer().AdditionalMetadata(); got.FindKey("volley.placement") != 0 {
		t.Errorf("additional metadata %v", got)
	}
	// A3 and the arrow-go use-after-free: the producer is still safe to
	// call after Release (it does nothing).
	h.Producer().Request(5)
	h.Producer().Cancel()
	if n := len(h.Events()); n != 7 {
		t.Errorf("calls after Release: %s", kindsOf(h))
	}
}

func TestProduceRefusalsReturnErrRefused(t *testing.T) {
	refuse := errors.New("no thanks")
	cases := map[string]*asynctest.Handler{
		"schema": {SchemaHook: func(*asynctest.Handler, async.Producer, *arrow.Schema) error { return refuse }},
		"task": {InitialRequest: 5, TaskHook: func(_ *asynctest.Handler, i int, _ async.Task) error {
			if i == 2 {
				return refuse // not touched: the runtime discards it
			}
			return nil
		}},
		"end": {InitialRequest: 5, EndHook: func(*asynctest.Handler) error { return refuse }},
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: 3}
			err := async.Produce(t.Context(), h, src, async.ProduceOptions{})
			if !errors.Is(err, async.ErrRefused) || !errors.Is(err, refuse) {
				t.Errorf("Produce = %v, want ErrRefused wrapping the handler's error", err)
			}
			if h.Count(asynctest.EvError) != 0 || h.Count(asynctest.EvRelease) != 1 {
				t.Errorf("calls %s", kindsOf(h))
			}
			if src.Closes() != 1 {
				t.Errorf("source closed %d times", src.Closes())
			}
			noViolations(t, h)
		})
	}
}

func TestProduceConsumerCancel(t *testing.T) {
	src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: -1, BlockAt: 3}
	blocked := src.Blocked()
	h := &asynctest.Handler{InitialRequest: 10}
	s := async.Start(t.Context(), h, src, async.ProduceOptions{})
	<-blocked // Next is blocked in the source: Cancel must interrupt it
	h.Cancel()
	err := s.Wait()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Produce = %v, want context.Canceled", err)
	}
	if h.Count(asynctest.EvError) != 0 || h.Count(asynctest.EvEnd) != 0 {
		t.Errorf("A2: a cancelled stream ends with Release only: %s", kindsOf(h))
	}
	if src.Closes() != 1 {
		t.Errorf("source closed %d times", src.Closes())
	}
	noViolations(t, h)
}

func TestProduceContextEnds(t *testing.T) {
	for _, c := range []struct {
		name string
		code async.Errno
		want error
	}{{"cancel", async.ECANCELED, context.Canceled}, {"deadline", async.ETIMEDOUT, context.DeadlineExceeded}} {
		t.Run(c.name, func(t *testing.T) {
			src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: -1, BlockAt: 2}
			blocked := src.Blocked()
			ctx, cancel := context.WithCancel(t.Context())
			if c.name == "deadline" {
				ctx, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
			}
			defer cancel()
			h := &asynctest.Handler{InitialRequest: 10}
			s := async.Start(ctx, h, src, async.ProduceOptions{})
			if c.name == "cancel" {
				<-blocked
				cancel()
			}
			err := s.Wait()
			if !errors.Is(err, c.want) {
				t.Errorf("Produce = %v, want %v", err, c.want)
			}
			es := h.Events()
			if len(es) < 2 || es[len(es)-2].Kind != asynctest.EvError || es[len(es)-2].Err.Code != c.code {
				t.Errorf("calls %s, want OnError(%v) then Release", kindsOf(h), c.code)
			}
			if src.Closes() != 1 {
				t.Errorf("source closed %d times", src.Closes())
			}
			noViolations(t, h)
		})
	}
}

func TestProducePanics(t *testing.T) {
	t.Run("source Next", func(t *testing.T) {
		src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: 5, PanicAt: 2}
		h := &asynctest.Handler{InitialRequest: 10}
		err := async.Produce(t.Context(), h, src, async.ProduceOptions{})
		var e *async.Error
		if !errors.As(err, &e) || e.Code != async.EIO || !strings.Contains(e.Message, "panic") {
			t.Errorf("Produce = %v, want EIO panic", err)
		}
		if got, want := kindsOf(h), "OnSchema OnNextTask OnError Release"; got != want {
			t.Errorf("calls %s, want %s", got, want)
		}
		if src.Closes() != 1 {
			t.Errorf("source closed %d times", src.Closes())
		}
		noViolations(t, h)
	})
	t.Run("source Schema", func(t *testing.T) {
		src := &asynctest.Source{PanicInSchema: true}
		h := &asynctest.Handler{}
		err := async.Produce(t.Context(), h, src, async.ProduceOptions{})
		if async.CodeOf(err) != async.EIO {
			t.Errorf("Produce = %v", err)
		}
		if got, want := kindsOf(h), "OnError Release"; got != want {
			t.Errorf("calls %s, want %s (E2)", got, want)
		}
		if src.Closes() != 1 {
			t.Errorf("source closed %d times", src.Closes())
		}
	})
	for _, where := range []string{"OnSchema", "OnNextTask"} {
		t.Run("handler "+where, func(t *testing.T) {
			src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: 5}
			h := &asynctest.Handler{InitialRequest: 10}
			if where == "OnSchema" {
				h.SchemaHook = func(*asynctest.Handler, async.Producer, *arrow.Schema) error { panic("boom") }
			} else {
				h.TaskHook = func(_ *asynctest.Handler, i int, _ async.Task) error { panic("boom") }
			}
			err := async.Produce(t.Context(), h, src, async.ProduceOptions{})
			if !strings.Contains(err.Error(), "panic in Handler."+where) {
				t.Errorf("Produce = %v", err)
			}
			es := h.Events()
			if es[len(es)-1].Kind != asynctest.EvRelease || h.Count(asynctest.EvError) != 0 {
				t.Errorf("after a handler panic only Release: %s", kindsOf(h))
			}
			if src.Closes() != 1 {
				t.Errorf("source closed %d times", src.Closes())
			}
		})
	}
}

// TestProduceNoReadAhead: the Source is pulled only for demand.
func TestProduceNoReadAhead(t *testing.T) {
	src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: 100}
	second := make(chan struct{})
	h := &asynctest.Handler{InitialRequest: 2, TaskHook: func(_ *asynctest.Handler, i int, _ async.Task) error {
		if i == 2 {
			close(second)
		}
		return nil
	}}
	s := async.Start(t.Context(), h, src, async.ProduceOptions{})
	<-second
	h.Cancel()
	if err := s.Wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("Produce = %v", err)
	}
	if n := src.Nexts(); n != 2 {
		t.Errorf("source pulled %d times for a demand of 2", n)
	}
	noViolations(t, h)
}

// TestIdleProducerCostsNoCPU: a stream with no demand sleeps. Over a 1 s
// idle window the whole process uses less than 50 ms of CPU (rusage).
func TestIdleProducerCostsNoCPU(t *testing.T) {
	src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: 3}
	schema := make(chan struct{})
	h := &asynctest.Handler{SchemaHook: func(*asynctest.Handler, async.Producer, *arrow.Schema) error {
		close(schema)
		return nil
	}}
	s := async.Start(t.Context(), h, src, async.ProduceOptions{})
	<-schema
	cpu := asynctest.IdleCPU(time.Second)
	t.Logf("idle producer: %v CPU over 1s (%.2f%% of a core)", cpu, 100*cpu.Seconds())
	if cpu > 50*time.Millisecond {
		t.Errorf("idle producer used %v of CPU in 1s, want < 50ms", cpu)
	}
	h.Request(10)
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
}

// deviceSource yields batches that are already on a device.
type deviceSource struct {
	asynctest.Source
	dev async.Device
}

func (s *deviceSource) Next(ctx context.Context) (async.Batch, error) {
	b, err := s.Source.Next(ctx)
	if err != nil {
		return b, err
	}
	db := async.NewCPUBatch(b.Record)
	db.Device = s.dev
	return async.Batch{Device: db}, nil
}

func TestProduceDeviceBatches(t *testing.T) {
	host := async.Device{Type: async.DeviceCUDAHost, ID: 0}
	t.Run("pass through", func(t *testing.T) {
		src := &deviceSource{Source: asynctest.Source{Alloc: checkedAlloc(t), Batches: 2}, dev: host}
		mover := &simMover{dev: host}
		h := &asynctest.Handler{InitialRequest: 10}
		if err := async.Produce(t.Context(), h, src, async.ProduceOptions{Mover: mover}); err != nil {
			t.Fatal(err)
		}
		if mover.moves.Load() != 0 {
			t.Errorf("device batches were moved")
		}
		if h.Producer().DeviceType() != async.DeviceCUDAHost {
			t.Errorf("device type %v", h.Producer().DeviceType())
		}
		noViolations(t, h)
	})
	t.Run("wrong device", func(t *testing.T) {
		src := &deviceSource{Source: asynctest.Source{Alloc: checkedAlloc(t), Batches: 2}, dev: host}
		h := &asynctest.Handler{InitialRequest: 10}
		err := async.Produce(t.Context(), h, src, async.ProduceOptions{})
		if !errors.Is(err, async.ErrInvalid) {
			t.Errorf("Produce = %v, want EINVAL", err)
		}
		if got, want := kindsOf(h), "OnSchema OnError Release"; got != want {
			t.Errorf("calls %s, want %s", got, want)
		}
	})
	t.Run("move fails", func(t *testing.T) {
		src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: 2}
		mover := &simMover{dev: host, fail: async.ErrOutOfMemory}
		h := &asynctest.Handler{InitialRequest: 10}
		err := async.Produce(t.Context(), h, src, async.ProduceOptions{Mover: mover})
		if async.CodeOf(err) != async.ENOMEM {
			t.Errorf("Produce = %v, want ENOMEM", err)
		}
		if got, want := kindsOf(h), "OnSchema OnError Release"; got != want {
			t.Errorf("calls %s, want %s", got, want)
		}
	})
}

// closeFails is a Source whose Close fails: on the clean path that becomes
// OnError instead of end of stream.
type closeFails struct{ asynctest.Source }

func (s *closeFails) Close() error { s.Source.Close(); return errors.New("server said no") }

func TestProduceCloseErrorReported(t *testing.T) {
	src := &closeFails{asynctest.Source{Alloc: checkedAlloc(t), Batches: 1}}
	h := &asynctest.Handler{InitialRequest: 10}
	err := async.Produce(t.Context(), h, src, async.ProduceOptions{})
	if err == nil || !strings.Contains(err.Error(), "server said no") {
		t.Errorf("Produce = %v", err)
	}
	if got, want := kindsOf(h), "OnSchema OnNextTask OnError Release"; got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
	if src.Closes() != 1 {
		t.Errorf("closed %d times", src.Closes())
	}
}

func TestProduceSourceErrorCarriesCode(t *testing.T) {
	src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: 5, FailAt: 2, Err: io.ErrUnexpectedEOF}
	h := &asynctest.Handler{InitialRequest: 10}
	err := async.Produce(t.Context(), h, src, async.ProduceOptions{})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Produce = %v", err)
	}
	es := h.Events()
	if e := es[len(es)-2]; e.Kind != asynctest.EvError || e.Err.Code != async.EIO || !errors.Is(e.Err, io.ErrUnexpectedEOF) {
		t.Errorf("OnError event %+v", e)
	}
}

func TestRecordBytes(t *testing.T) {
	alloc := checkedAlloc(t)
	if async.RecordBytes(nil) != 0 {
		t.Error("RecordBytes(nil) != 0")
	}
	const n = 1000
	ib := array.NewInt64Builder(alloc)
	defer ib.Release()
	sb := array.NewStringBuilder(alloc)
	defer sb.Release()
	lb := array.NewListBuilder(alloc, arrow.PrimitiveTypes.Int32)
	defer lb.Release()
	vb := lb.ValueBuilder().(*array.Int32Builder)
	stb := array.NewStructBuilder(alloc, arrow.StructOf(arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Int32}))
	defer stb.Release()
	xb := stb.FieldBuilder(0).(*array.Int32Builder)
	bb := array.NewBooleanBuilder(alloc)
	defer bb.Release()
	lsb := array.NewLargeStringBuilder(alloc)
	defer lsb.Release()
	var strData, listVals int
	for i := range n {
		if i%7 == 0 {
			ib.AppendNull()
		} else {
			ib.Append(int64(i))
		}
		str := strings.Repeat("s", i%13)
		strData += len(str)
		sb.Append(str)
		lsb.Append(str)
		lb.Append(true)
		for k := range i % 4 {
			vb.Append(int32(k))
		}
		listVals += i % 4
		stb.Append(true)
		xb.Append(int32(i))
		bb.Append(i%2 == 0)
	}
	cols := []arrow.Array{ib.NewArray(), sb.NewArray(), lb.NewArray(), stb.NewArray(), bb.NewArray(), lsb.NewArray()}
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		defer c.Release()
		fields[i] = arrow.Field{Name: fmt.Sprint("c", i), Type: c.DataType(), Nullable: true}
	}
	rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, n)
	defer rec.Release()
	const bitmap = (n + 7) / 8
	// Exact for whole columns: what the rows cover, without padding.
	for i, want := range []int64{
		bitmap + 8*n,                                  // int64 with nulls
		bitmap + 4*(n+1) + int64(strData),             // string
		bitmap + 4*(n+1) + bitmap + 4*int64(listVals), // list<int32>: its child's bitmap covers 1500 values
		bitmap + bitmap + 4*n,                         // struct<int32>
		bitmap + bitmap,                               // bool
	} {
		if i == 2 {
			want = bitmap + 4*(n+1) + int64((listVals+7)/8) + 4*int64(listVals)
		}
		one := array.NewRecordBatch(arrow.NewSchema(fields[i:i+1], nil), cols[i:i+1], n)
		if got := async.RecordBytes(one); got != want {
			t.Errorf("column %d (%s): %d bytes, want %d", i, cols[i].DataType(), got, want)
		}
		if whole := bytesOf(cols[i].Data()); async.RecordBytes(one) > whole {
			t.Errorf("column %d: more than its buffers (%d)", i, whole)
		}
		one.Release()
	}
	// Slices count their part: ten slices add up to the whole, give or take
	// a byte per bitmap (9) and an offset per offsets buffer (3, one of
	// them 8 bytes) at each cut, and none counts the shared buffers.
	whole := async.RecordBytes(rec)
	var sum int64
	for lo := int64(0); lo < n; lo += 100 {
		sl := rec.NewSlice(lo, lo+100)
		b := async.RecordBytes(sl)
		sl.Release()
		if b > whole/5 {
			t.Errorf("slice at %d: %d bytes of %d for a tenth of the rows", lo, b, whole)
		}
		sum += b
	}
	if sum < whole || sum > whole+10*(9+2*4+8) {
		t.Errorf("slices add up to %d, whole is %d", sum, whole)
	}
	// A dictionary column counts its indices' part and its whole dictionary.
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	db := array.NewDictionaryBuilder(alloc, dt).(*array.BinaryDictionaryBuilder)
	defer db.Release()
	for _, s := range []string{"a", "bb", "a", "ccc"} {
		db.AppendString(s)
	}
	dict := db.NewArray()
	defer dict.Release()
	drec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "d", Type: dt}}, nil), []arrow.Array{dict}, 4)
	defer drec.Release()
	dictBytes := bytesOf(dict.Data().Dictionary())
	if dictBytes == 0 {
		t.Fatal("the dictionary column has no dictionary bytes to count")
	}
	if got, want := async.RecordBytes(drec), 1+4+dictBytes; got != want {
		t.Errorf("dictionary column: %d bytes, want %d", got, want)
	}
}

// bytesOf walks buffers, children and dictionary by hand.
func bytesOf(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += bytesOf(c)
	}
	if d.DataType().ID() == arrow.DICTIONARY {
		n += bytesOf(d.Dictionary())
	}
	return n
}

// TestProduceBadRequestWhileSourceBlocked: request(0) interrupts a blocked
// Next and ends the stream with EINVAL (R4) promptly.
func TestProduceBadRequestWhileSourceBlocked(t *testing.T) {
	src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: -1, BlockAt: 2}
	blocked := src.Blocked()
	h := &asynctest.Handler{InitialRequest: 10}
	s := async.Start(t.Context(), h, src, async.ProduceOptions{})
	<-blocked
	h.Producer().Request(0)
	if err := s.Wait(); async.CodeOf(err) != async.EINVAL || !errors.Is(err, async.ErrInvalid) {
		t.Errorf("Produce = %v, want EINVAL", err)
	}
	if got, want := kindsOf(h), "OnSchema OnNextTask OnError Release"; got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
	noViolations(t, h)
}

// TestProduceScriptedHandlers drives the runtime with the kit's scripted
// refusals, cancels and panics.
func TestProduceScriptedHandlers(t *testing.T) {
	cases := []struct {
		name  string
		h     *asynctest.Handler
		calls string
		want  error
	}{
		{"refuse schema", &asynctest.Handler{RefuseSchema: true}, "OnSchema Release", async.ErrRefused},
		{"refuse task 2", &asynctest.Handler{InitialRequest: 9, RefuseTask: 2}, "OnSchema OnNextTask OnNextTask Release", async.ErrRefused},
		{"cancel at 3", &asynctest.Handler{InitialRequest: 3, CancelAtTask: 3}, "OnSchema OnNextTask OnNextTask OnNextTask Release", context.Canceled},
		{"cancel at 2 from a goroutine", &asynctest.Handler{InitialRequest: 2, CancelAtTask: 2, CancelAsync: true}, "OnSchema OnNextTask OnNextTask Release", context.Canceled},
		{"panic in schema", &asynctest.Handler{PanicInSchema: true}, "OnSchema Release", nil},
		{"panic at task 2", &asynctest.Handler{InitialRequest: 9, PanicAtTask: 2}, "OnSchema OnNextTask OnNextTask Release", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: -1}
			err := async.Produce(t.Context(), c.h, src, async.ProduceOptions{})
			if c.want != nil && !errors.Is(err, c.want) || c.want == nil && async.CodeOf(err) != async.EIO {
				t.Errorf("Produce = %v, want %v", err, c.want)
			}
			if got := kindsOf(c.h); got != c.calls {
				t.Errorf("calls %s, want %s", got, c.calls)
			}
			if src.Closes() != 1 {
				t.Errorf("source closed %d times", src.Closes())
			}
		})
	}
}

// arraySource yields device batches described only by their layout (no
// host record), as a native GPU adapter would.
type arraySource struct {
	n        int
	released atomic.Int64
}

func (s *arraySource) Schema(context.Context) (*arrow.Schema, error) {
	return asynctest.SchemaFor(1), nil
}
func (s *arraySource) Close() error { return nil }
func (s *arraySource) Next(ctx context.Context) (async.Batch, error) {
	if s.n == 0 {
		return async.Batch{}, io.EOF
	}
	s.n--
	child := &async.DeviceArray{Length: 8, Buffers: []async.DeviceBuffer{{}, {Addr: 0x1000, Len: 64}}}
	arr := &async.DeviceArray{Length: 8, Buffers: []async.DeviceBuffer{{}}, Children: []*async.DeviceArray{child}}
	return async.Batch{Device: async.NewDeviceBatch(async.DeviceBatchParts{
		Device: async.Device{Type: async.DeviceCUDA, ID: 0}, Schema: asynctest.SchemaFor(1), NumRows: 8,
		Array: arr, Release: func() { s.released.Add(1) }})}, nil
}

func TestProduceArrayOnlyDeviceBatches(t *testing.T) {
	var st async.Stats
	src := &arraySource{n: 3}
	h := &asynctest.Handler{InitialRequest: 10, Accept: []async.DeviceType{async.DeviceCUDA}}
	mover := &simMover{dev: async.Device{Type: async.DeviceCUDA, ID: 0}}
	if err := async.Produce(t.Context(), h, src, async.ProduceOptions{Mover: mover, Stats: &st}); err != nil {
		t.Fatal(err)
	}
	if s := st.Snapshot(); s.Bytes != 3*64 || s.Rows != 24 {
		t.Errorf("stats %+v, want 192 bytes, 24 rows", s)
	}
	if src.released.Load() != 3 {
		t.Errorf("%d device batches released, want 3", src.released.Load())
	}
	noViolations(t, h)
}

// endingSource is an asynctest.Source that is an EndNotifier: its channel
// closes when the last batch has been pulled (or at once, when early is
// set: a notice that proves wrong).
type endingSource struct {
	*asynctest.Source
	pulls atomic.Int64
	early bool
	ended chan struct{}
}

func (s *endingSource) Next(ctx context.Context) (async.Batch, error) {
	b, err := s.Source.Next(ctx)
	if s.pulls.Add(1) == int64(s.Source.Batches) && !s.early {
		close(s.ended)
	}
	return b, err
}

func (s *endingSource) pullsSeen() int64 { return s.pulls.Load() }

func (s *endingSource) Ended() <-chan struct{} { return s.ended }

// A1 with an EndNotifier: a consumer that requests exactly the stream's
// three batches, and nothing more, still gets end of stream and release.
func TestProduceEndWithoutDemand(t *testing.T) {
	alloc := checkedAlloc(t)
	src := &endingSource{Source: &asynctest.Source{Alloc: alloc, Batches: 3}, ended: make(chan struct{})}
	h := &asynctest.Handler{InitialRequest: 3}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := async.Produce(ctx, h, src, async.ProduceOptions{}); err != nil {
		t.Fatalf("Produce = %v", err)
	}
	noViolations(t, h)
	if got, want := kindsOf(h), "OnSchema OnNextTask OnNextTask OnNextTask OnNextTask(end) Release"; got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
}

// An end notice that proves wrong (the pull yields a batch) does not let
// that batch out without demand (N2): it waits for the next request.
func TestProduceEarlyEndNoticeHoldsTheBatch(t *testing.T) {
	alloc := checkedAlloc(t)
	src := &endingSource{Source: &asynctest.Source{Alloc: alloc, Batches: 2}, early: true, ended: make(chan struct{})}
	close(src.ended)
	got := make(chan int, 4)
	h := &asynctest.Handler{InitialRequest: 1}
	h.TaskHook = func(h *asynctest.Handler, i int, _ async.Task) error {
		got <- i
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- async.Produce(t.Context(), h, src, async.ProduceOptions{}) }()
	if i := <-got; i != 1 {
		t.Fatalf("first task %d", i)
	}
	// The producer has pulled batch 2 on the notice and holds it; wait
	// until it has (the source counts pulls) before checking nothing came.
	for src.pullsSeen() < 2 {
		runtime.Gosched()
	}
	select {
	case i := <-got:
		t.Fatalf("task %d delivered with no demand", i)
	default:
	}
	h.Request(1)
	if i := <-got; i != 2 {
		t.Fatalf("second task %d", i)
	}
	h.Request(1)
	if err := <-done; err != nil {
		t.Fatalf("Produce = %v", err)
	}
	noViolations(t, h)
}
