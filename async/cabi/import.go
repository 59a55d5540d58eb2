package cabi

/*
#include "bridge.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime/cgo"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/cdata"
	"github.com/volleyhq/volley/async"
)

// Import returns a C ArrowAsyncDeviceStreamHandler (malloc'd) that delivers
// what a C producer sends to the Go handler h: how a C producer (or
// arrow/cdata's ExportAsyncRecordBatchStream) drives a Volley consumer such
// as async.Reader.
//
// Hand the returned pointer to exactly one producer. The producer's release
// calls h.Release and frees the struct: after it the pointer is invalid. If
// no producer will ever run, call [ReleaseUnused] instead.
//
// What the bridge does for h:
//   - on_schema imports the schema through arrow/cdata (the schema is
//     released or moved on every path, refusals included, S2) and gives h a
//     Producer over the C producer. A producer whose device_type h does not
//     accept (async.AcceptedDevices) is refused with ENOTSUP: h gets OnError
//     instead of OnSchema, and the producer's release still works.
//   - tasks become [async.Task]s: Extract calls extract_data with a fresh
//     ArrowDeviceArray and imports it (CPU through arrow/cdata as a struct
//     array; other devices as an async.DeviceBatch with Array, SyncEvent and
//     a Release that calls the C array's release); Discard calls
//     extract_data(task, NULL). extract_data runs exactly once per task (T1).
//     A task h refuses by returning an error from OnNextTask is discarded
//     unless h already took it.
//   - on_error before on_schema reaches h with no producer (A5); messages and
//     metadata are copied (metadata by its binary length, E3).
//   - a producer that releases without on_schema or on_error (S1) is reported
//     to h as EPROTO before h.Release.
func Import(h async.Handler) *CHandler { return ImportWith(h, ImportOptions{}) }

// WaitFunc waits until the data of a device batch is complete on its
// device (D4): for CUDA, cuEventSynchronize on the CUevent that syncEvent
// points to (devicebuf's CUDA backend has one). It honours ctx.
type WaitFunc func(ctx context.Context, dev async.Device, syncEvent unsafe.Pointer) error

// ImportOptions configure [ImportWith]. The zero value is [Import]'s
// behaviour.
type ImportOptions struct {
	// Wait, when set, becomes the Wait of imported non-CPU batches that
	// carry a sync_event; nil leaves their Wait returning at once (the
	// consumer then waits on SyncEvent itself).
	Wait WaitFunc
}

// ImportWith is [Import] with options.
func ImportWith(h async.Handler, o ImportOptions) *CHandler {
	imp := &importer{h: h, accepted: async.AcceptedDevices(h), wait: o.Wait}
	imp.handle = cgo.NewHandle(imp)
	c := C.vl_handler_new(C.uintptr_t(imp.handle))
	if c == nil {
		imp.handle.Delete()
		panic("cabi: out of memory allocating a handler")
	}
	return c
}

// ReleaseUnused releases a handler from [Import] that was never given to a
// producer: h gets OnError(err) (EPROTO when err is nil) and Release, and the
// struct is freed.
func ReleaseUnused(c *CHandler, err error) {
	if c == nil || c.release == nil {
		return
	}
	imp := cgo.Handle(c.private_data).Value().(*importer)
	if err == nil {
		err = async.Errorf(async.EPROTO, "cabi: handler released before any producer used it")
	}
	imp.errored = true
	imp.h.OnError(async.AsError(err))
	C.vl_call_release(c)
}

// importer is what the exported handler's private_data refers to. Its
// callbacks are serialized by the C producer (TH1).
type importer struct {
	h        async.Handler
	handle   cgo.Handle
	accepted []async.DeviceType
	wait     WaitFunc

	schema  *arrow.Schema
	prod    *cProducer
	sawSch  bool
	errored bool
}

// cProducer is the [async.Producer] a Go handler sees over a C producer.
// Request and Cancel call the C function pointers; they become no-ops at end
// of stream and once the producer's release has begun, and release waits
// for calls in flight, so the C producer is never used after release may
// have freed it.
type cProducer struct {
	c  *C.struct_ArrowAsyncProducer
	dt async.DeviceType
	md arrow.Metadata

	mu     sync.RWMutex // read-held by calls into C; release takes it to wait for them
	closed atomic.Bool
}

// DeviceType implements [async.Producer].
func (p *cProducer) DeviceType() async.DeviceType { return p.dt }

// AdditionalMetadata implements [async.Producer]: the producer's
// additional_metadata, decoded when on_schema arrived (S6).
func (p *cProducer) AdditionalMetadata() arrow.Metadata { return p.md }

// Request implements [async.Producer] by calling the C producer's request.
func (p *cProducer) Request(n int64) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if !p.closed.Load() {
		C.vl_call_request(p.c, C.int64_t(n))
	}
}

// Cancel implements [async.Producer] by calling the C producer's cancel.
func (p *cProducer) Cancel() {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if !p.closed.Load() {
		C.vl_call_cancel(p.c)
	}
}

// close makes later Request and Cancel calls no-ops and waits for calls in
// flight: at release (the C producer may be freed once release returns,
// O3) and at end of stream (arrow-go's producer frees itself then). It runs
// on the producer's thread, so a producer whose request blocked until that
// thread made progress would deadlock here; request must not block (R2).
func (p *cProducer) close() {
	p.closed.Store(true)
	p.mu.Lock()
	p.mu.Unlock() //nolint:staticcheck // an empty critical section: waits for readers
}

// acceptsDevice reports whether dt is among the consumer's device types.
func (imp *importer) acceptsDevice(dt async.DeviceType) bool {
	return slices.Contains(imp.accepted, dt)
}

func errnoC(err error) C.int { return C.int(errnoOf(err)) }

// panicCode turns a panic of the Go handler inside a callback from C into
// an errno (a panic must never unwind into C frames): the stream is then
// treated as refused by the handler.
func panicCode(rc *C.int) {
	if v := recover(); v != nil {
		*rc = C.int(async.EIO)
	}
}

//export goHandlerOnSchema
func goHandlerOnSchema(h C.uintptr_t, prod *C.struct_ArrowAsyncProducer, schema *C.struct_ArrowSchema) (rc C.int) {
	defer panicCode(&rc)
	imp := cgo.Handle(h).Value().(*importer)
	fail := func(err *async.Error) C.int {
		C.vl_schema_release(schema)
		if !imp.errored {
			imp.errored = true
			imp.h.OnError(err)
		}
		return C.int(err.Code)
	}
	if imp.sawSch || imp.errored {
		return fail(async.Errorf(async.EPROTO, "cabi: on_schema called twice or after on_error"))
	}
	imp.sawSch = true
	if schema == nil || schema.release == nil {
		return fail(async.Errorf(async.EINVAL, "cabi: on_schema with a NULL or released schema"))
	}
	if prod == nil || prod.request == nil || prod.cancel == nil {
		return fail(async.Errorf(async.EPROTO, "cabi: handler->producer not set (or NULL callbacks) at on_schema"))
	}
	dt := async.DeviceType(prod.device_type)
	if !imp.acceptsDevice(dt) {
		return fail(async.Errorf(async.ENOTSUP, "cabi: producer's device %s is not accepted (consumer takes %v)", dt, imp.accepted))
	}
	md, err := metadataFromC(prod.additional_metadata)
	if err != nil {
		return fail(async.Errorf(async.EINVAL, "cabi: additional_metadata: %w", err))
	}
	// ImportCArrowSchema releases the C schema on every path.
	sc, err := cdata.ImportCArrowSchema(cdataSchema(schema))
	if err != nil {
		return fail(async.Errorf(async.EINVAL, "cabi: importing the schema: %w", err))
	}
	imp.schema = sc
	imp.prod = &cProducer{c: prod, dt: dt, md: md}
	if err := imp.h.OnSchema(imp.prod, sc); err != nil {
		return errnoC(err)
	}
	return 0
}

//export goHandlerOnNextTask
func goHandlerOnNextTask(h C.uintptr_t, fn, priv C.uintptr_t, md *C.char) (rc C.int) {
	imp := cgo.Handle(h).Value().(*importer)
	var t *cTask
	defer func() {
		if v := recover(); v != nil {
			if t != nil {
				t.Discard() // unless the handler took it before panicking
			}
			rc = C.int(async.EIO)
		}
	}()
	if fn != 0 {
		t = &cTask{imp: imp, fn: fn, priv: priv}
	} else if imp.prod != nil {
		// End of stream: demand has no use any more, and some producers
		// (arrow-go's) free themselves right after this call, before
		// release. Stop forwarding request and cancel now, waiting for
		// calls in flight.
		imp.prod.close()
	}
	discard := func() {
		if t != nil {
			t.Discard()
		}
	}
	if imp.errored {
		discard()
		return C.int(async.EPROTO)
	}
	if imp.prod == nil {
		discard()
		imp.errored = true
		imp.h.OnError(async.Errorf(async.EPROTO, "cabi: on_next_task before on_schema"))
		return C.int(async.EPROTO)
	}
	meta, err := metadataFromC(md)
	if err != nil {
		discard()
		imp.errored = true
		imp.h.OnError(async.Errorf(async.EINVAL, "cabi: task metadata: %w", err))
		return C.int(async.EINVAL)
	}
	var task async.Task
	if t != nil {
		task = t
	}
	if err := imp.h.OnNextTask(task, meta); err != nil {
		discard()
		return errnoC(err)
	}
	return 0
}

//export goHandlerOnError
func goHandlerOnError(h C.uintptr_t, code C.int, msg, md *C.char) {
	defer func() { _ = recover() }() // never unwind into C
	imp := cgo.Handle(h).Value().(*importer)
	if imp.errored {
		return
	}
	imp.errored = true
	var message string
	if msg != nil {
		message = C.GoString(msg) // a C string by the ABI; metadata is not
	}
	meta, err := metadataFromC(md)
	if err != nil {
		message += fmt.Sprintf(" (error metadata dropped: %v)", err)
	}
	c := async.Errno(code)
	if c <= 0 {
		c = async.EIO
	}
	imp.h.OnError(&async.Error{Code: c, Message: message, Metadata: meta})
}

//export goHandlerRelease
func goHandlerRelease(h C.uintptr_t) {
	defer func() { _ = recover() }() // never unwind into C; the struct is freed after
	hd := cgo.Handle(h)
	imp := hd.Value().(*importer)
	hd.Delete()
	if imp.prod != nil {
		imp.prod.close()
	}
	if !imp.sawSch && !imp.errored {
		imp.errored = true
		imp.h.OnError(async.Errorf(async.EPROTO, "cabi: producer released the stream without on_schema or on_error"))
	}
	imp.h.Release()
}

// cTask is an [async.Task] over a C task, copied by value (N4) as its two
// fields. Extract and Discard may be called from any goroutine, also after
// the stream's release (A4); the first call wins.
type cTask struct {
	imp      *importer
	fn, priv C.uintptr_t
	done     atomic.Bool
}

// Extract implements [async.Task]: extract_data with an out array that it
// then imports.
func (t *cTask) Extract() (*async.DeviceBatch, error) {
	if !t.done.CompareAndSwap(false, true) {
		return nil, async.ErrReleased
	}
	out := (*C.struct_ArrowDeviceArray)(C.vl_calloc(1, C.sizeof_struct_ArrowDeviceArray))
	if out == nil {
		// T1: the task must still be freed.
		C.vl_call_extract(t.fn, t.priv, nil)
		return nil, async.Errorf(async.ENOMEM, "cabi: allocating an ArrowDeviceArray")
	}
	if rc := C.vl_call_extract(t.fn, t.priv, out); rc != 0 {
		C.vl_array_release(&out.array)
		C.vl_free(unsafe.Pointer(out))
		return nil, &async.Error{Code: async.Errno(rc), Message: fmt.Sprintf("cabi: extract_data returned %s", async.Errno(rc))}
	}
	if out.array.release == nil {
		C.vl_free(unsafe.Pointer(out))
		return nil, async.Errorf(async.EPROTO, "cabi: extract_data returned 0 with a released array")
	}
	dt := async.DeviceType(out.device_type)
	if dt != async.DeviceCPU {
		if !t.imp.acceptsDevice(dt) {
			C.vl_array_release(&out.array)
			C.vl_free(unsafe.Pointer(out))
			return nil, async.Errorf(async.EPROTO, "cabi: task on device %s, producer said %s", dt, t.imp.prod.dt)
		}
		return importDevice(out, t.imp.schema, t.imp.wait), nil
	}
	defer C.vl_free(unsafe.Pointer(out))
	rec, err := cdata.ImportCRecordBatchWithSchema(cdataArray(&out.array), t.imp.schema)
	C.vl_array_release(&out.array) // only when the import did not move it
	if err != nil {
		return nil, async.Errorf(async.EINVAL, "cabi: importing a batch: %w", err)
	}
	return async.NewCPUBatch(rec), nil
}

// Discard implements [async.Task]: extract_data(task, NULL).
func (t *cTask) Discard() {
	if t.done.CompareAndSwap(false, true) {
		C.vl_call_extract(t.fn, t.priv, nil)
	}
}
