package async

import (
	"context"
	"sync/atomic"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
)

// Handler is the consumer's side of one stream (ArrowAsyncDeviceStreamHandler).
// The consumer allocates it (O1) and hands it to exactly one producer, which
// calls it:
//
//	OnSchema            exactly once, first (S1), unless OnError comes first
//	OnNextTask(t, md)*  only within outstanding demand (N2), never concurrently (N1)
//	OnNextTask(nil, md) end of stream (N3), or OnError, or nothing after Cancel (A2)
//	Release             exactly once, last, on every path (E5, E6)
//
// Goroutines: the producer serializes all calls (TH1): no two overlap, though
// they may come from different goroutines. Each call returns before the next
// is made. A Handler must not block for long inside a call; it may call the
// producer's Request and Cancel from inside OnSchema and OnNextTask (S5, R2),
// but no producer method from OnError (E2) or Release (E5).
type Handler interface {
	// OnSchema delivers the stream's schema and its producer (O2, O6: the
	// producer is valid from here until Release returns, A3). A non-nil
	// return refuses the stream: the producer then calls only Release (S4).
	OnSchema(p Producer, schema *arrow.Schema) error
	// OnNextTask delivers one task, or end of stream when task is nil. md is
	// the task's metadata (empty when the producer sent NULL); it is a copy
	// the handler may keep. The handler must Extract or Discard every task
	// exactly once (T1), now or later, on any goroutine (T4). A non-nil
	// return refuses the stream: the producer then calls only Release (N7).
	OnNextTask(task Task, md arrow.Metadata) error
	// OnError reports the stream's failure (E1). err is never nil; its
	// message and metadata are the handler's to keep. It may come before
	// OnSchema (E2, A5). Release follows.
	OnError(err *Error)
	// Release ends the stream: it is the last call (E5).
	Release()
}

// Producer is the producer's side of one stream (ArrowAsyncProducer). The
// producer owns it (O2) and keeps it valid until the handler's Release has
// returned (O3, A3).
//
// Request and Cancel may be called from any goroutine, concurrently with each
// other and with the producer's own work (R6, X1), and re-entrantly from
// inside OnSchema and OnNextTask (S5, R2). They never block and never call a
// handler method synchronously (R2, X2); errors they meet reach the handler
// later through OnError (R4, R5, X5).
type Producer interface {
	// DeviceType is the device every batch of the stream lives on (T6).
	DeviceType() DeviceType
	// Request adds n to the demand (R1). n <= 0 is an error reported through
	// OnError with EINVAL (R4). After Cancel, Request does nothing (R3).
	Request(n int64)
	// Cancel asks the producer to stop (X1–X5). It is idempotent. A
	// cancelled stream ends with Release only (A2).
	Cancel()
	// AdditionalMetadata is the stream's metadata (S6), fixed before
	// OnSchema. Volley puts its placement decision here (keys in package
	// driver). The returned value must not be modified.
	AdditionalMetadata() arrow.Metadata
}

// Task is one batch of the stream, handed over by OnNextTask (ArrowAsyncTask).
// Exactly one of Extract or Discard must be called, exactly once, by the
// consumer (T1), on any goroutine, also after the stream's Release (A4). The
// producer frees the task's state inside that call on every path (T2).
// Calling either a second time returns or does nothing with [ErrReleased].
type Task interface {
	// Extract returns the task's batch; the caller owns it and must Release
	// it (T3). An error is also reported to the handler through OnError (T5).
	Extract() (*DeviceBatch, error)
	// Discard drops the task without extracting it (extract_data with NULL).
	Discard()
}

// DeviceArray is the layout of one array whose buffers may live on a device:
// the fields of an ArrowArray, with buffer addresses that host code must not
// dereference unless the device is host accessible. The struct itself is
// ordinary Go memory (D1). Buffers are in the order the Arrow C data
// interface gives them for the array's type; an absent buffer has Addr 0.
type DeviceArray struct {
	Length     int64
	NullCount  int64
	Offset     int64
	Buffers    []DeviceBuffer
	Children   []*DeviceArray
	Dictionary *DeviceArray
}

// DeviceBuffer is one buffer of a [DeviceArray]: a device address and its
// length in bytes.
type DeviceBuffer struct {
	Addr uintptr
	Len  int64
}

// DeviceBatch is one record batch on a device, as a task yields it: the
// buffers, the device they live on, an optional sync event, and one release.
//
// Record is set when the buffers are addressable from the host (CPU, pinned
// host, managed memory); Array is set when they are not, and may also be set
// for host-accessible device memory. Either way the structure (schema,
// DeviceArray structs) is CPU memory (D1). Before touching the buffers a
// consumer calls Wait (or, across the C boundary, waits on SyncEvent, D4).
//
// A DeviceBatch belongs to whoever extracted it (T3). Release frees
// everything exactly once; it is safe from any goroutine and idempotent. The
// batch's data is immutable for everyone (D6).
type DeviceBatch struct {
	// Device is where the buffers live.
	Device Device
	// Schema is the batch's schema: the stream's (N6).
	Schema *arrow.Schema
	// NumRows is the batch's length.
	NumRows int64
	// Record holds the batch as arrow-go arrays when the buffers are host
	// accessible; nil otherwise. It is owned by the batch: retain it to keep
	// it past Release.
	Record arrow.RecordBatch
	// Array is the top-level struct array's layout when the buffers are not
	// host accessible (or when the backend provides it); nil for plain CPU.
	Array *DeviceArray
	// SyncEvent is the device's event that fires when the data is complete
	// (for CUDA a pointer to a CUevent in C memory), or nil when the data is
	// ready at once (D2, D4). It lives until Release.
	SyncEvent unsafe.Pointer

	wait     func(ctx context.Context) error
	release  func()
	released atomic.Bool
}

// DeviceBatchParts are the pieces [NewDeviceBatch] assembles.
type DeviceBatchParts struct {
	Device    Device
	Schema    *arrow.Schema
	NumRows   int64
	Record    arrow.RecordBatch
	Array     *DeviceArray
	SyncEvent unsafe.Pointer
	// Wait blocks until the data is ready; nil when it is ready at once.
	Wait func(ctx context.Context) error
	// Release frees everything the batch holds except Record, which the
	// batch releases itself; nil when there is nothing more to free.
	Release func()
}

// NewDeviceBatch assembles a batch; it takes ownership of p.Record.
func NewDeviceBatch(p DeviceBatchParts) *DeviceBatch {
	schema, rows := p.Schema, p.NumRows
	if p.Record != nil {
		schema, rows = p.Record.Schema(), p.Record.NumRows()
	}
	return &DeviceBatch{Device: p.Device, Schema: schema, NumRows: rows, Record: p.Record,
		Array: p.Array, SyncEvent: p.SyncEvent, wait: p.Wait, release: p.Release}
}

// NewCPUBatch wraps a CPU record batch; it takes ownership of rec.
func NewCPUBatch(rec arrow.RecordBatch) *DeviceBatch {
	return NewDeviceBatch(DeviceBatchParts{Device: CPU, Record: rec})
}

// Wait blocks until the batch's data is complete on its device (D4), or ctx
// ends. It returns at once for batches without a sync event.
func (b *DeviceBatch) Wait(ctx context.Context) error {
	if b.released.Load() {
		return ErrReleased
	}
	if b.wait == nil {
		return nil
	}
	return b.wait(ctx)
}

// Release frees the batch: its record, its device memory and its sync
// event. It is idempotent and safe from any goroutine.
func (b *DeviceBatch) Release() {
	if b == nil || !b.released.CompareAndSwap(false, true) {
		return
	}
	if b.Record != nil {
		b.Record.Release()
	}
	if b.release != nil {
		b.release()
	}
}

// Released reports whether Release has been called.
func (b *DeviceBatch) Released() bool { return b.released.Load() }

// Batch is what a [Source] yields: a CPU record batch, or a batch already on
// a device (for adapters that produce device batches natively), with its
// optional per-task metadata. Exactly one of Record and Device is set; the
// caller of Next owns it.
type Batch struct {
	Record   arrow.RecordBatch
	Device   *DeviceBatch
	Metadata arrow.Metadata
}

// Release releases whichever of Record and Device is set.
func (b Batch) Release() {
	if b.Record != nil {
		b.Record.Release()
	}
	b.Device.Release()
}

// Source is the pull side an adapter implements; [Produce] turns it into a
// conformant producer. The runtime calls it from one goroutine at a time:
//
//	Schema(ctx)  once, first
//	Next(ctx)*   until it returns an error; io.EOF is the clean end
//	Close()      exactly once, on every path, also when Schema failed
//
// Schema must not read rows where the adapter can avoid it. Next returns
// one batch whose ownership moves to the caller; every batch must match the
// schema (N6). Each blocking call honours ctx: when ctx ends, it returns
// promptly with an error wrapping context.Cause(ctx). Close stops any work in
// flight (cancelling the query on the server) and frees everything; it may be
// called while a Next is blocked on another goroutine only if the Source says
// so, and the runtime never does.
type Source interface {
	Schema(ctx context.Context) (*arrow.Schema, error)
	Next(ctx context.Context) (Batch, error)
	Close() error
}

// EndNotifier is an optional interface of a [Source] that learns of its
// end before it is pulled. Ended returns a channel that is closed once the
// next Next will return io.EOF or an error at once, without a batch (nil
// while that is not known; [Produce] asks again each time it waits). With
// it, Produce ends the stream (end of stream, or the error) as soon as the
// source has ended, also while the consumer has no demand outstanding, so
// that a consumer that requested exactly as many batches as the stream
// holds still sees the end (decision A1). Without it, the end is found by
// the pull that demand allows.
type EndNotifier interface {
	Ended() <-chan struct{}
}

// Mover moves CPU record batches onto one device; devicebuf provides them.
// A Mover is used by one stream's producer goroutine at a time.
type Mover interface {
	// Device is where moved batches land.
	Device() Device
	// Move takes ownership of rec and returns it as a batch on the device.
	// The copy may still be running when Move returns: the batch's Wait and
	// SyncEvent say when it is complete, so the producer can go on to the
	// next batch while it runs.
	Move(ctx context.Context, rec arrow.RecordBatch) (*DeviceBatch, error)
}

// Flusher is an optional interface of a [Mover] whose copies complete
// asynchronously. Flush waits until every copy enqueued so far has completed
// and returns the first failure among them. [Produce] calls it before it
// sends end of stream, so that a copy that failed after its Move returned
// ends the stream with OnError instead of a clean end.
type Flusher interface {
	Flush(ctx context.Context) error
}

// DeviceAcceptor is an optional interface of a [Handler]: the device types
// the consumer can take, best first. A handler without it takes CPU only.
type DeviceAcceptor interface {
	AcceptedDevices() []DeviceType
}

// AcceptedDevices returns what h declares through [DeviceAcceptor], or
// [DeviceCPU] alone.
func AcceptedDevices(h Handler) []DeviceType {
	if a, ok := h.(DeviceAcceptor); ok {
		if ts := a.AcceptedDevices(); len(ts) > 0 {
			return ts
		}
	}
	return []DeviceType{DeviceCPU}
}
