package cabi

/*
#include "bridge.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/cdata"
	"github.com/volleyhq/volley/async"
)

// Forwarder is an [async.Handler] that forwards every call to a C
// ArrowAsyncDeviceStreamHandler: it is how a Go producer ([async.Produce],
// a Volley query) drives a C consumer. [Forward] makes one.
//
// The Forwarder owns the ArrowAsyncProducer it gives the C handler (C memory,
// set as handler->producer before any callback, O2). The producer struct
// stays valid until the handler's release has returned and every task handed
// to C has been extracted or discarded, whichever is later (O3, A3, A4):
// consumers that call request for tasks still queued after release (arrow-go
// does) therefore never touch freed memory.
//
// Goroutines: the Go producer calls the Handler methods serialized (TH1),
// as the async contract requires; the C handler's callbacks run on that
// goroutine. The C side may call request, cancel and extract_data from any
// thread (TH2).
type Forwarder struct {
	c        *C.struct_ArrowAsyncDeviceStreamHandler
	ps       *producerState
	accepted []async.DeviceType

	mu       sync.Mutex
	mdBuf    unsafe.Pointer // C buffer for per-task metadata, reused; under mu
	mdCap    int
	schema   bool // OnSchema was called
	errored  bool // OnError was called
	released bool
}

// producerState is what the C producer's private_data handle refers to.
type producerState struct {
	c      *C.struct_ArrowAsyncProducer
	handle cgo.Handle
	p      atomic.Pointer[producerBox]
	// refs counts the stream (until release returned) plus every task not
	// yet extracted; the C producer is freed when it reaches zero.
	refs atomic.Int64
}

type producerBox struct{ p async.Producer }

// fwdTask is what a task's private_data handle refers to.
type fwdTask struct {
	t  async.Task
	ps *producerState
	f  *Forwarder
}

// Forward wraps the C handler h, which the caller allocated and filled (O1,
// O5), as an [async.Handler]. accepted lists the device types the C consumer
// takes, best first (none: CPU only); the Forwarder reports them through
// [async.DeviceAcceptor].
//
// From this call on the Forwarder owns the obligation to call h's release
// exactly once (E6): hand it to a producer, or call [Forwarder.Abort].
func Forward(h *CHandler, accepted ...async.DeviceType) (*Forwarder, error) {
	if h == nil || h.on_schema == nil || h.on_next_task == nil || h.on_error == nil || h.release == nil {
		return nil, fmt.Errorf("%w: cabi: C handler is NULL or has NULL callbacks", async.ErrInvalid)
	}
	ps := &producerState{}
	ps.refs.Store(1)
	ps.handle = cgo.NewHandle(ps)
	ps.c = C.vl_producer_new(C.uintptr_t(ps.handle))
	if ps.c == nil {
		ps.handle.Delete()
		return nil, fmt.Errorf("%w: cabi: allocating the producer", async.ErrOutOfMemory)
	}
	h.producer = ps.c
	if len(accepted) == 0 {
		accepted = []async.DeviceType{async.DeviceCPU}
	}
	return &Forwarder{c: h, ps: ps, accepted: accepted}, nil
}

// Produce streams src to the C handler h through [async.Produce] and a
// [Forwarder]; it blocks until the handler's release has returned and
// returns what async.Produce returns. h receives exactly one release, also
// when Produce fails before the stream starts.
func Produce(ctx context.Context, h *CHandler, src async.Source, opts async.ProduceOptions, accepted ...async.DeviceType) error {
	f, err := Forward(h, accepted...)
	if err != nil {
		ReleaseHandler(h)
		if src != nil {
			src.Close()
		}
		return err
	}
	return async.Produce(ctx, f, src, opts)
}

// AllocHandler returns a zeroed ArrowAsyncDeviceStreamHandler in C memory,
// for a consumer implemented elsewhere (C code, or arrow/cdata's
// CreateAsyncDeviceStreamHandler) to fill. Free it with [FreeHandler] once
// its release has been called.
func AllocHandler() *CHandler {
	return (*CHandler)(C.vl_calloc(1, C.sizeof_struct_ArrowAsyncDeviceStreamHandler))
}

// FreeHandler frees a handler from [AllocHandler].
func FreeHandler(h *CHandler) { C.vl_free(unsafe.Pointer(h)) }

// ReleaseHandler calls h's release, if h and its release are set: for a C
// handler no Forwarder could be made for, which must still get its release
// (E6).
func ReleaseHandler(h *CHandler) {
	if h != nil && h.release != nil {
		C.vl_call_release(h)
	}
}

// AcceptedDevices implements [async.DeviceAcceptor].
func (f *Forwarder) AcceptedDevices() []async.DeviceType { return f.accepted }

// OnSchema exports schema to C and calls on_schema. The C producer's
// device_type and additional_metadata (a C copy of the binary encoding) are
// set first (S6).
func (f *Forwarder) OnSchema(p async.Producer, schema *arrow.Schema) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released || f.schema || f.errored {
		return fmt.Errorf("%w: cabi: OnSchema out of order", async.ErrProtocol)
	}
	f.schema = true
	f.ps.p.Store(&producerBox{p})
	f.ps.c.device_type = C.ArrowDeviceType(p.DeviceType())
	if enc := async.EncodeMetadata(p.AdditionalMetadata()); len(enc) > 0 {
		if rc := C.vl_producer_set_metadata(f.ps.c, unsafe.Pointer(&enc[0]), C.int64_t(len(enc))); rc != 0 {
			return f.failLocked(async.Errorf(async.ENOMEM, "cabi: copying additional metadata"))
		}
	}
	cs := (*C.struct_ArrowSchema)(C.vl_calloc(1, C.sizeof_struct_ArrowSchema))
	if cs == nil {
		return f.failLocked(async.Errorf(async.ENOMEM, "cabi: allocating the schema"))
	}
	defer C.vl_free(unsafe.Pointer(cs))
	cdata.ExportArrowSchema(schema, cdataSchema(cs))
	var pending C.int64_t
	rc := C.vl_call_on_schema(f.c, cs, f.ps.c, &pending)
	if pending > 0 {
		p.Request(int64(pending))
	}
	// S2: the consumer released or moved the schema. One that did neither
	// would leak it; release it here rather than leak.
	C.vl_schema_release(cs)
	if rc != 0 {
		return refused("on_schema", rc)
	}
	return nil
}

// OnNextTask hands task to C (or end of stream for nil). The task's
// private_data is a cgo.Handle freed inside extract_data (T2); the task
// struct lives on the C stack for the call only (N4); md is passed as a C
// copy of its binary encoding valid during the call (N5).
func (f *Forwarder) OnNextTask(task async.Task, md arrow.Metadata) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released || !f.schema || f.errored {
		return fmt.Errorf("%w: cabi: OnNextTask out of order", async.ErrProtocol)
	}
	cmd, err := f.taskMetadata(md)
	if err != nil {
		return f.failLocked(async.AsError(err))
	}
	var rc C.int
	var pending C.int64_t
	if task == nil {
		rc = C.vl_send_end(f.c, cmd, f.ps.c, &pending)
	} else {
		f.ps.refs.Add(1)
		h := cgo.NewHandle(&fwdTask{t: task, ps: f.ps, f: f})
		// A refused task still belongs to the consumer, which extracts or
		// discards it (T1); its handle is freed there.
		rc = C.vl_send_task(f.c, C.uintptr_t(h), cmd, f.ps.c, &pending)
	}
	if pending > 0 {
		if p := f.ps.producer(); p != nil {
			p.Request(int64(pending))
		}
	}
	if rc != 0 {
		return refused("on_next_task", rc)
	}
	return nil
}

// taskMetadata encodes md into the Forwarder's reusable C buffer (valid
// until the next call, which is after on_next_task returned: N5); NULL for
// empty metadata.
func (f *Forwarder) taskMetadata(md arrow.Metadata) (*C.char, error) {
	n := async.EncodedMetadataLen(md)
	if n == 0 {
		return nil, nil
	}
	if n > f.mdCap {
		C.vl_free(f.mdBuf)
		c := max(n, 2*f.mdCap, 256)
		f.mdBuf = C.vl_malloc(C.size_t(c))
		if f.mdBuf == nil {
			f.mdCap = 0
			return nil, async.Errorf(async.ENOMEM, "cabi: copying task metadata")
		}
		f.mdCap = c
	}
	buf := unsafe.Slice((*byte)(f.mdBuf), f.mdCap)
	async.AppendMetadata(buf[:0], md)
	return (*C.char)(f.mdBuf), nil
}

// OnError calls on_error with err's code, message and binary metadata, all
// C copies valid during the call (E3).
func (f *Forwarder) OnError(err *async.Error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onErrorLocked(err)
}

// failLocked reports a failure of the bridge itself to the C handler
// (on_error; the producer then sees an error return and calls only
// Release) and returns err.
func (f *Forwarder) failLocked(err *async.Error) error {
	f.onErrorLocked(err)
	return err
}

func (f *Forwarder) onErrorLocked(err *async.Error) {
	if f.released || f.errored {
		return
	}
	f.errored = true
	code := err.Code
	if code <= 0 {
		code = async.EIO
	}
	msg := C.CString(err.Message)
	defer C.free(unsafe.Pointer(msg))
	cmd, _ := metadataToC(err.Metadata)
	defer C.vl_free(unsafe.Pointer(cmd))
	C.vl_call_on_error(f.c, C.int(code), msg, cmd)
}

// Release calls the C handler's release, then drops the stream's reference
// on the producer struct.
func (f *Forwarder) Release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.releaseLocked()
}

func (f *Forwarder) releaseLocked() {
	if f.released {
		return
	}
	f.released = true
	C.vl_call_release(f.c)
	C.vl_free(f.mdBuf)
	f.mdBuf, f.mdCap = nil, 0
	f.ps.unref()
}

// Abort ends a stream that no producer will run: it reports err through
// on_error (unless the stream already reported one; nil sends none) and
// calls release, unless release was already called. It is safe to call
// after a producer finished with the Forwarder, and then does nothing.
func (f *Forwarder) Abort(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return
	}
	if err != nil {
		f.onErrorLocked(async.AsError(err))
	}
	f.releaseLocked()
}

// Released reports whether the C handler's release has been called.
func (f *Forwarder) Released() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.released
}

func refused(what string, rc C.int) error {
	code := async.Errno(rc)
	return &async.Error{Code: code, Message: fmt.Sprintf("cabi: %s returned %s", what, code), Err: async.ErrRefused}
}

func (ps *producerState) producer() async.Producer {
	if b := ps.p.Load(); b != nil {
		return b.p
	}
	return nil
}

func (ps *producerState) unref() {
	if ps.refs.Add(-1) == 0 {
		C.vl_producer_free(ps.c)
		ps.c = nil
		ps.handle.Delete()
	}
}

//export goProducerRequest
func goProducerRequest(h C.uintptr_t, n C.int64_t) {
	defer func() { _ = recover() }() // never unwind into C
	if p := cgo.Handle(h).Value().(*producerState).producer(); p != nil {
		p.Request(int64(n))
	}
}

//export goProducerCancel
func goProducerCancel(h C.uintptr_t) {
	defer func() { _ = recover() }() // never unwind into C
	if p := cgo.Handle(h).Value().(*producerState).producer(); p != nil {
		p.Cancel()
	}
}

//export goTaskExtract
func goTaskExtract(h C.uintptr_t, out *C.struct_ArrowDeviceArray) (rc C.int) {
	hd := cgo.Handle(h)
	ft := hd.Value().(*fwdTask)
	hd.Delete()
	defer ft.ps.unref()
	defer func() {
		// A panic must not unwind into C: it becomes EIO.
		if v := recover(); v != nil {
			rc = C.int(async.EIO)
		}
	}()
	if out == nil {
		ft.t.Discard()
		return 0
	}
	b, err := ft.t.Extract()
	if err == nil {
		if err = exportBatch(b, out); err != nil {
			b.Release()
		}
	}
	if err != nil {
		// T5: the failure is reported through on_error, which must not
		// run inside extract_data (the consumer may be extracting from
		// within on_next_task, under the Forwarder's lock).
		go ft.f.extractFailed(err)
		return C.int(errnoOf(err))
	}
	return 0
}

// extractFailed ends the stream after an extract_data that failed: one
// on_error for the failure (unless the stream already ended or reported
// one), then the Go producer is cancelled so that it ends with release
// only (the Forwarder refuses its further tasks).
func (f *Forwarder) extractFailed(err error) {
	ae := async.AsError(err)
	f.mu.Lock()
	report := !f.released && !f.errored
	if report {
		f.onErrorLocked(&async.Error{Code: errnoOf(err), Message: "cabi: extract_data failed: " + ae.Message, Metadata: ae.Metadata, Err: err})
	}
	f.mu.Unlock()
	if report {
		if p := f.ps.producer(); p != nil {
			p.Cancel()
		}
	}
}

func errnoOf(err error) async.Errno {
	if c := async.CodeOf(err); c > 0 {
		return c
	}
	return async.EIO
}
