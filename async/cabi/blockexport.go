package cabi

/*
#include "bridge.h"
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/volleyhq/volley/async"
)

// The fast path for exporting CPU record batches: the whole ArrowArray tree
// (child structs, buffers and children pointer arrays) in one C allocation,
// filled from Go, with one cgo.Handle (the batch's) and one release
// callback into Go per batch, instead of arrow/cdata's C allocations and
// handle per array. Buffers point at the record's memory, which the batch
// keeps alive until the last node is released (arrow/cdata does the same;
// Go's collector does not move heap objects). Types outside the simple
// layouts below fall back to arrow/cdata.

// layoutBuffers is the number of C data interface buffers of a type the
// fast path handles, or -1.
func layoutBuffers(dt arrow.DataType) int {
	switch dt.ID() {
	case arrow.BOOL, arrow.INT8, arrow.UINT8, arrow.INT16, arrow.UINT16, arrow.INT32, arrow.UINT32,
		arrow.INT64, arrow.UINT64, arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64, arrow.DATE32,
		arrow.DATE64, arrow.TIME32, arrow.TIME64, arrow.TIMESTAMP, arrow.DURATION,
		arrow.INTERVAL_MONTHS, arrow.INTERVAL_DAY_TIME, arrow.INTERVAL_MONTH_DAY_NANO,
		arrow.DECIMAL32, arrow.DECIMAL64, arrow.DECIMAL128, arrow.DECIMAL256, arrow.FIXED_SIZE_BINARY:
		return 2
	case arrow.STRING, arrow.BINARY, arrow.LARGE_STRING, arrow.LARGE_BINARY:
		return 3
	case arrow.STRUCT, arrow.FIXED_SIZE_LIST:
		return 1
	case arrow.LIST, arrow.LARGE_LIST, arrow.MAP:
		return 2
	}
	return -1
}

// countTree counts the nodes and pointer slots below (and including) d, or
// reports false when a type needs arrow/cdata.
func countTree(d arrow.ArrayData) (nodes, slots int, ok bool) {
	nb := layoutBuffers(d.DataType())
	if nb < 0 || len(d.Buffers()) != nb { // dictionary types have nb < 0
		return 0, 0, false
	}
	nodes, slots = 1, nb+len(d.Children())
	for _, c := range d.Children() {
		n, s, ok := countTree(c)
		if !ok {
			return 0, 0, false
		}
		nodes += n
		slots += s
	}
	return nodes, slots, true
}

type blockFill struct {
	nodes []C.struct_ArrowArray
	slots []unsafe.Pointer
	block unsafe.Pointer
}

func (f *blockFill) node() *C.struct_ArrowArray {
	n := &f.nodes[0]
	f.nodes = f.nodes[1:]
	return n
}

func (f *blockFill) take(n int) []unsafe.Pointer {
	s := f.slots[:n:n]
	f.slots = f.slots[n:]
	return s
}

func (f *blockFill) fill(dst *C.struct_ArrowArray, d arrow.ArrayData) {
	dst.length = C.int64_t(d.Len())
	dst.null_count = C.int64_t(d.NullN())
	dst.offset = C.int64_t(d.Offset())
	bufs := d.Buffers()
	ptrs := f.take(len(bufs))
	for i, b := range bufs {
		switch {
		case b != nil && b.Len() > 0:
			ptrs[i] = unsafe.Pointer(&b.Bytes()[0])
		case i == 0:
			ptrs[i] = nil // no validity bitmap (null_count is 0)
		default:
			ptrs[i] = unsafe.Pointer(&C.vl_zero_region[0])
		}
	}
	dst.n_buffers = C.int64_t(len(bufs))
	if len(bufs) > 0 {
		dst.buffers = (*unsafe.Pointer)(unsafe.Pointer(&ptrs[0]))
	}
	kids := d.Children()
	dst.n_children = C.int64_t(len(kids))
	if len(kids) > 0 {
		cp := f.take(len(kids))
		dst.children = (**C.struct_ArrowArray)(unsafe.Pointer(&cp[0]))
		for i, k := range kids {
			n := f.node()
			cp[i] = unsafe.Pointer(n)
			f.fill(n, k)
		}
	}
	dst.release = (*[0]byte)(C.vl_block_node_release)
	dst.private_data = f.block
}

// exportRecordBlock exports rec (owned by b) into out as a top-level struct
// array through the fast path; false when rec needs arrow/cdata (nothing
// was done).
func exportRecordBlock(b *async.DeviceBatch, rec arrow.RecordBatch, out *C.struct_ArrowArray) (bool, error) {
	nodes, slots := 0, 1+int(rec.NumCols())
	for _, col := range rec.Columns() {
		n, s, ok := countTree(col.Data())
		if !ok {
			return false, nil
		}
		nodes += n
		slots += s
	}
	block := C.vl_block_new(C.int64_t(nodes), C.int64_t(slots))
	if block == nil {
		return true, async.Errorf(async.ENOMEM, "cabi: exporting a record batch")
	}
	hdr := (*C.struct_vl_block)(block)
	base := unsafe.Add(block, unsafe.Sizeof(C.struct_vl_block{}))
	f := &blockFill{block: block}
	if nodes > 0 {
		f.nodes = unsafe.Slice((*C.struct_ArrowArray)(base), nodes)
	}
	f.slots = unsafe.Slice((*unsafe.Pointer)(unsafe.Add(base, uintptr(nodes)*unsafe.Sizeof(C.struct_ArrowArray{}))), slots)

	out.length = C.int64_t(rec.NumRows())
	out.null_count = 0
	out.offset = 0
	top := f.take(1)
	top[0] = nil
	out.n_buffers = 1
	out.buffers = (*unsafe.Pointer)(unsafe.Pointer(&top[0]))
	out.n_children = C.int64_t(rec.NumCols())
	if rec.NumCols() > 0 {
		cp := f.take(int(rec.NumCols()))
		out.children = (**C.struct_ArrowArray)(unsafe.Pointer(&cp[0]))
		for i, col := range rec.Columns() {
			n := f.node()
			cp[i] = unsafe.Pointer(n)
			f.fill(n, col.Data())
		}
	}
	out.dictionary = nil
	out.release = (*[0]byte)(C.vl_block_node_release)
	out.private_data = block
	hdr.refs = C.int64_t(nodes + 1)
	hdr.batch = C.uintptr_t(cgo.NewHandle(b))
	return true, nil
}
