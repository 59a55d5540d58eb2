package async

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/apache/arrow-go/v18/arrow"
)

// Sentinel errors of the package. Match them with errors.Is; an [*Error]
// carrying the matching code matches them too, also when it crossed the C
// boundary and has no Go cause.
var (
	// ErrInvalid reports invalid input or a call that breaks the contract
	// (EINVAL).
	ErrInvalid = errors.New("async: invalid argument")
	// ErrProtocol reports a peer that broke a rule of the protocol (EPROTO).
	ErrProtocol = errors.New("async: protocol violation")
	// ErrOutOfMemory reports an allocation that could not be satisfied
	// (ENOMEM).
	ErrOutOfMemory = errors.New("async: out of memory")
	// ErrRefused reports that the consumer refused the schema or a task by
	// returning non-zero from OnSchema or OnNextTask (SPEC.md S4, N7). The
	// producer ends such a stream with Release only.
	ErrRefused = errors.New("async: consumer refused the stream")
	// ErrReleased reports a use of a stream, task or batch after its release.
	ErrReleased = errors.New("async: already released")
)

// Errno is an errno-compatible error code, as the protocol carries in
// on_error and in non-zero returns (SPEC.md E4). The values are Linux's.
type Errno int32

// The codes Volley produces and maps. Codes not listed here are carried as
// they are.
const (
	EPERM        Errno = 1
	ENOENT       Errno = 2
	EIO          Errno = 5
	EAGAIN       Errno = 11
	ENOMEM       Errno = 12
	EBUSY        Errno = 16
	EINVAL       Errno = 22
	EPIPE        Errno = 32
	ENOSYS       Errno = 38
	EPROTO       Errno = 71
	EOVERFLOW    Errno = 75
	ENOTSUP      Errno = 95
	ECONNRESET   Errno = 104
	ETIMEDOUT    Errno = 110
	ECONNREFUSED Errno = 111
	ECANCELED    Errno = 125
)

var errnoNames = map[Errno]string{
	EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM",
	EBUSY: "EBUSY", EINVAL: "EINVAL", EPIPE: "EPIPE", ENOSYS: "ENOSYS", EPROTO: "EPROTO",
	EOVERFLOW: "EOVERFLOW", ENOTSUP: "ENOTSUP", ECONNRESET: "ECONNRESET",
	ETIMEDOUT: "ETIMEDOUT", ECONNREFUSED: "ECONNREFUSED", ECANCELED: "ECANCELED",
}

// String returns the symbolic name ("EINVAL") or "errno(N)".
func (e Errno) String() string {
	if s, ok := errnoNames[e]; ok {
		return s
	}
	return "errno(" + strconv.Itoa(int(e)) + ")"
}

// sentinel returns the Go error a code stands for, if any.
func (e Errno) sentinel() error {
	switch e {
	case ECANCELED:
		return context.Canceled
	case ETIMEDOUT:
		return context.DeadlineExceeded
	case EINVAL:
		return ErrInvalid
	case ENOTSUP, ENOSYS:
		return errors.ErrUnsupported
	case ENOMEM:
		return ErrOutOfMemory
	case EPROTO:
		return ErrProtocol
	}
	return nil
}

// Error is a stream error as the protocol carries it: an errno-compatible
// code, a message and optional metadata (SPEC.md E1–E4). Err, when set, is the
// Go error it was made from (nil when it came across the C boundary);
// errors.Is and errors.As see through it, and errors.Is also matches the
// sentinel that Code stands for (ECANCELED matches context.Canceled, EINVAL
// [ErrInvalid], ENOTSUP errors.ErrUnsupported, ...).
//
// An Error is immutable once made and may be shared between goroutines.
type Error struct {
	Code     Errno
	Message  string
	Metadata arrow.Metadata
	Err      error
}

// Error returns the message, prefixed with the code's name.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Message
}

// Unwrap returns the Go cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel that e's code stands for.
func (e *Error) Is(target error) bool {
	s := e.Code.sentinel()
	return s != nil && s == target
}

// NewError returns an Error with the given code and message.
func NewError(code Errno, message string, md arrow.Metadata) *Error {
	return &Error{Code: code, Message: message, Metadata: md}
}

// Errorf returns an Error with the given code and a formatted message; %w
// verbs wrap their operands as with fmt.Errorf.
func Errorf(code Errno, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	var cause error
	if errors.Unwrap(err) != nil {
		cause = err
	}
	return &Error{Code: code, Message: err.Error(), Err: cause}
}

// AsError returns err as an [*Error]: err itself (or the first *Error in
// its chain) when it is one, else a new Error with the code [CodeOf] gives,
// err's text as message and err as cause. AsError(nil) is nil.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeOf(err), Message: err.Error(), Err: err}
}

// CodeOf maps a Go error to its errno code: an [*Error]'s own code;
// context.Canceled → ECANCELED; context.DeadlineExceeded → ETIMEDOUT;
// [ErrInvalid] and arrow's invalid/type/index errors → EINVAL;
// errors.ErrUnsupported and arrow.ErrNotImplemented → ENOTSUP;
// [ErrOutOfMemory] → ENOMEM; [ErrProtocol] → EPROTO; a syscall.Errno → itself;
// I/O, network and anything else → EIO. CodeOf(nil) is 0.
func CodeOf(err error) Errno {
	var e *Error
	var sys syscall.Errno
	var netErr net.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, context.Canceled):
		return ECANCELED
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return ETIMEDOUT
	case errors.Is(err, ErrInvalid), errors.Is(err, arrow.ErrInvalid),
		errors.Is(err, arrow.ErrType), errors.Is(err, arrow.ErrIndex):
		return EINVAL
	case errors.Is(err, errors.ErrUnsupported), errors.Is(err, arrow.ErrNotImplemented):
		return ENOTSUP
	case errors.Is(err, ErrOutOfMemory):
		return ENOMEM
	case errors.Is(err, ErrProtocol):
		return EPROTO
	case errors.As(err, &sys) && sys != 0:
		return Errno(sys)
	case errors.As(err, &netErr), errors.Is(err, io.ErrUnexpectedEOF):
		return EIO
	}
	return EIO
}
