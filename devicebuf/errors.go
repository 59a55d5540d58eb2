package devicebuf

import (
	"errors"
	"fmt"

	"github.com/volleyhq/volley/async"
)

// Sentinel errors of the package; match them with errors.Is.
var (
	// ErrUnknownDevice reports a device the inventory does not list.
	ErrUnknownDevice = fmt.Errorf("devicebuf: unknown device: %w", async.ErrInvalid)
	// ErrUnavailable reports a device that exists but cannot be used now
	// (driver missing, initialisation failed, poisoned); the message says
	// why.
	ErrUnavailable = errors.New("devicebuf: device unavailable")
	// ErrOutOfMemory reports device or pinned memory that could not be
	// allocated. It matches [async.ErrOutOfMemory] too.
	ErrOutOfMemory = fmt.Errorf("devicebuf: out of memory: %w", async.ErrOutOfMemory)
	// ErrCopyFailed reports an asynchronous copy to the device that failed.
	ErrCopyFailed = errors.New("devicebuf: copy to device failed")
	// ErrPoisoned reports a device made unusable by a sticky error (such as
	// CUDA_ERROR_ILLEGAL_ADDRESS): every later use fails.
	ErrPoisoned = errors.New("devicebuf: device poisoned")
	// ErrClosed reports a use of a closed Manager or Mover.
	ErrClosed = errors.New("devicebuf: closed")
	// ErrNotSynchronized reports a simulated device read of memory whose
	// pending copies have not been waited for.
	ErrNotSynchronized = errors.New("devicebuf: device memory read before its copy was waited for")
)
