package postgres

import (
	"math/bits"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// recycler is the default allocator of batch buffers: a Go allocator that
// keeps the buffers of released batches (4 KiB and up, in size classes an
// eighth of a power of two apart) and hands them to the next batches,
// zeroed, instead of leaving them to the garbage collector. A stream that
// keeps a few batches alive then runs in about that much memory, not in
// the garbage collector's multiple of it: the recycled buffers are most of
// the live heap, so every byte of garbage would let the heap grow by as
// much before a collection. (With 64 KiB as the floor, the validity bitmaps
// of a 16 MiB lineitem batch, ~10 KiB a column, were garbage: SF1 peaked at
// 59 MiB instead of 40.) At most limit bytes are kept; buffers beyond that,
// and smaller ones, are ordinary garbage. It is safe for concurrent use:
// batches are released on any goroutine.
type recycler struct {
	mu    sync.Mutex
	free  [][]byte // oldest first
	kept  int
	limit int
}

const (
	recycleMin = 4 << 10
	maxKept    = 64 << 20
)

var defaultAllocator memory.Allocator = &recycler{limit: maxKept}

var goAlloc = memory.NewGoAllocator()

// class rounds size up to its size class: a multiple of 1/8 of the power
// of two below it (at most 12.5% slack).
func class(size int) int {
	g := 1 << (bits.Len(uint(size-1)) - 4)
	return (size + g - 1) &^ (g - 1)
}

// Allocate returns a zeroed buffer: the smallest kept one that holds size
// and is less than twice as large, or a new one.
func (r *recycler) Allocate(size int) []byte { return r.allocate(size, true) }

// dirty is the recycler for buffers whose every byte is written before it
// is read (string offsets and data): reused buffers are not zeroed.
type dirty struct{ *recycler }

func (d dirty) Allocate(size int) []byte { return d.allocate(size, false) }

func (d dirty) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) && cap(b) >= recycleMin {
		return b[:size]
	}
	nb := d.allocate(size, false)
	copy(nb, b)
	d.Free(b)
	return nb
}

func (r *recycler) allocate(size int, zero bool) []byte {
	if size < recycleMin {
		return goAlloc.Allocate(size)
	}
	r.mu.Lock()
	best := -1
	for i, b := range r.free {
		if c := cap(b); c >= size && c < 2*size && (best < 0 || c < cap(r.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := r.free[best]
		r.free = append(r.free[:best], r.free[best+1:]...)
		r.kept -= cap(b)
		r.mu.Unlock()
		b = b[:size]
		if zero {
			clear(b)
		}
		return b
	}
	r.mu.Unlock()
	// Large Go allocations are page aligned, so the 64-byte alignment Arrow
	// wants holds.
	return make([]byte, size, class(size))
}

func (r *recycler) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) && cap(b) >= recycleMin {
		old := len(b)
		b = b[:size]
		if size > old {
			clear(b[old:])
		}
		return b
	}
	nb := r.Allocate(size)
	copy(nb, b)
	r.Free(b)
	return nb
}

// Free keeps b for reuse, dropping the oldest kept buffers past the limit.
func (r *recycler) Free(b []byte) {
	c := cap(b)
	if c < recycleMin {
		goAlloc.Free(b)
		return
	}
	r.mu.Lock()
	r.free = append(r.free, b[:0])
	r.kept += c
	for r.kept > r.limit && len(r.free) > 0 {
		r.kept -= cap(r.free[0])
		r.free[0] = nil
		r.free = r.free[1:]
	}
	r.mu.Unlock()
}
