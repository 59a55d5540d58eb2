// Package cabi is Volley's bridge to the C ABI of the async device stream
// protocol (shared/SPEC.md, "The ABI"; the header is include/volley/abi.h).
// It translates between the Go contract of package async and the C structs;
// every protocol rule lives in the async runtime and consumer helpers, not
// here.
//
// Two directions:
//
//   - Export ([Forward], [Produce]): a Go producer (any [async.Source] run by
//     [async.Produce], or a Volley query) drives a C-allocated
//     ArrowAsyncDeviceStreamHandler. The bridge allocates the
//     ArrowAsyncProducer in C memory; its request and cancel reach the Go
//     producer through a runtime/cgo.Handle and only touch its atomics.
//     Each task's private_data is a cgo.Handle to the Go task, freed inside
//     extract_data on every path; batches are exported as ArrowDeviceArrays:
//     record batches as a top-level struct array (common layouts, the whole
//     tree in one C block with one handle and one release callback per
//     batch; anything else through arrow/cdata), device batches as
//     ArrowArray structs in C memory whose buffers are device addresses.
//     Requests the C consumer makes from inside on_schema/on_next_task on
//     the producer's thread are summed in C and forwarded when the callback
//     returns, saving a crossing per request.
//   - Import ([Import], [ImportWith]): a Go [async.Handler] (such as the
//     consumer helper async.Reader) as a C-allocated handler that a C
//     producer drives; CPU batches are imported through arrow/cdata, other
//     devices' batches become async.DeviceBatch values with Array,
//     SyncEvent and a Release that calls the C array's release.
//
// The rest serves the c-shared library (async/cabi/lib, C API in
// include/volley/volley.h): [DemoSource] and [ProduceDemo] (a stream
// without a database), [Collector] (a Go consumer for C producers), opaque
// handle boxes and the thread-local last error. The parts of the C API that
// need the driver and device layers are in async/cabi/capi.
//
// Memory: every struct C keeps comes from C (malloc, counted: see
// [LiveCAllocations]); Go objects reached from C go through cgo.Handle. The
// only Go addresses stored in C memory are the buffers of exported CPU
// record batches (as arrow/cdata does too), which the batch's handle keeps
// alive until the last release, and sync events as the batch gives them.
// Go panics never unwind into C: a callback that panics returns EIO. The
// layout of the C structs on x86-64 is pinned by this package's tests.
package cabi

/*
#cgo CFLAGS: -I${SRCDIR}/../../include -O2
#include "bridge.h"
*/
import "C"

import (
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/cdata"
)

// The C structs of the ABI as this package's cgo sees them. Another cgo
// package has its own Go types for the same structs: convert through
// unsafe.Pointer (the layouts are identical).
type (
	// CHandler is struct ArrowAsyncDeviceStreamHandler.
	CHandler = C.struct_ArrowAsyncDeviceStreamHandler
	// CProducer is struct ArrowAsyncProducer.
	CProducer = C.struct_ArrowAsyncProducer
	// CTask is struct ArrowAsyncTask.
	CTask = C.struct_ArrowAsyncTask
	// CDeviceArray is struct ArrowDeviceArray.
	CDeviceArray = C.struct_ArrowDeviceArray
	// CArray is struct ArrowArray.
	CArray = C.struct_ArrowArray
	// CSchema is struct ArrowSchema.
	CSchema = C.struct_ArrowSchema
)

// HandlerFromPtr converts a pointer to a struct ArrowAsyncDeviceStreamHandler
// (from any cgo package, or arrow/cdata's CArrowAsyncDeviceStreamHandler) to
// this package's type.
func HandlerFromPtr(p unsafe.Pointer) *CHandler { return (*CHandler)(p) }

// ToCData returns h as arrow/cdata's type for the same struct.
func ToCData(h *CHandler) *cdata.CArrowAsyncDeviceStreamHandler {
	return (*cdata.CArrowAsyncDeviceStreamHandler)(unsafe.Pointer(h))
}

func cdataSchema(s *C.struct_ArrowSchema) *cdata.CArrowSchema {
	return (*cdata.CArrowSchema)(unsafe.Pointer(s))
}

func cdataArray(a *C.struct_ArrowArray) *cdata.CArrowArray {
	return (*cdata.CArrowArray)(unsafe.Pointer(a))
}
