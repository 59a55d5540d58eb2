package devicebuf_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/devicebuf"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a Manager over one simulated GPU, torn down with leak checks.
type env struct {
	t     *testing.T
	sim   *devicebuf.Simulated
	m     *devicebuf.Manager
	alloc *memory.CheckedAllocator
}

func newEnv(t *testing.T, so devicebuf.SimOptions, o devicebuf.Options) *env {
	t.Helper()
	sim := devicebuf.NewSimulated(so).(*devicebuf.Simulated)
	o.Backends = []devicebuf.Backend{sim}
	e := &env{t: t, sim: sim, m: devicebuf.NewManager(o), alloc: memory.NewCheckedAllocator(memory.NewGoAllocator())}
	t.Cleanup(func() {
		e.sim.Resume() // a held stream would keep Close waiting for its copies
		if err := e.m.Close(); err != nil {
			t.Errorf("Manager.Close: %v", err)
		}
		e.assertNoLeaks()
		e.alloc.AssertSize(t, 0)
	})
	return e
}

// assertNoLeaks checks the simulated backend's accounting is back to zero.
func (e *env) assertNoLeaks() {
	t := e.t
	t.Helper()
	if n := e.sim.Allocated(); n != 0 {
		t.Errorf("device memory still allocated: %d bytes", n)
	}
	if n := e.sim.PinnedBytes(); n != 0 {
		t.Errorf("pinned memory still allocated: %d bytes", n)
	}
	if n := e.sim.LiveEvents(); n != 0 {
		t.Errorf("events still alive: %d", n)
	}
	if n := e.sim.LiveStreams(); n != 0 {
		t.Errorf("streams still alive: %d", n)
	}
	if n := e.sim.OpenGPUs(); n != 0 {
		t.Errorf("GPU handles still open: %d", n)
	}
	if n := e.sim.BadFrees(); n != 0 {
		t.Errorf("double or bad frees: %d", n)
	}
}

func (e *env) mover(dev string, mo devicebuf.MoverOptions) async.Mover {
	e.t.Helper()
	d, err := async.ParseDevice(dev)
	if err != nil {
		e.t.Fatal(err)
	}
	mv, err := e.m.Mover(e.t.Context(), d, mo)
	if err != nil {
		e.t.Fatalf("Mover(%s): %v", dev, err)
	}
	e.t.Cleanup(func() {
		if err := mv.(interface{ Close() error }).Close(); err != nil {
			e.t.Errorf("Mover.Close: %v", err)
		}
	})
	return mv
}

// intRecord is a one-column int64 record of n rows, values start+i.
func intRecord(mem memory.Allocator, n, start int) arrow.RecordBatch {
	b := array.NewInt64Builder(mem)
	defer b.Release()
	for i := range n {
		b.Append(int64(start + i))
	}
	col := b.NewArray()
	defer col.Release()
	s := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)
	return array.NewRecordBatch(s, []arrow.Array{col}, int64(n))
}

// wideRecord has cols small int32 columns of n rows.
func wideRecord(mem memory.Allocator, cols, n int) arrow.RecordBatch {
	var fields []arrow.Field
	var arrs []arrow.Array
	for c := range cols {
		b := array.NewInt32Builder(mem)
		for i := range n {
			b.Append(int32(c*1000 + i))
		}
		arrs = append(arrs, b.NewArray())
		b.Release()
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("c%d", c), Type: arrow.PrimitiveTypes.Int32})
	}
	rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, int64(n))
	for _, a := range arrs {
		a.Release()
	}
	return rec
}

// allTypesRecord has a column of every common type, with nulls, nested
// types, a dictionary and a sliced column.
func allTypesRecord(t *testing.T, mem memory.Allocator) arrow.RecordBatch {
	t.Helper()
	dictType := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}
	fields := []arrow.Field{
		{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
		{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "i64", Type: arrow.PrimitiveTypes.Int64},
		{Name: "u16", Type: arrow.PrimitiveTypes.Uint16},
		{Name: "f32", Type: arrow.PrimitiveTypes.Float32},
		{Name: "f64", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "bool", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "str", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "lstr", Type: arrow.BinaryTypes.LargeString},
		{Name: "bin", Type: arrow.BinaryTypes.Binary, Nullable: true},
		{Name: "date", Type: arrow.FixedWidthTypes.Date32},
		{Name: "ts", Type: arrow.FixedWidthTypes.Timestamp_us},
		{Name: "dec", Type: &arrow.Decimal128Type{Precision: 12, Scale: 2}},
		{Name: "list", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
		{Name: "fsl", Type: arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float64)},
		{Name: "struct", Type: arrow.StructOf(arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int64},
			arrow.Field{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true}), Nullable: true},
		{Name: "dict", Type: dictType, Nullable: true},
		{Name: "null", Type: arrow.Null, Nullable: true},
		{Name: "view", Type: arrow.BinaryTypes.StringView, Nullable: true},
	}
	schema := arrow.NewSchema(fields, nil)
	const n = 300
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for i := range n {
		null := i%7 == 3
		appendOr := func(fb array.Builder, f func()) {
			if null {
				fb.AppendNull()
			} else {
				f()
			}
		}
		b.Field(0).(*array.Int8Builder).Append(int8(i))
		appendOr(b.Field(1), func() { b.Field(1).(*array.Int32Builder).Append(int32(i * 3)) })
		b.Field(2).(*array.Int64Builder).Append(int64(i) << 33)
		b.Field(3).(*array.Uint16Builder).Append(uint16(i))
		b.Field(4).(*array.Float32Builder).Append(float32(i) / 3)
		appendOr(b.Field(5), func() { b.Field(5).(*array.Float64Builder).Append(float64(i) * 1.5) })
		appendOr(b.Field(6), func() { b.Field(6).(*array.BooleanBuilder).Append(i%2 == 0) })
		appendOr(b.Field(7), func() {
			b.Field(7).(*array.StringBuilder).Append(fmt.Sprintf("row %d %s", i, bytes.Repeat([]byte("x"), i%13)))
		})
		b.Field(8).(*array.LargeStringBuilder).Append(fmt.Sprintf("large %d", i))
		appendOr(b.Field(9), func() { b.Field(9).(*array.BinaryBuilder).Append([]byte{byte(i), 0, byte(i >> 8)}) })
		b.Field(10).(*array.Date32Builder).Append(arrow.Date32(19000 + i))
		b.Field(11).(*array.TimestampBuilder).Append(arrow.Timestamp(int64(i) * 1e6))
		b.Field(12).(*array.Decimal128Builder).Append(decimal128.FromI64(int64(i) * 100))
		lb := b.Field(13).(*array.ListBuilder)
		appendOr(lb, func() {
			lb.Append(true)
			for j := range i % 4 {
				lb.ValueBuilder().(*array.Int32Builder).Append(int32(i + j))
			}
		})
		fb := b.Field(14).(*array.FixedSizeListBuilder)
		fb.Append(true)
		fb.ValueBuilder().(*array.Float64Builder).AppendValues([]float64{float64(i), -float64(i)}, nil)
		sb := b.Field(15).(*array.StructBuilder)
		sb.Append(true)
		sb.FieldBuilder(0).(*array.Int64Builder).Append(int64(-i))
		if null {
			sb.FieldBuilder(1).(*array.StringBuilder).AppendNull()
		} else {
			sb.FieldBuilder(1).(*array.StringBuilder).Append(fmt.Sprint(i))
		}
		db := b.Field(16).(*array.BinaryDictionaryBuilder)
		if null {
			db.AppendNull()
		} else if err := db.AppendString([]string{"red", "green", "blue"}[i%3]); err != nil {
			t.Fatal(err)
		}
		b.Field(17).(*array.NullBuilder).AppendNull()
		appendOr(b.Field(18), func() {
			b.Field(18).(*array.StringViewBuilder).Append(fmt.Sprintf("a view string longer than twelve bytes %d", i))
		})
	}
	rec := b.NewRecordBatch()
	// A sliced record: arrays with a non-zero offset.
	defer rec.Release()
	return rec.NewSlice(5, n-3)
}

func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

// wideInt64Record has cols int64 columns of n rows.
func wideInt64Record(mem memory.Allocator, cols, n int) arrow.RecordBatch {
	var fields []arrow.Field
	var arrs []arrow.Array
	for c := range cols {
		b := array.NewInt64Builder(mem)
		for i := range n {
			b.Append(int64(c*n + i))
		}
		arrs = append(arrs, b.NewArray())
		b.Release()
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("c%d", c), Type: arrow.PrimitiveTypes.Int64})
	}
	rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, int64(n))
	for _, a := range arrs {
		a.Release()
	}
	return rec
}

// moreTypesRecord has the less common layouts: map, large list, list view,
// unions (no validity buffer in the C interface), run-end encoded (no
// buffers at all) and a string view with several data buffers.
func moreTypesRecord(t *testing.T, mem memory.Allocator) arrow.RecordBatch {
	t.Helper()
	const n = 4
	cols := []struct {
		name string
		dt   arrow.DataType
		json string
	}{
		{"map", arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int32), `[[{"key":"a","value":1}], null, [], [{"key":"b","value":2},{"key":"c","value":null}]]`},
		{"llist", arrow.LargeListOf(arrow.PrimitiveTypes.Int16), `[[1,2], null, [], [3]]`},
		{"lview", arrow.ListViewOf(arrow.PrimitiveTypes.Int8), `[[1], [2,3], null, []]`},
		{"sparse", arrow.SparseUnionOf([]arrow.Field{{Name: "i", Type: arrow.PrimitiveTypes.Int32, Nullable: true}, {Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, []arrow.UnionTypeCode{0, 1}),
			`[[0, 5], [1, "x"], [0, null], [1, "yz"]]`},
		{"dense", arrow.DenseUnionOf([]arrow.Field{{Name: "i", Type: arrow.PrimitiveTypes.Int32, Nullable: true}, {Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, []arrow.UnionTypeCode{0, 1}),
			`[[0, 5], [1, "x"], [0, 7], [1, null]]`},
		{"ree", arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, arrow.BinaryTypes.String), `["a", "a", "b", null]`},
		{"bview", arrow.BinaryTypes.StringView, `["short", "a string longer than twelve bytes", null, "another string longer than twelve bytes"]`},
	}
	var fields []arrow.Field
	var arrs []arrow.Array
	for _, c := range cols {
		a, _, err := array.FromJSON(mem, c.dt, strings.NewReader(c.json))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		fields = append(fields, arrow.Field{Name: c.name, Type: c.dt, Nullable: true})
		arrs = append(arrs, a)
	}
	rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, n)
	for _, a := range arrs {
		a.Release()
	}
	return rec
}

var cuda0 = async.Device{Type: async.DeviceCUDA, ID: 0}
