package cabi

/*
#include "bridge.h"
*/
import "C"

import "unsafe"

// Layout reports the size or field offset of the ABI structs as this
// package's cgo compiled them, keyed "Struct" (size) or "Struct.field"
// (offset). Its tests pin them against SPEC.md.
func Layout() map[string]uintptr {
	var (
		task C.struct_ArrowAsyncTask
		prod C.struct_ArrowAsyncProducer
		h    C.struct_ArrowAsyncDeviceStreamHandler
		da   C.struct_ArrowDeviceArray
		a    C.struct_ArrowArray
		s    C.struct_ArrowSchema
	)
	return map[string]uintptr{
		"ArrowAsyncTask":                             unsafe.Sizeof(task),
		"ArrowAsyncTask.extract_data":                unsafe.Offsetof(task.extract_data),
		"ArrowAsyncTask.private_data":                unsafe.Offsetof(task.private_data),
		"ArrowAsyncProducer":                         unsafe.Sizeof(prod),
		"ArrowAsyncProducer.device_type":             unsafe.Offsetof(prod.device_type),
		"ArrowAsyncProducer.request":                 unsafe.Offsetof(prod.request),
		"ArrowAsyncProducer.cancel":                  unsafe.Offsetof(prod.cancel),
		"ArrowAsyncProducer.additional_metadata":     unsafe.Offsetof(prod.additional_metadata),
		"ArrowAsyncProducer.private_data":            unsafe.Offsetof(prod.private_data),
		"ArrowAsyncDeviceStreamHandler":              unsafe.Sizeof(h),
		"ArrowAsyncDeviceStreamHandler.on_schema":    unsafe.Offsetof(h.on_schema),
		"ArrowAsyncDeviceStreamHandler.on_next_task": unsafe.Offsetof(h.on_next_task),
		"ArrowAsyncDeviceStreamHandler.on_error":     unsafe.Offsetof(h.on_error),
		"ArrowAsyncDeviceStreamHandler.release":      unsafe.Offsetof(h.release),
		"ArrowAsyncDeviceStreamHandler.producer":     unsafe.Offsetof(h.producer),
		"ArrowAsyncDeviceStreamHandler.private_data": unsafe.Offsetof(h.private_data),
		"ArrowDeviceArray":                           unsafe.Sizeof(da),
		"ArrowDeviceArray.array":                     unsafe.Offsetof(da.array),
		"ArrowDeviceArray.device_id":                 unsafe.Offsetof(da.device_id),
		"ArrowDeviceArray.device_type":               unsafe.Offsetof(da.device_type),
		"ArrowDeviceArray.sync_event":                unsafe.Offsetof(da.sync_event),
		"ArrowDeviceArray.reserved":                  unsafe.Offsetof(da.reserved),
		"ArrowDeviceArray.reserved.len":              uintptr(len(da.reserved)),
		"ArrowDeviceArray.reserved.elem":             unsafe.Sizeof(da.reserved[0]),
		"ArrowArray":                                 unsafe.Sizeof(a),
		"ArrowArray.release":                         unsafe.Offsetof(a.release),
		"ArrowArray.private_data":                    unsafe.Offsetof(a.private_data),
		"ArrowSchema":                                unsafe.Sizeof(s),
		"ArrowSchema.release":                        unsafe.Offsetof(s.release),
		"ArrowSchema.private_data":                   unsafe.Offsetof(s.private_data),
	}
}

// LiveCAllocations is the number of C allocations the bridge made (handlers,
// producers, exported array trees, metadata copies, boxes) that are not yet
// freed; tests assert it returns to zero.
func LiveCAllocations() int64 { return int64(C.vl_live_allocations()) }
