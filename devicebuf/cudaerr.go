package devicebuf

import (
	"errors"
	"fmt"
)

// CUDA driver result codes Volley treats specially.
const (
	cudaSuccess           = 0
	cudaErrInvalidValue   = 1
	cudaErrOutOfMemory    = 2
	cudaErrNoDevice       = 100
	cudaErrIllegalAddress = 700
	cudaErrLaunchFailed   = 719
)

var cudaErrNames = map[int]string{
	cudaErrInvalidValue:   "CUDA_ERROR_INVALID_VALUE",
	cudaErrOutOfMemory:    "CUDA_ERROR_OUT_OF_MEMORY",
	cudaErrNoDevice:       "CUDA_ERROR_NO_DEVICE",
	cudaErrIllegalAddress: "CUDA_ERROR_ILLEGAL_ADDRESS",
	cudaErrLaunchFailed:   "CUDA_ERROR_LAUNCH_FAILED",
}

// CUDAError is a failed CUDA driver call (or the simulated backend's
// stand-in for one). It matches [ErrOutOfMemory] for
// CUDA_ERROR_OUT_OF_MEMORY; use errors.As to read the code.
type CUDAError struct {
	// Func is the driver function that failed ("cuInit").
	Func string
	// Code is the CUresult.
	Code int
	// Name is the code's name as cuGetErrorName gives it.
	Name string
}

// Error returns "FUNC: NAME (CODE)".
func (e *CUDAError) Error() string {
	name := e.Name
	if name == "" {
		name = "CUDA error"
	}
	return fmt.Sprintf("%s: %s (%d)", e.Func, name, e.Code)
}

// Unwrap returns [ErrOutOfMemory] for CUDA_ERROR_OUT_OF_MEMORY and
// [ErrPoisoned] for sticky codes, so that errors.Is finds them.
func (e *CUDAError) Unwrap() error {
	switch {
	case e.Code == cudaErrOutOfMemory:
		return ErrOutOfMemory
	case Sticky(e.Code):
		return ErrPoisoned
	}
	return nil
}

// Sticky reports whether a CUresult leaves the context unusable, so that
// every later call fails too (CUDA_ERROR_ILLEGAL_ADDRESS, LAUNCH_FAILED and
// the other errors the driver documents as persistent).
func Sticky(code int) bool {
	switch code {
	case 700, 702, 714, 715, 716, 717, 718, 719:
		return true
	}
	return false
}

// poisonError is the sticky error a device keeps after a sticky failure.
type poisonError struct{ cause error }

func (e *poisonError) Error() string        { return "poisoned: " + e.cause.Error() }
func (e *poisonError) Unwrap() error        { return e.cause }
func (e *poisonError) Is(target error) bool { return target == ErrPoisoned || target == ErrUnavailable }

// poisoned wraps a sticky error as the device's poison.
func poisoned(cause error) error {
	var p *poisonError
	if errors.As(cause, &p) {
		return p
	}
	return &poisonError{cause: cause}
}
