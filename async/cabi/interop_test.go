package cabi

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/cdata"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/volleyhq/volley/async"
)

// checkDemo checks that rec holds the demo rows starting at *next.
func checkDemo(t *testing.T, rec arrow.RecordBatch, next *int64) {
	t.Helper()
	ids := rec.Column(0).(*array.Int64)
	names := rec.Column(1).(*array.String)
	for i := range ids.Len() {
		if ids.Value(i) != *next || names.Value(i) != fmt.Sprintf("r%d", *next) {
			t.Fatalf("row %d = (%d, %q), want (%d, r%d)", *next, ids.Value(i), names.Value(i), *next, *next)
		}
		*next++
	}
}

// TestInteropArrowGoConsumer: a Volley producer (DemoSource through
// Produce) feeding arrow-go's own consumer, cdata.CreateAsyncDeviceStreamHandler.
// arrow-go's consumer calls request for tasks still queued after its
// release: the Volley producer stays valid until every task is extracted.
func TestInteropArrowGoConsumer(t *testing.T) {
	noCLeft(t)
	for _, q := range []uint64{1, 16} {
		t.Run(fmt.Sprintf("queue=%d", q), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			const batches, rows = 40, 25
			h := AllocHandler()
			ctx := t.Context()
			streams := cdata.CreateAsyncDeviceStreamHandler(ctx, q, ToCData(h))
			done := make(chan error, 1)
			go func() {
				done <- Produce(ctx, h, &DemoSource{Alloc: mem, Batches: batches, Rows: rows},
					async.ProduceOptions{AdditionalMetadata: DemoMetadata})
			}()
			s := <-streams
			if s.Err != nil {
				t.Fatalf("arrow-go consumer: %v", s.Err)
			}
			if !s.Schema.Equal(DemoSchema) {
				t.Errorf("schema %v, want %v", s.Schema, DemoSchema)
			}
			var next, n int64
			for msg := range s.Stream {
				if msg.Err != nil {
					t.Fatalf("batch %d: %v", n, msg.Err)
				}
				checkDemo(t, msg.Record, &next)
				if v, _ := msg.AdditionalMetadata.GetValue("batch"); v != fmt.Sprint(n+1) {
					t.Errorf("batch %d metadata %v", n, msg.AdditionalMetadata)
				}
				msg.Record.Release()
				n++
			}
			if err := <-done; err != nil {
				t.Fatalf("Produce: %v", err)
			}
			FreeHandler(h)
			if n != batches || next != batches*rows {
				t.Errorf("arrow-go read %d batches / %d rows, want %d / %d", n, next, batches, batches*rows)
			}
		})
	}
}

// TestInteropArrowGoProducer: arrow-go's own producer,
// cdata.ExportAsyncRecordBatchStream, feeding a Volley consumer
// (async.Reader through Import). arrow-go crashes on extract_data(task,
// NULL), so the Reader reads every task; arrow-go frees its producer at end
// of stream, before release, so the bridge stops forwarding requests there.
func TestInteropArrowGoProducer(t *testing.T) {
	noCLeft(t)
	for _, q := range []int{1, 16} {
		t.Run(fmt.Sprintf("queue=%d", q), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			const batches, rows = 40, 25
			r := async.NewReader(async.ReaderOptions{Window: q})
			h := Import(r)
			msgs := make(chan cdata.RecordMessage)
			ctx := t.Context()
			go func() {
				defer close(msgs)
				src := &DemoSource{Alloc: mem, Batches: batches, Rows: rows}
				for {
					b, err := src.Next(ctx)
					if err != nil {
						return
					}
					select {
					case msgs <- cdata.RecordMessage{Record: b.Record, AdditionalMetadata: b.Metadata}:
					case <-ctx.Done():
						b.Release()
						return
					}
				}
			}()
			done := make(chan error, 1)
			go func() { done <- cdata.ExportAsyncRecordBatchStream(DemoSchema, msgs, ToCData(h)) }()
			var next, n int64
			for {
				b, md, err := r.NextWithMetadata(ctx)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("batch %d: %v", n, err)
				}
				checkDemo(t, b.Record, &next)
				if v, _ := md.GetValue("batch"); v != fmt.Sprint(n+1) {
					t.Errorf("batch %d metadata %v", n, md)
				}
				b.Release()
				n++
			}
			if err := <-done; err != nil {
				t.Fatalf("arrow-go producer: %v", err)
			}
			<-r.Done()
			r.Close()
			if n != batches || next != batches*rows {
				t.Errorf("read %d batches / %d rows, want %d / %d", n, next, batches, batches*rows)
			}
		})
	}
}
