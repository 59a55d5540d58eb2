package postgres

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

func TestRecycler(t *testing.T) {
	r := &recycler{limit: 1 << 20}
	b := r.Allocate(100 << 10)
	if len(b) != 100<<10 || cap(b) != 104<<10 {
		t.Fatalf("len %d cap %d", len(b), cap(b))
	}
	for i := range b {
		b[i] = 0xff
	}
	b = r.Reallocate(102<<10, b) // grows in place, zeroing the new part
	if b[100<<10] != 0 || b[0] != 0xff {
		t.Fatal("in-place growth did not keep old bytes and zero new ones")
	}
	r.Free(b)
	c := r.Allocate(100<<10 + 1)
	if &c[0] != &b[0] {
		t.Fatal("freed buffer not reused")
	}
	for i, x := range c[:cap(c)] {
		if x != 0 && i < len(c) {
			t.Fatalf("reused buffer not zeroed at %d", i)
		}
	}
	small := r.Allocate(10)
	r.Free(small)
	r.Free(c)
	if r.kept != 104<<10 {
		t.Fatalf("kept %d", r.kept)
	}
	if d := r.Allocate(300 << 10); cap(d) < 300<<10 || r.kept != 104<<10 {
		t.Fatal("a buffer less than half the request was reused")
	}
	big := make([][]byte, 20)
	for i := range big {
		big[i] = r.Allocate(128 << 10)
	}
	for _, x := range big {
		r.Free(x)
	}
	if r.kept > r.limit {
		t.Fatalf("kept %d over the limit %d", r.kept, r.limit)
	}
}

// junkRecycler holds k buffers of each of a few sizes, every byte 0xff:
// what a column built on reused buffers must never show.
func junkRecycler(k int) *recycler {
	r := &recycler{limit: 64 << 20}
	var junk [][]byte
	for _, n := range []int{64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20} {
		for i := 0; i < k; i++ {
			b := r.Allocate(n)
			for j := range b {
				b[j] = 0xff
			}
			junk = append(junk, b)
		}
	}
	for _, b := range junk {
		r.Free(b)
	}
	return r
}

// A string column built on dirty recycled buffers still starts its offsets
// at zero and has exact validity bits.
func TestStrColOnDirtyBuffers(t *testing.T) {
	r := junkRecycler(3)
	c := newStrCol(r, arrow.BinaryTypes.String)
	c.reserve(50000, 200000)
	for i := 0; i < 50000; i++ {
		var v []byte
		if i%5 != 0 {
			v = []byte("ab")[:i%3]
		}
		if err := c.decode(v); err != nil {
			t.Fatal(err)
		}
	}
	arr := c.finish().(*array.String)
	defer arr.Release()
	for i := 0; i < arr.Len(); i++ {
		if (i%5 == 0) != arr.IsNull(i) {
			t.Fatalf("row %d: null %v", i, arr.IsNull(i))
		}
		if !arr.IsNull(i) && arr.Value(i) != "ab"[:i%3] {
			t.Fatalf("row %d: %q", i, arr.Value(i))
		}
	}
	if arr.NullN() != 10000 {
		t.Fatalf("%d nulls", arr.NullN())
	}
}

// Fixed-width columns built on dirty recycled buffers: a null's value slot
// reads as zero, not as the bytes a previous batch left there.
func TestFixedColsOnDirtyBuffers(t *testing.T) {
	r := junkRecycler(4)
	int8T := &pgType{oid: 20, name: "int8", kind: kInt8}
	numT := &pgType{oid: 1700, name: "numeric", kind: kNumeric}
	typmod := int32((15<<16 | 2) + 4)
	cfg := Config{}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "i", Type: arrowType(int8T, -1, &cfg, 0), Nullable: true},
		{Name: "n", Type: arrowType(numT, typmod, &cfg, 0), Nullable: true},
	}, nil)
	b, err := newBatcher(r, schema, []*pgType{int8T, numT}, []int32{-1, typmod}, &cfg, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer b.release()
	if b.width[0] != 8 || b.width[1] != 16 {
		t.Fatalf("widths %v: the columns are not on dirty buffers", b.width)
	}
	one := []byte{0, 0, 0, 0, 0, 0, 0, 1}
	num := []byte{0, 1, 0, 0, 0, 0, 0, 2, 0, 7} // 7.00 as numeric(15,2)
	const n = 30000
	for i := 0; i < n; i++ {
		var iv, nv []byte
		if i%7 != 0 {
			iv, nv = one, num
		}
		if err := b.add(0, iv); err != nil {
			t.Fatal(err)
		}
		if err := b.add(1, nv); err != nil {
			t.Fatal(err)
		}
		b.endRow()
	}
	rec := b.flush()
	defer rec.Release()
	ints := rec.Column(0).(*array.Int64).Int64Values()
	decs := rec.Column(1).(*array.Decimal128)
	for i := 0; i < n; i++ {
		want := int64(1)
		if i%7 == 0 {
			want = 0
			if !decs.IsNull(i) || !rec.Column(0).IsNull(i) {
				t.Fatalf("row %d is not null", i)
			}
		}
		if ints[i] != want {
			t.Fatalf("row %d: int slot %d, want %d", i, ints[i], want)
		}
		if got := decs.Value(i); got.LowBits() != uint64(want*700) || got.HighBits() != 0 {
			t.Fatalf("row %d: decimal slot %v, want %d", i, got, want*700)
		}
	}
}
