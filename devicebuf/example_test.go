package devicebuf_test

import (
	"context"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/devicebuf"
)

// Example moves a record batch onto a (simulated) GPU, waits for the copy
// and reads the values back.
func Example() {
	ctx := context.Background()
	sim := devicebuf.NewSimulated(devicebuf.SimOptions{})
	m := devicebuf.NewManager(devicebuf.Options{Backends: []devicebuf.Backend{sim}})
	defer m.Close()
	for _, in := range m.Inventory(ctx) {
		fmt.Println(in.Device, in.Name, in.Usable)
	}

	mv, err := m.Mover(ctx, async.Device{Type: async.DeviceCUDA, ID: 0}, devicebuf.MoverOptions{})
	if err != nil {
		panic(err)
	}
	defer mv.(io.Closer).Close()

	b := array.NewInt32Builder(memory.DefaultAllocator)
	b.AppendValues([]int32{1, 2, 3}, nil)
	col := b.NewArray()
	b.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int32}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 3)
	col.Release()

	batch, err := mv.Move(ctx, rec) // takes rec; returns once the copy is enqueued
	if err != nil {
		panic(err)
	}
	defer batch.Release()
	if err := batch.Wait(ctx); err != nil { // the sync event
		panic(err)
	}
	data := batch.Array.Children[0].Buffers[1] // validity first, then data
	got, err := sim.(*devicebuf.Simulated).CopyToHost(0, data.Addr, data.Len)
	if err != nil {
		panic(err)
	}
	fmt.Println(batch.Device, batch.NumRows, got[:12])
	// Output:
	// cpu CPU true
	// cuda_host:0 simulated GPU true
	// cuda:0 simulated GPU true
	// cuda:0 3 [1 0 0 0 2 0 0 0 3 0 0 0]
}
