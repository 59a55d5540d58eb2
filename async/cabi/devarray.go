package cabi

/*
#include "bridge.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime/cgo"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/cdata"
	"github.com/volleyhq/volley/async"
)

// exportBatch moves b into out, which the caller zeroed (so reserved is
// zero, D3). On success out.array.release owns b: it frees the C structs and
// calls b.Release exactly once, from whatever thread releases the array. On
// error nothing of b has been given away (the caller releases it).
//
//   - b.Array set: ArrowArray structs in C memory built from the DeviceArray
//     tree; buffers are the device addresses (D1).
//   - otherwise b.Record: arrow/cdata's export as a top-level struct array,
//     wrapped so that its release also releases b.
//
// device_type and device_id come from b.Device (device_id -1 for the CPU,
// D5); sync_event is b.SyncEvent, which lives until b's release (D2).
func exportBatch(b *async.DeviceBatch, out *C.struct_ArrowDeviceArray) error {
	dev := b.Device
	if dev.Type == 0 {
		dev = async.CPU
	}
	if dev.Type == async.DeviceCPU {
		dev.ID = -1
	}
	switch {
	case b.Array != nil:
		if err := buildNode(&out.array, b.Array); err != nil {
			C.vl_array_release(&out.array)
			return err
		}
		h := cgo.NewHandle(b)
		if C.vl_node_set_top(&out.array, C.uintptr_t(h)) != 0 {
			h.Delete()
			C.vl_array_release(&out.array)
			return async.Errorf(async.ENOMEM, "cabi: exporting a device array")
		}
	case b.Record != nil:
		done, err := exportRecordBlock(b, b.Record, &out.array)
		if err != nil {
			return err
		}
		if done {
			break
		}
		w := C.vl_wrap_new()
		if w == nil {
			return async.Errorf(async.ENOMEM, "cabi: exporting a record batch")
		}
		cdata.ExportArrowRecordBatch(b.Record, cdataArray(C.vl_wrap_inner(w)), nil)
		C.vl_wrap_finish(&out.array, w, C.uintptr_t(cgo.NewHandle(b)))
	default:
		return fmt.Errorf("%w: cabi: device batch has neither Record nor Array", async.ErrInvalid)
	}
	out.device_id = C.int64_t(dev.ID)
	out.device_type = C.ArrowDeviceType(dev.Type)
	out.sync_event = b.SyncEvent
	return nil
}

// buildNode fills dst (C memory) from a. On error dst may be partly built;
// its release frees what was allocated.
func buildNode(dst *C.struct_ArrowArray, a *async.DeviceArray) error {
	if a == nil {
		return fmt.Errorf("%w: cabi: nil DeviceArray in the tree", async.ErrInvalid)
	}
	dict := 0
	if a.Dictionary != nil {
		dict = 1
	}
	if C.vl_node_init(dst, C.int64_t(len(a.Buffers)), C.int64_t(len(a.Children)), C.int(dict)) != 0 {
		return async.Errorf(async.ENOMEM, "cabi: allocating a device array node")
	}
	dst.length = C.int64_t(a.Length)
	dst.null_count = C.int64_t(a.NullCount)
	dst.offset = C.int64_t(a.Offset)
	if len(a.Buffers) > 0 {
		bufs := unsafe.Slice((*uintptr)(unsafe.Pointer(dst.buffers)), len(a.Buffers))
		for i, b := range a.Buffers {
			bufs[i] = b.Addr
		}
	}
	if len(a.Children) > 0 {
		kids := unsafe.Slice(dst.children, len(a.Children))
		for i, c := range a.Children {
			if err := buildNode(kids[i], c); err != nil {
				return err
			}
		}
	}
	if a.Dictionary != nil {
		return buildNode(dst.dictionary, a.Dictionary)
	}
	return nil
}

//export goBatchRelease
func goBatchRelease(h C.uintptr_t) {
	hd := cgo.Handle(h)
	b := hd.Value().(*async.DeviceBatch)
	hd.Delete()
	b.Release()
}

// importDevice turns an extracted non-CPU ArrowDeviceArray (malloc'd by the
// bridge, filled by the producer) into a DeviceBatch: Array is a Go copy of
// the layout (device addresses, never dereferenced), SyncEvent the
// producer's event, and Release calls the C array's release and frees out.
// The batch takes ownership of out. wait, when set, becomes the batch's
// Wait for a non-NULL sync_event.
func importDevice(out *C.struct_ArrowDeviceArray, schema *arrow.Schema, wait WaitFunc) *async.DeviceBatch {
	dev := async.Device{Type: async.DeviceType(out.device_type), ID: int64(out.device_id)}
	var dt arrow.DataType
	if schema != nil {
		dt = arrow.StructOf(schema.Fields()...)
	}
	arr := layoutFromC(&out.array, dt)
	var waitFn func(context.Context) error
	if ev := out.sync_event; wait != nil && ev != nil {
		waitFn = func(ctx context.Context) error { return wait(ctx, dev, ev) }
	}
	return async.NewDeviceBatch(async.DeviceBatchParts{
		Wait:      waitFn,
		Device:    dev,
		Schema:    schema,
		NumRows:   int64(out.array.length),
		Array:     arr,
		SyncEvent: out.sync_event,
		Release: func() {
			C.vl_array_release(&out.array)
			C.vl_free(unsafe.Pointer(out))
		},
	})
}

// layoutFromC copies the layout of a (structs are CPU memory, D1). Buffer
// lengths are computed from dt where the layout determines them (validity
// bitmaps, fixed-width values, offsets); a length that depends on device
// contents (variable-size values) is 0.
func layoutFromC(a *C.struct_ArrowArray, dt arrow.DataType) *async.DeviceArray {
	d := &async.DeviceArray{Length: int64(a.length), NullCount: int64(a.null_count), Offset: int64(a.offset)}
	n := d.Length + d.Offset
	if a.n_buffers > 0 && a.buffers != nil {
		addrs := unsafe.Slice((*uintptr)(unsafe.Pointer(a.buffers)), int(a.n_buffers))
		d.Buffers = make([]async.DeviceBuffer, len(addrs))
		for i, addr := range addrs {
			d.Buffers[i] = async.DeviceBuffer{Addr: addr, Len: bufferLen(dt, i, n)}
		}
	}
	if a.n_children > 0 && a.children != nil {
		kids := unsafe.Slice(a.children, int(a.n_children))
		d.Children = make([]*async.DeviceArray, len(kids))
		for i, k := range kids {
			d.Children[i] = layoutFromC(k, childType(dt, i))
		}
	}
	if a.dictionary != nil {
		var vt arrow.DataType
		if t, ok := dt.(*arrow.DictionaryType); ok {
			vt = t.ValueType
		}
		d.Dictionary = layoutFromC(a.dictionary, vt)
	}
	return d
}

func childType(dt arrow.DataType, i int) arrow.DataType {
	if n, ok := dt.(arrow.NestedType); ok && i < len(n.Fields()) {
		return n.Fields()[i].Type
	}
	return nil
}

// bufferLen is the byte length of buffer i of an array of type dt with n
// slots (offset + length), or 0 when the layout alone does not say.
func bufferLen(dt arrow.DataType, i int, n int64) int64 {
	if dt == nil {
		return 0
	}
	if d, ok := dt.(*arrow.DictionaryType); ok {
		dt = d.IndexType
	}
	bitmap := (n + 7) / 8
	switch t := dt.(type) {
	case *arrow.BooleanType:
		return bitmap
	case *arrow.StringType, *arrow.BinaryType, *arrow.ListType, *arrow.MapType:
		if i == 0 {
			return bitmap
		}
		if i == 1 {
			return (n + 1) * 4
		}
		return 0
	case *arrow.LargeStringType, *arrow.LargeBinaryType, *arrow.LargeListType:
		if i == 0 {
			return bitmap
		}
		if i == 1 {
			return (n + 1) * 8
		}
		return 0
	case *arrow.StructType, *arrow.FixedSizeListType:
		if i == 0 {
			return bitmap
		}
		return 0
	case arrow.FixedWidthDataType:
		if i == 0 {
			return bitmap
		}
		if i == 1 {
			return (n*int64(t.BitWidth()) + 7) / 8
		}
	}
	return 0
}
