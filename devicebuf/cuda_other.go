//go:build !linux

package devicebuf

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

// CUDA is the CUDA driver API backend; on this platform it reports itself
// unusable.
type CUDA struct{ opts CUDAOptions }

// NewCUDA returns the CUDA backend.
func NewCUDA(opts CUDAOptions) *CUDA { return &CUDA{opts: opts} }

var errNoCUDA = errors.New("the CUDA backend supports linux only, not " + runtime.GOOS)

// Name returns "cuda".
func (c *CUDA) Name() string { return "cuda" }

// Probe fails: no CUDA backend on this platform.
func (c *CUDA) Probe(ctx context.Context) ([]GPUInfo, error) { return nil, errNoCUDA }

// Open fails: no CUDA backend on this platform.
func (c *CUDA) Open(ctx context.Context, ordinal int) (GPU, error) {
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, errNoCUDA)
}

// Close does nothing.
func (c *CUDA) Close() error { return nil }

// LibraryPath returns "".
func (c *CUDA) LibraryPath() string { return "" }

// DriverVersion returns 0.
func (c *CUDA) DriverVersion() int { return 0 }

// CopyToHost fails: no CUDA backend on this platform.
func (c *CUDA) CopyToHost(ordinal int, dst []byte, src uintptr) error { return errNoCUDA }

// MemoryType fails: no CUDA backend on this platform.
func (c *CUDA) MemoryType(ordinal int, addr uintptr) (int, error) { return 0, errNoCUDA }

// RawCopyBandwidth fails: no CUDA backend on this platform.
func (c *CUDA) RawCopyBandwidth(ordinal int, size int64, iters int) (float64, error) {
	return 0, errNoCUDA
}

// WaitSyncEvent fails: no CUDA backend on this platform.
func (c *CUDA) WaitSyncEvent(ordinal int, syncEvent unsafe.Pointer) error { return errNoCUDA }
