package cabi

/*
#include "bridge.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/cgo"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/volleyhq/volley/async"
)

// The functions in this file implement the C API of include/volley/volley.h
// for the c-shared library (async/cabi/lib), whose //export functions are a
// few lines each that call them. Opaque C handles (volley_db*,
// volley_query*, volley_collector*) are small C allocations holding a
// cgo.Handle; failures set the calling thread's last error and return an
// errno code.

// SetLastError records err's message as the calling thread's last error
// (volley_last_error) and returns its errno code; nil clears nothing and
// returns 0.
func SetLastError(err error) int {
	if err == nil {
		return 0
	}
	msg := C.CString(err.Error())
	C.vl_set_last_error(msg)
	C.free(unsafe.Pointer(msg))
	return int(errnoOf(err))
}

// LastError returns the calling thread's last error message as C memory
// the library owns.
func LastError() unsafe.Pointer { return unsafe.Pointer(C.vl_last_error()) }

// CString returns a malloc'd, NUL-terminated copy of s (for strings the C
// API hands to the caller, who frees them with volley_free).
func CString(s string) unsafe.Pointer { return unsafe.Pointer(C.CString(s)) }

// LastErrorString returns the calling thread's last error message as a Go
// string (the goroutine must stay on one thread between the failing call
// and this one for the answer to be meaningful: use it from C-called code
// or with runtime.LockOSThread).
func LastErrorString() string { return C.GoString(C.vl_last_error()) }

// Free frees C memory the C API handed out (volley_free).
func Free(p unsafe.Pointer) { C.free(p) }

// Box returns C memory holding a cgo.Handle to v, for an opaque C handle;
// nil when out of memory. [FreeBox] frees both.
func Box(v any) unsafe.Pointer {
	h := cgo.NewHandle(v)
	b := C.vl_box_new(C.uintptr_t(h))
	if b == nil {
		h.Delete()
	}
	return b
}

// Unbox returns the value a [Box] holds, if it is a T.
func Unbox[T any](b unsafe.Pointer) (T, bool) {
	var zero T
	h := C.vl_box_get(b)
	if h == 0 {
		return zero, false
	}
	v, ok := cgo.Handle(h).Value().(T)
	return v, ok
}

// FreeBox deletes the handle and frees the box; nil is ignored.
func FreeBox(b unsafe.Pointer) {
	if h := C.vl_box_get(b); h != 0 {
		cgo.Handle(h).Delete()
	}
	C.vl_box_free(b)
}

// CollectorOptions are volley_collector_options in Go.
type CollectorOptions struct {
	Window       int
	CancelAfter  int64
	AcceptDevice async.DeviceType
}

// CollectResult is volley_collect_result in Go.
type CollectResult struct {
	Batches, Rows, Sum, DeviceBatches int64
	ErrorCode                         int32
	ErrorMetadataBytes                int64
	MetadataPairs                     int64
}

// Collector is the Go consumer behind volley_collector: an async.Reader
// read to its end by a goroutine the collector owns (Wait waits for it).
type Collector struct {
	r    *async.Reader
	opts CollectorOptions
	done chan struct{}
	res  CollectResult
	once sync.Once
}

// NewCollector returns a collector and the C handler (from [Import]) to
// give to a C producer.
func NewCollector(o CollectorOptions) (*Collector, *CHandler) {
	accept := []async.DeviceType{async.DeviceCPU}
	if o.AcceptDevice != 0 && o.AcceptDevice != async.DeviceCPU {
		accept = append(accept, o.AcceptDevice)
	}
	c := &Collector{r: async.NewReader(async.ReaderOptions{Window: max(o.Window, 0), Accept: accept}),
		opts: o, done: make(chan struct{})}
	return c, Import(c.r)
}

func (c *Collector) run() {
	defer close(c.done)
	ctx := context.Background()
	var err error
	for {
		var b *async.DeviceBatch
		b, err = c.r.Next(ctx)
		if err != nil {
			break
		}
		c.res.Batches++
		c.res.Rows += b.NumRows
		if b.Record != nil && b.Record.NumCols() > 0 {
			if col, ok := b.Record.Column(0).(*array.Int64); ok {
				for _, v := range col.Int64Values() {
					c.res.Sum += v
				}
			}
		} else if b.Device.Type != async.DeviceCPU {
			c.res.DeviceBatches++
		}
		b.Release()
		if c.opts.CancelAfter > 0 && c.res.Batches == c.opts.CancelAfter {
			c.r.Close() // cancels the stream and discards what is queued
		}
	}
	if !errors.Is(err, io.EOF) {
		e := async.AsError(err)
		c.res.ErrorCode = int32(errnoOf(err))
		c.res.ErrorMetadataBytes = int64(async.EncodedMetadataLen(e.Metadata))
	}
	<-c.r.Done()
	c.res.MetadataPairs = int64(c.r.AdditionalMetadata().Len())
	c.r.Close()
}

// Start starts the collector's reading goroutine (once).
func (c *Collector) Start() { c.once.Do(func() { go c.run() }) }

// Wait waits until the stream was released and read to its end.
func (c *Collector) Wait() CollectResult {
	c.Start()
	<-c.done
	return c.res
}

// ErrNilHandle reports a NULL or foreign opaque handle passed to the C API;
// use errors.Is. It wraps async.ErrInvalid.
var ErrNilHandle = fmt.Errorf("%w: cabi: NULL or foreign handle", async.ErrInvalid)

// LibCollectorNew implements volley_collector_new.
func LibCollectorNew(o CollectorOptions) (unsafe.Pointer, unsafe.Pointer, int) {
	c, h := NewCollector(o)
	b := Box(c)
	if b == nil {
		ReleaseUnused(h, async.ErrOutOfMemory)
		return nil, nil, SetLastError(async.ErrOutOfMemory)
	}
	c.Start()
	return b, unsafe.Pointer(h), 0
}

// LibCollectorWait implements volley_collector_wait.
func LibCollectorWait(b unsafe.Pointer) (CollectResult, int) {
	c, ok := Unbox[*Collector](b)
	if !ok {
		return CollectResult{}, SetLastError(ErrNilHandle)
	}
	return c.Wait(), 0
}

// LibCollectorFree implements volley_collector_free.
func LibCollectorFree(b unsafe.Pointer) {
	if b != nil {
		FreeBox(b)
	}
}

// LibProduceDemo implements volley_produce_demo.
func LibProduceDemo(batches, rows int64, h unsafe.Pointer) int {
	return SetLastError(ProduceDemo(context.Background(), batches, rows, HandlerFromPtr(h)))
}
