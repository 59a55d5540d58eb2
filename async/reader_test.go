package async_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/async/asynctest"
)

func TestReaderRoundTrip(t *testing.T) {
	alloc := checkedAlloc(t)
	src := &asynctest.Source{Alloc: alloc, Batches: 25, Rows: 3,
		Metadata: func(i int) arrow.Metadata { return arrow.NewMetadata([]string{"i"}, []string{string(rune('a' + i))}) }}
	md := arrow.NewMetadata([]string{"k\x00"}, []string{"v"})
	r := async.NewReader(async.ReaderOptions{Window: 3})
	s := async.Start(t.Context(), r, src, async.ProduceOptions{AdditionalMetadata: md})
	schema, err := r.Schema(t.Context())
	if err != nil || schema.NumFields() != 1 {
		t.Fatalf("Schema = %v, %v", schema, err)
	}
	if got := r.AdditionalMetadata(); got.Len() != 1 || got.Keys()[0] != "k\x00" {
		t.Errorf("AdditionalMetadata = %v", got)
	}
	var next int64
	for i := 1; ; i++ {
		b, bmd, err := r.NextWithMetadata(t.Context())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		col := b.Record.Column(0).(*array.Int64)
		if col.Value(0) != next { // T7: task order is data order
			t.Fatalf("batch %d starts at %d, want %d", i, col.Value(0), next)
		}
		if v := bmd.Values(); len(v) != 1 || v[0] != string(rune('a'+i)) {
			t.Errorf("batch %d metadata %v", i, bmd)
		}
		next += int64(b.NumRows)
		b.Release()
	}
	if next != 75 {
		t.Errorf("read %d rows, want 75", next)
	}
	if err := s.Wait(); err != nil {
		t.Errorf("Produce = %v", err)
	}
	if _, err := r.Next(t.Context()); !errors.Is(err, io.EOF) {
		t.Errorf("Next after end = %v, want io.EOF", err)
	}
	r.Close()
	if _, err := r.Next(t.Context()); !errors.Is(err, async.ErrReaderClosed) || !errors.Is(err, async.ErrReleased) {
		t.Errorf("Next after Close = %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// countingReader signals after n tasks reached the Reader.
type countingReader struct {
	*async.Reader
	tasks atomic.Int64
	n     int64
	hit   chan struct{}
}

func (c *countingReader) OnNextTask(t async.Task, md arrow.Metadata) error {
	if t != nil && c.tasks.Add(1) == c.n {
		close(c.hit)
	}
	return c.Reader.OnNextTask(t, md)
}

// TestReaderWindowBoundsMemory: with nobody reading, the Reader holds
// Window batches and the producer pulls no more.
func TestReaderWindowBoundsMemory(t *testing.T) {
	src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: -1}
	r := &countingReader{Reader: async.NewReader(async.ReaderOptions{Window: 2}), n: 2, hit: make(chan struct{})}
	s := async.Start(t.Context(), r, src, async.ProduceOptions{})
	<-r.hit
	// One batch read frees one slot: exactly one more is pulled.
	b, err := r.Next(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	r.Close()
	if err := s.Wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("Produce = %v, want the consumer's cancel", err)
	}
	if n := src.Yielded(); n > 3 {
		t.Errorf("producer pulled %d batches for a window of 2 plus one read", n)
	}
}

func TestReaderNextContextCancels(t *testing.T) {
	src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: -1, BlockAt: 4}
	blocked := src.Blocked()
	r := async.NewReader(async.ReaderOptions{})
	s := async.Start(t.Context(), r, src, async.ProduceOptions{})
	<-blocked // three tasks are queued, the source is stuck
	ctx, cancel := context.WithCancelCause(t.Context())
	cause := errors.New("user gave up")
	cancel(cause)
	if _, err := r.Next(ctx); !errors.Is(err, cause) {
		t.Errorf("Next = %v, want the ctx cause", err)
	}
	if err := s.Wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("Produce = %v, want cancelled by the consumer", err)
	}
	if _, err := r.Next(t.Context()); !errors.Is(err, cause) {
		t.Errorf("Next after abandon = %v, want the same cause", err)
	}
	// the queued tasks were discarded: the checked allocator is back to 0.
}

func TestReaderAllBreakCloses(t *testing.T) {
	src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: -1}
	r := async.NewReader(async.ReaderOptions{})
	s := async.Start(t.Context(), r, src, async.ProduceOptions{})
	n := 0
	for b, err := range r.All(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		b.Release()
		if n++; n == 10 {
			break
		}
	}
	if err := s.Wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("Produce = %v", err)
	}
	<-r.Done()
}

func TestReaderAllYieldsError(t *testing.T) {
	src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: 5, FailAt: 3}
	r := async.NewReader(async.ReaderOptions{})
	s := async.Start(t.Context(), r, src, async.ProduceOptions{})
	var n int
	var last error
	for b, err := range r.All(t.Context()) {
		if err != nil {
			last = err
			continue
		}
		b.Release()
		n++
	}
	if n != 2 || !errors.Is(last, asynctest.ErrScripted) {
		t.Errorf("All: %d batches, error %v", n, last)
	}
	if err := s.Wait(); !errors.Is(err, asynctest.ErrScripted) {
		t.Errorf("Produce = %v", err)
	}
}

func TestReaderRefusesDevice(t *testing.T) {
	src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: 2}
	r := async.NewReader(async.ReaderOptions{})
	mover := &simMover{dev: async.Device{Type: async.DeviceCUDA, ID: 0}}
	err := async.Produce(t.Context(), r, src, async.ProduceOptions{Mover: mover})
	if !errors.Is(err, async.ErrRefused) {
		t.Errorf("Produce = %v, want ErrRefused", err)
	}
	if _, err := r.Next(t.Context()); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Next = %v, want ErrUnsupported", err)
	}
	if src.Closes() != 1 || mover.moves.Load() != 0 {
		t.Errorf("closes %d, moves %d", src.Closes(), mover.moves.Load())
	}
}

func TestReaderAcceptsPinnedHost(t *testing.T) {
	src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: 4, Rows: 2}
	r := async.NewReader(async.ReaderOptions{Accept: []async.DeviceType{async.DeviceCUDAHost, async.DeviceCPU}})
	if got := r.AcceptedDevices(); len(got) != 2 || got[0] != async.DeviceCUDAHost {
		t.Errorf("AcceptedDevices = %v", got)
	}
	mover := &simMover{dev: async.Device{Type: async.DeviceCUDAHost, ID: 0}}
	s := async.Start(t.Context(), r, src, async.ProduceOptions{Mover: mover})
	rr, err := async.NewRecordReader(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	rows := int64(0)
	for rr.Next() {
		rows += rr.RecordBatch().NumRows()
	}
	if rr.Err() != nil || rows != 8 {
		t.Errorf("read %d rows, err %v", rows, rr.Err())
	}
	if err := s.Wait(); err != nil {
		t.Error(err)
	}
}

func TestReaderOptions(t *testing.T) {
	if err := (async.ReaderOptions{Window: -1}).Validate(); !errors.Is(err, async.ErrInvalid) {
		t.Errorf("Validate(-1) = %v", err)
	}
	if o := (async.ReaderOptions{}).EnsureDefaults(); o.Window != 4 || len(o.Accept) != 1 || o.Accept[0] != async.DeviceCPU {
		t.Errorf("defaults %+v", o)
	}
	defer func() {
		if recover() == nil {
			t.Error("NewReader with an invalid window did not panic")
		}
	}()
	async.NewReader(async.ReaderOptions{Window: -3})
}

func TestReaderCloseBeforeSchema(t *testing.T) {
	src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: -1}
	r := async.NewReader(async.ReaderOptions{})
	r.Close()
	err := async.Produce(t.Context(), r, src, async.ProduceOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Produce = %v, want the consumer's cancel", err)
	}
	if _, err := r.Schema(t.Context()); err != nil {
		t.Errorf("Schema after the stream = %v (the schema did arrive)", err)
	}
}

func TestRecordReaderBridges(t *testing.T) {
	alloc := checkedAlloc(t)
	recs := []arrow.RecordBatch{asynctest.MakeBatch(alloc, 2, 5, 0), asynctest.MakeBatch(alloc, 2, 7, 5)}
	in, err := array.NewRecordReader(recs[0].Schema(), recs)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		rec.Release()
	}
	r := async.NewReader(async.ReaderOptions{Window: 1})
	s := async.Start(t.Context(), r, async.SourceFromRecordReader(in), async.ProduceOptions{})
	in.Release() // the Source holds its own reference
	out := r.RecordReader(t.Context())
	if !out.Schema().Equal(asynctest.SchemaFor(2)) {
		t.Errorf("schema %v", out.Schema())
	}
	var rows []int64
	for out.Next() {
		rows = append(rows, out.Record().NumRows())
	}
	if out.Err() != nil || len(rows) != 2 || rows[0] != 5 || rows[1] != 7 {
		t.Errorf("rows %v, err %v", rows, out.Err())
	}
	if out.Next() {
		t.Error("Next after the end")
	}
	out.Retain()
	out.Release()
	out.Release()
	if err := s.Wait(); err != nil {
		t.Error(err)
	}
}

func TestRecordReaderReportsStreamError(t *testing.T) {
	src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: 5, FailAt: 2}
	r := async.NewReader(async.ReaderOptions{})
	s := async.Start(t.Context(), r, src, async.ProduceOptions{})
	rr := r.RecordReader(t.Context())
	n := 0
	for rr.Next() {
		n++
	}
	if n != 1 || !errors.Is(rr.Err(), asynctest.ErrScripted) {
		t.Errorf("%d records, Err %v", n, rr.Err())
	}
	rr.Release()
	s.Wait()
}

func TestNewRecordReaderRejectsDeviceStream(t *testing.T) {
	src := &asynctest.Source{Alloc: checkedAlloc(t), Batches: -1}
	r := async.NewReader(async.ReaderOptions{Accept: []async.DeviceType{async.DeviceCUDA}})
	s := async.Start(t.Context(), r, src, async.ProduceOptions{Mover: &simMover{dev: async.Device{Type: async.DeviceCUDA, ID: 0}}})
	if _, err := async.NewRecordReader(t.Context(), r); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("NewRecordReader = %v", err)
	}
	if err := s.Wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("Produce = %v", err)
	}
}

// TestReaderExtractFailure: a failing extraction is a Next error.
func TestReaderExtractFailure(t *testing.T) {
	r := async.NewReader(async.ReaderOptions{})
	p := asynctest.NewScriptedProducer(r)
	p.Alloc = checkedAlloc(t)
	if err := p.Schema(); err != nil {
		t.Fatal(err)
	}
	fail := async.NewError(async.EIO, "lost", arrow.Metadata{})
	if _, err := p.Task(fail); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(t.Context()); !errors.Is(err, fail) {
		t.Errorf("Next = %v, want the extraction failure", err)
	}
	p.Error(fail)
	p.Release()
	if _, err := r.Next(t.Context()); err == nil {
		t.Error("Next after the failure = nil")
	}
	for _, v := range p.Violations() {
		t.Error(v)
	}
}

// TestReaderRefusesTaskBeyondDemand: a producer ignoring demand is refused
// and the task discarded.
func TestReaderRefusesTaskBeyondDemand(t *testing.T) {
	r := async.NewReader(async.ReaderOptions{Window: 1})
	p := asynctest.NewScriptedProducer(r)
	p.Alloc = checkedAlloc(t)
	p.Schema()
	if _, err := p.Task(nil); err != nil {
		t.Fatal(err)
	}
	tk, err := p.Task(nil)
	if !errors.Is(err, async.ErrProtocol) || tk.Calls() != 1 {
		t.Errorf("task beyond demand: %v, calls %d", err, tk.Calls())
	}
	p.Release()
	b, err := r.Next(t.Context()) // the first, within demand, is still delivered
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	if _, err := r.Next(t.Context()); !errors.Is(err, async.ErrProtocol) {
		t.Errorf("Next = %v", err)
	}
}

// failingRR is a RecordReader whose Next fails after its records.
type failingRR struct {
	array.RecordReader
	err error
}

func (f *failingRR) Err() error { return f.err }

func TestSourceFromRecordReaderError(t *testing.T) {
	alloc := checkedAlloc(t)
	rec := asynctest.MakeBatch(alloc, 1, 2, 0)
	inner, _ := array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
	rec.Release()
	boom := errors.New("reader broke")
	rr := &failingRR{RecordReader: inner, err: boom}
	r := async.NewReader(async.ReaderOptions{})
	s := async.Start(t.Context(), r, async.SourceFromRecordReader(rr), async.ProduceOptions{})
	inner.Release()
	b, err := r.Next(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	if _, err := r.Next(t.Context()); !errors.Is(err, boom) {
		t.Errorf("Next = %v, want the reader's error", err)
	}
	if err := s.Wait(); !errors.Is(err, boom) {
		t.Errorf("Produce = %v", err)
	}
	<-s.Done()
}
