package devicebuf

import (
	"context"
)

// Backend is one family of GPUs: the CUDA driver API ([NewCUDA]) or the
// simulated GPU ([NewSimulated]). A [Manager] drives it; other code rarely
// calls it directly.
//
// Goroutines: every method is safe for concurrent use.
type Backend interface {
	// Name names the backend in reasons and errors ("cuda", "simulated").
	Name() string
	// Probe initialises the backend on first use and describes its GPUs in
	// ordinal order. A non-nil error means the backend cannot be used at
	// all (library missing, cuInit failed); its message is the reason the
	// inventory shows. A GPU that exists but cannot be used has Err set.
	Probe(ctx context.Context) ([]GPUInfo, error)
	// Open returns a handle on the GPU with the given ordinal (as Probe
	// numbers them). Every successful Open is matched by one GPU.Close.
	Open(ctx context.Context, ordinal int) (GPU, error)
	// Close releases the backend. The Manager calls it once, after every
	// GPU it opened is closed; Close is idempotent.
	Close() error
}

// GPUInfo describes one GPU of a [Backend].
type GPUInfo struct {
	// Ordinal is the GPU's number within its backend.
	Ordinal int
	// Name is the device's name ("NVIDIA H200", "simulated GPU").
	Name string
	// FreeBytes and TotalBytes are the device memory; 0 when unknown.
	FreeBytes, TotalBytes int64
	// UnifiedAddressing reports a device sharing one address space with
	// the host (CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING).
	UnifiedAddressing bool
	// AsyncEngines is the number of copy engines.
	AsyncEngines int
	// Simulated is set by the simulated backend.
	Simulated bool
	// Err, when non-nil, says why this GPU cannot be used (for example a
	// sticky error that poisoned it); it wraps [ErrPoisoned] then.
	Err error
}

// GPU is an open handle on one device. Its methods may be called from any
// goroutine; the CUDA backend makes its context current around each call
// (SPEC.md A6).
//
// Memory: device addresses returned by AllocDevice must not be dereferenced
// by host code. Pinned host memory returned by AllocPinned is host memory
// outside the Go heap that the device can read asynchronously; it stays
// valid until FreePinned.
type GPU interface {
	// AllocDevice allocates n bytes of device memory. Failure for lack of
	// memory wraps [ErrOutOfMemory].
	AllocDevice(n int64) (uintptr, error)
	// FreeDevice frees an allocation of AllocDevice.
	FreeDevice(addr uintptr) error
	// AllocPinned allocates n bytes of page-locked host memory.
	AllocPinned(n int64) ([]byte, error)
	// FreePinned frees memory returned by AllocPinned.
	FreePinned(b []byte) error
	// NewStream creates a stream: an in-order queue of asynchronous work.
	NewStream() (Stream, error)
	// NewEvent creates an event (a CUevent for CUDA). Its handle is what
	// the C side finds behind a batch's sync_event pointer.
	NewEvent() (uintptr, error)
	// DestroyEvent destroys an event of NewEvent.
	DestroyEvent(ev uintptr) error
	// SyncEvent blocks until the work recorded before ev is complete and
	// returns that work's error, if any.
	SyncEvent(ev uintptr) error
	// Err is the sticky error that poisoned the device (wrapping
	// [ErrPoisoned]), or nil while it is healthy.
	Err() error
	// Close releases the handle.
	Close() error
}

// Stream is an in-order queue of asynchronous work on one [GPU]. It is used
// by one goroutine at a time (the mover's producer goroutine), except
// Close, which the owner calls once after the last use.
type Stream interface {
	// CopyHtoDAsync enqueues a copy of src, which must be pinned memory of
	// the same GPU, to the device address dst. src must stay untouched
	// until an event recorded after the copy is reached.
	CopyHtoDAsync(dst uintptr, src []byte) error
	// RecordEvent enqueues ev: it is reached when all work enqueued before
	// it is complete.
	RecordEvent(ev uintptr) error
	// Synchronize waits for all enqueued work.
	Synchronize() error
	// Close waits for enqueued work and destroys the stream.
	Close() error
}
