package async_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/volleyhq/volley/async"
)

func TestCodeOf(t *testing.T) {
	cases := []struct {
		err  error
		want async.Errno
	}{
		{nil, 0},
		{context.Canceled, async.ECANCELED},
		{fmt.Errorf("query: %w", context.Canceled), async.ECANCELED},
		{context.DeadlineExceeded, async.ETIMEDOUT},
		{os.ErrDeadlineExceeded, async.ETIMEDOUT},
		{async.ErrInvalid, async.EINVAL},
		{fmt.Errorf("%w: bad", arrow.ErrInvalid), async.EINVAL},
		{arrow.ErrType, async.EINVAL},
		{errors.ErrUnsupported, async.ENOTSUP},
		{arrow.ErrNotImplemented, async.ENOTSUP},
		{async.ErrOutOfMemory, async.ENOMEM},
		{async.ErrProtocol, async.EPROTO},
		{syscall.ECONNRESET, async.ECONNRESET},
		{fmt.Errorf("read: %w", syscall.ECONNREFUSED), async.ECONNREFUSED},
		{&net.OpError{Op: "dial", Err: errors.New("x")}, async.EIO},
		{io.ErrUnexpectedEOF, async.EIO},
		{errors.New("anything"), async.EIO},
		{async.NewError(async.EPIPE, "p", arrow.Metadata{}), async.EPIPE},
		{fmt.Errorf("wrapped: %w", async.NewError(async.EBUSY, "b", arrow.Metadata{})), async.EBUSY},
	}
	for _, c := range cases {
		if got := async.CodeOf(c.err); got != c.want {
			t.Errorf("CodeOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestErrorIsSentinel: an *Error that came across the C boundary (no Go
// cause) still matches the sentinel its code stands for.
func TestErrorIsSentinel(t *testing.T) {
	cases := []struct {
		code async.Errno
		want error
	}{
		{async.ECANCELED, context.Canceled},
		{async.ETIMEDOUT, context.DeadlineExceeded},
		{async.EINVAL, async.ErrInvalid},
		{async.ENOTSUP, errors.ErrUnsupported},
		{async.ENOSYS, errors.ErrUnsupported},
		{async.ENOMEM, async.ErrOutOfMemory},
		{async.EPROTO, async.ErrProtocol},
	}
	for _, c := range cases {
		e := async.NewError(c.code, "from C", arrow.Metadata{})
		if !errors.Is(e, c.want) {
			t.Errorf("errors.Is(%v, %v) = false", e, c.want)
		}
		if async.CodeOf(c.want) != c.code && c.code != async.ENOSYS {
			t.Errorf("CodeOf(%v) = %v, want %v (both ways)", c.want, async.CodeOf(c.want), c.code)
		}
	}
	if errors.Is(async.NewError(async.EIO, "", arrow.Metadata{}), context.Canceled) {
		t.Error("EIO matches context.Canceled")
	}
}

func TestAsErrorAndErrorf(t *testing.T) {
	if async.AsError(nil) != nil {
		t.Fatal("AsError(nil) != nil")
	}
	cause := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	e := async.AsError(cause)
	if e.Code != async.ECONNREFUSED || !errors.Is(e, syscall.ECONNREFUSED) || e.Message != cause.Error() {
		t.Errorf("AsError(%v) = %+v", cause, e)
	}
	orig := async.NewError(async.EPIPE, "pipe", arrow.NewMetadata([]string{"k"}, []string{"v\x00"}))
	if got := async.AsError(fmt.Errorf("ctx: %w", orig)); got != orig {
		t.Errorf("AsError did not find the *Error in the chain: %v", got)
	}
	var target *async.Error
	if !errors.As(fmt.Errorf("outer: %w", orig), &target) || target.Metadata.Values()[0] != "v\x00" {
		t.Errorf("errors.As lost the metadata: %+v", target)
	}
	w := async.Errorf(async.EIO, "reading: %w", io.ErrUnexpectedEOF)
	if !errors.Is(w, io.ErrUnexpectedEOF) || w.Error() != "EIO: reading: unexpected EOF" {
		t.Errorf("Errorf: %v (%v)", w, errors.Unwrap(w))
	}
	if async.Errorf(async.EIO, "plain").Err != nil {
		t.Error("Errorf without %w has a cause")
	}
	if s := async.Errno(9999).String(); s != "errno(9999)" {
		t.Errorf("unknown errno string %q", s)
	}
	if s := async.NewError(async.EAGAIN, "", arrow.Metadata{}).Error(); s != "EAGAIN" {
		t.Errorf("empty message error string %q", s)
	}
}
