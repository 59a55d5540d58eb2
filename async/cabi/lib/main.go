// Command lib is libvolley, the c-shared library of the C API in
// include/volley/volley.h: `make lib` builds it into .cache/lib/libvolley.so
// (go build -buildmode=c-shared ./async/cabi/lib). Each exported function
// converts its C arguments and calls package cabi or capi; api.c holds
// the public, const-qualified names over these vgo_ exports.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../../include
#include <stdlib.h>
#include "volley/volley.h"
*/
import "C"

import (
	"unsafe"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/async/cabi"
	"github.com/volleyhq/volley/async/cabi/capi"
)

func main() {}

//export vgo_open
func vgo_open(drv, dsn *C.char, out **C.volley_db) C.int {
	b, rc := capi.LibOpen(C.GoString(drv), C.GoString(dsn))
	*out = (*C.volley_db)(b)
	return C.int(rc)
}

//export vgo_close
func vgo_close(db *C.volley_db) { capi.LibClose(unsafe.Pointer(db)) }

//export vgo_query
func vgo_query(db *C.volley_db, sql *C.char, opts *C.volley_query_options,
	h *C.struct_ArrowAsyncDeviceStreamHandler, out **C.struct_volley_query) C.int {
	var o capi.QueryOptions
	if opts != nil {
		if opts.device != nil {
			o.Device = C.GoString(opts.device)
		}
		o.Window, o.BatchBytes, o.BatchRows = int64(opts.window), int64(opts.batch_bytes), int64(opts.batch_rows)
		if opts.accept != nil && opts.n_accept > 0 {
			for _, t := range unsafe.Slice(opts.accept, int(opts.n_accept)) {
				o.Accept = append(o.Accept, async.DeviceType(t))
			}
		}
	}
	q, rc := capi.LibQuery(unsafe.Pointer(db), C.GoString(sql), o, unsafe.Pointer(h))
	if out != nil {
		*out = (*C.struct_volley_query)(q)
	}
	return C.int(rc)
}

//export vgo_query_cancel
func vgo_query_cancel(q *C.struct_volley_query) C.int {
	return C.int(capi.LibQueryCancel(unsafe.Pointer(q)))
}

//export vgo_query_wait
func vgo_query_wait(q *C.struct_volley_query) C.int {
	return C.int(capi.LibQueryWait(unsafe.Pointer(q)))
}

//export vgo_query_free
func vgo_query_free(q *C.struct_volley_query) { capi.LibQueryFree(unsafe.Pointer(q)) }

//export vgo_devices_json
func vgo_devices_json() *C.char { return (*C.char)(capi.LibDevicesJSON()) }

//export vgo_free
func vgo_free(p unsafe.Pointer) { C.free(p) }

//export vgo_last_error
func vgo_last_error() *C.char { return (*C.char)(cabi.LastError()) }

//export vgo_produce_demo
func vgo_produce_demo(batches, rows C.int64_t, h *C.struct_ArrowAsyncDeviceStreamHandler) C.int {
	return C.int(cabi.LibProduceDemo(int64(batches), int64(rows), unsafe.Pointer(h)))
}

//export vgo_collector_new
func vgo_collector_new(opts *C.volley_collector_options, out **C.volley_collector,
	h **C.struct_ArrowAsyncDeviceStreamHandler) C.int {
	var o cabi.CollectorOptions
	if opts != nil {
		o = cabi.CollectorOptions{Window: int(opts.window), CancelAfter: int64(opts.cancel_after),
			AcceptDevice: async.DeviceType(opts.accept_device)}
	}
	b, ch, rc := cabi.LibCollectorNew(o)
	*out, *h = (*C.volley_collector)(b), (*C.struct_ArrowAsyncDeviceStreamHandler)(ch)
	return C.int(rc)
}

//export vgo_collector_wait
func vgo_collector_wait(c *C.volley_collector, out *C.volley_collect_result) C.int {
	r, rc := cabi.LibCollectorWait(unsafe.Pointer(c))
	if rc == 0 && out != nil {
		*out = C.volley_collect_result{batches: C.int64_t(r.Batches), rows: C.int64_t(r.Rows),
			sum_first_column: C.int64_t(r.Sum), device_batches: C.int64_t(r.DeviceBatches),
			error_code: C.int32_t(r.ErrorCode), error_metadata_bytes: C.int64_t(r.ErrorMetadataBytes),
			metadata_pairs: C.int64_t(r.MetadataPairs)}
	}
	return C.int(rc)
}

//export vgo_collector_free
func vgo_collector_free(c *C.volley_collector) { cabi.LibCollectorFree(unsafe.Pointer(c)) }

//export vgo_debug_live_allocations
func vgo_debug_live_allocations() C.int64_t { return C.int64_t(cabi.LiveCAllocations()) }

//export vgo_produce_demo_on
func vgo_produce_demo_on(batches, rows C.int64_t, device *C.char, simulated C.int, h *C.struct_ArrowAsyncDeviceStreamHandler) C.int {
	return C.int(capi.LibProduceDemoOn(int64(batches), int64(rows), C.GoString(device), simulated != 0, unsafe.Pointer(h)))
}
