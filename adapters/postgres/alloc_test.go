package postgres

import "testing"

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
