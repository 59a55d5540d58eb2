package async_test

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/volleyhq/volley/async"
)

// exampleReader returns a RecordReader of two batches of n rows each.
func exampleReader() array.RecordReader {
	schema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	var recs []arrow.RecordBatch
	for _, vals := range [][]int64{{1, 2, 3}, {4, 5}} {
		b.Field(0).(*array.Int64Builder).AppendValues(vals, nil)
		recs = append(recs, b.NewRecordBatch())
	}
	rr, _ := array.NewRecordReader(schema, recs)
	for _, r := range recs {
		r.Release()
	}
	return rr
}

// Produce any array.RecordReader as an async device stream and consume it
// with a Reader.
func Example() {
	ctx := context.Background()
	rr := exampleReader()
	defer rr.Release()

	r := async.NewReader(async.ReaderOptions{Window: 2})
	stream := async.Start(ctx, r, async.SourceFromRecordReader(rr), async.ProduceOptions{})
	for batch, err := range r.All(ctx) {
		if err != nil {
			fmt.Println("error:", err)
			break
		}
		fmt.Println(batch.Device, batch.NumRows, batch.Record.Column(0))
		batch.Release()
	}
	fmt.Println("producer:", stream.Wait())
	// Output:
	// cpu 3 [1 2 3]
	// cpu 2 [4 5]
	// producer: <nil>
}

// A CPU stream read back as an array.RecordReader.
func ExampleReader_RecordReader() {
	ctx := context.Background()
	rr := exampleReader()
	defer rr.Release()

	r := async.NewReader(async.ReaderOptions{})
	stream := async.Start(ctx, r, async.SourceFromRecordReader(rr), async.ProduceOptions{})
	out := r.RecordReader(ctx)
	defer out.Release()
	var rows int64
	for out.Next() {
		rows += out.RecordBatch().NumRows()
	}
	fmt.Println(out.Schema().Field(0).Name, rows, out.Err(), stream.Wait())
	// Output: n 5 <nil> <nil>
}

// Produce blocks on the caller's goroutine, which makes every handler call;
// Stats counts what the stream delivered.
func ExampleProduce() {
	ctx := context.Background()
	rr := exampleReader()
	defer rr.Release()

	var stats async.Stats
	r := async.NewReader(async.ReaderOptions{})
	go func() {
		defer r.Close()
		for b, err := range r.All(ctx) {
			if err == nil {
				b.Release()
			}
		}
	}()
	err := async.Produce(ctx, r, async.SourceFromRecordReader(rr), async.ProduceOptions{Stats: &stats})
	<-r.Done()
	s := stats.Snapshot()
	fmt.Println(err, s.Batches, s.Rows)
	// Output: <nil> 2 5
}
