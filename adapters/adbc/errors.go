package adbc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	goadbc "github.com/apache/arrow-adbc/go/adbc"
	"github.com/apache/arrow-go/v18/arrow"

	"github.com/volleyhq/volley/async"
)

// Sentinel errors of the package; use errors.Is.
var (
	// ErrDriverPanic reports that a driver call panicked; the panic was
	// recovered and the connection is no longer used.
	ErrDriverPanic = errors.New("adbc: driver panicked")
	// ErrSchemaMismatch reports a result whose batches do not match the
	// schema the statement described.
	ErrSchemaMismatch = errors.New("adbc: result does not match the described schema")
	// ErrClosed reports use of a closed connection or connector.
	ErrClosed = errors.New("adbc: closed")
)

// Metadata keys of the errors made from ADBC errors.
const (
	MetaStatus     = "adbc.status"
	MetaSQLState   = "adbc.sqlstate"
	MetaVendorCode = "adbc.vendor_code"
)

// eexist is EEXIST, which package async does not name.
const eexist async.Errno = 17

// StatusErrno maps an ADBC status to an errno code.
func StatusErrno(s goadbc.Status) async.Errno {
	switch s {
	case goadbc.StatusOK:
		return 0
	case goadbc.StatusNotImplemented:
		return async.ENOTSUP
	case goadbc.StatusNotFound:
		return async.ENOENT
	case goadbc.StatusAlreadyExists:
		return eexist
	case goadbc.StatusInvalidArgument, goadbc.StatusInvalidState, goadbc.StatusInvalidData:
		return async.EINVAL
	case goadbc.StatusIntegrity:
		return async.EINVAL
	case goadbc.StatusInternal:
		return async.EPROTO
	case goadbc.StatusIO:
		return async.EIO
	case goadbc.StatusCancelled:
		return async.ECANCELED
	case goadbc.StatusTimeout:
		return async.ETIMEDOUT
	case goadbc.StatusUnauthenticated, goadbc.StatusUnauthorized:
		return async.EPERM
	}
	return async.EIO
}

// adbcError returns err's ADBC error, whether the chain holds it as a value
// or as a pointer.
func adbcError(err error) (goadbc.Error, bool) {
	var v goadbc.Error
	if errors.As(err, &v) {
		return v, true
	}
	var p *goadbc.Error
	if errors.As(err, &p) && p != nil {
		return *p, true
	}
	return goadbc.Error{}, false
}

// MapError turns an error from an ADBC driver into an *async.Error: for an
// adbc.Error (value or pointer, anywhere in the chain) the code comes from
// its status ([StatusErrno]) and the metadata carries the status name,
// SQLSTATE and vendor code; other errors keep async.CodeOf's code. op
// prefixes the message. The Go cause stays reachable with errors.As (the
// adbc.Error is normalised to a value). Secret values of cfg (nil: none)
// are scrubbed from the message. MapError(nil) is nil; an *async.Error is
// returned as it is.
func MapError(op string, err error, cfg *Config) error {
	if err == nil {
		return nil
	}
	var ae *async.Error
	if errors.As(err, &ae) {
		return err
	}
	var secrets []string
	if cfg != nil {
		secrets = cfg.secrets()
	}
	e, ok := adbcError(err)
	if !ok {
		return &async.Error{Code: async.CodeOf(err), Message: scrub(op+": "+err.Error(), secrets), Err: err}
	}
	md := map[string]string{MetaStatus: e.Code.String()}
	if e.SqlState != [5]byte{} {
		md[MetaSQLState] = strings.TrimRight(string(e.SqlState[:]), "\x00")
	}
	if e.VendorCode != 0 {
		md[MetaVendorCode] = strconv.FormatInt(int64(e.VendorCode), 10)
	}
	msg := e.Msg
	if msg == "" {
		msg = e.Code.String()
	}
	if st, ok := md[MetaSQLState]; ok {
		msg += " (SQLSTATE " + st + ")"
	}
	return &async.Error{Code: StatusErrno(e.Code), Message: scrub(op+": "+msg, secrets),
		Metadata: arrow.MetadataFrom(md), Err: e}
}

// scrub replaces every secret in s.
func scrub(s string, secrets []string) string {
	for _, v := range secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, redacted)
		}
	}
	return s
}

// isNotImplemented reports an ADBC NotImplemented error.
func isNotImplemented(err error) bool {
	e, ok := adbcError(err)
	return ok && e.Code == goadbc.StatusNotImplemented
}

// protect runs a driver call, turning a panic into an error wrapping
// ErrDriverPanic.
func protect(op string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &async.Error{Code: async.EIO,
				Message: fmt.Sprintf("adbc: %s: driver panicked: %v", op, r), Err: ErrDriverPanic}
		}
	}()
	return fn()
}

// ctxError returns an error wrapping ctx's cause when ctx has ended, joined
// with what the driver reported, else nil.
func ctxError(ctx context.Context, op string, driverErr error, cfg *Config) error {
	if ctx.Err() == nil {
		return nil
	}
	cause := context.Cause(ctx)
	if driverErr == nil {
		return fmt.Errorf("adbc: %s: %w", op, cause)
	}
	return fmt.Errorf("adbc: %s: %w (driver: %s)", op, cause, scrub(driverErr.Error(), cfgSecrets(cfg)))
}

func cfgSecrets(cfg *Config) []string {
	if cfg == nil {
		return nil
	}
	return cfg.secrets()
}

// isPanic reports an error made from a recovered driver panic.
func isPanic(err error) bool { return errors.Is(err, ErrDriverPanic) }
