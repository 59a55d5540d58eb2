package devicebuf_test

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/volleyhq/volley/devicebuf"
)

// FuzzMoveRoundTrip builds a record from the input (string and list
// columns with nulls, sliced at an input-chosen offset), moves it through
// tiny slabs so buffers straddle slab boundaries, and compares the device
// copy with the original.
func FuzzMoveRoundTrip(f *testing.F) {
	f.Add([]byte("hello, device"), uint8(0), uint16(64))
	f.Add([]byte{0, 1, 2, 3, 250, 251, 252, 253, 254, 255}, uint8(3), uint16(1))
	f.Add(make([]byte, 3000), uint8(17), uint16(1000))
	f.Fuzz(func(t *testing.T, data []byte, off uint8, slabKiB uint16) {
		sim := devicebuf.NewSimulated(devicebuf.SimOptions{}).(*devicebuf.Simulated)
		slab := int64(slabKiB%256+1) << 10
		m := devicebuf.NewManager(devicebuf.Options{Backends: []devicebuf.Backend{sim}, SlabBytes: slab, PinnedPoolBytes: 4 * slab})
		defer m.Close()
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)

		sb := array.NewStringBuilder(mem)
		lb := array.NewListBuilder(mem, arrow.PrimitiveTypes.Uint8)
		vb := lb.ValueBuilder().(*array.Uint8Builder)
		for i := 0; i < len(data); {
			n := int(data[i] % 16)
			end := min(len(data), i+1+n)
			if data[i]%5 == 0 {
				sb.AppendNull()
				lb.AppendNull()
			} else {
				sb.Append(string(data[i+1 : end]))
				lb.Append(true)
				vb.AppendValues(data[i+1:end], nil)
			}
			i = end
		}
		s, l := sb.NewArray(), lb.NewArray()
		sb.Release()
		lb.Release()
		schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
			{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Uint8), Nullable: true}}, nil)
		full := array.NewRecordBatch(schema, []arrow.Array{s, l}, int64(s.Len()))
		s.Release()
		l.Release()
		start := min(int64(off), full.NumRows())
		rec := full.NewSlice(start, full.NumRows())
		full.Release()
		defer rec.Release()

		mv, err := m.Mover(t.Context(), cuda0, devicebuf.MoverOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer mv.(interface{ Close() error }).Close()
		rec.Retain()
		b, err := mv.Move(t.Context(), rec)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Release()
		if err := b.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		for i, col := range rec.Columns() {
			compareDevice(t, sim, rec.ColumnName(i), b.Array.Children[i], col.Data())
		}
	})
}
