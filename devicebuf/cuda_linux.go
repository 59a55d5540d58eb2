//go:build linux

package devicebuf

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
)

// CUDA is the CUDA driver API backend. It loads libcuda.so.1 at run time
// through purego (no cgo), initialises it on the first Probe and retains
// each device's primary context once, until Close. Every driver call runs
// on a locked OS thread with the device's context pushed and popped around
// it (SPEC.md A6), so callers may use it from any goroutine, including the
// consumers' goroutines that release batches.
type CUDA struct {
	opts CUDAOptions

	once    sync.Once
	initErr error
	path    string
	api     cudaAPI
	version int
	devs    []*cudaDev

	closeOnce sync.Once
	closed    atomic.Bool
}

type cudaAPI struct {
	cuInit                    func(flags uint32) int32
	cuGetErrorName            func(code int32, name *unsafe.Pointer) int32
	cuDriverGetVersion        func(v *int32) int32
	cuDeviceGetCount          func(n *int32) int32
	cuDeviceGet               func(dev *int32, ordinal int32) int32
	cuDeviceGetName           func(name *byte, n int32, dev int32) int32
	cuDeviceTotalMem          func(bytes *uintptr, dev int32) int32
	cuDeviceGetAttribute      func(v *int32, attr int32, dev int32) int32
	cuDevicePrimaryCtxRetain  func(ctx *uintptr, dev int32) int32
	cuDevicePrimaryCtxRelease func(dev int32) int32
	cuCtxPushCurrent          func(ctx uintptr) int32
	cuCtxPopCurrent           func(ctx *uintptr) int32
	cuMemGetInfo              func(free, total *uintptr) int32
	cuMemAlloc                func(dptr *uint64, n uintptr) int32
	cuMemFree                 func(dptr uint64) int32
	cuMemHostAlloc            func(p *unsafe.Pointer, n uintptr, flags uint32) int32
	cuMemFreeHost             func(p unsafe.Pointer) int32
	cuMemcpyHtoDAsync         func(dst uint64, src unsafe.Pointer, n uintptr, stream uintptr) int32
	cuMemcpyDtoH              func(dst unsafe.Pointer, src uint64, n uintptr) int32
	cuStreamCreate            func(s *uintptr, flags uint32) int32
	cuStreamDestroy           func(s uintptr) int32
	cuEventCreate             func(ev *uintptr, flags uint32) int32
	cuEventRecord             func(ev, stream uintptr) int32
	cuEventSynchronize        func(ev uintptr) int32
	cuEventDestroy            func(ev uintptr) int32
	cuPointerGetAttribute     func(data unsafe.Pointer, attr int32, ptr uint64) int32
}

// Driver constants.
const (
	cuAttrAsyncEngineCount  = 40
	cuAttrUnifiedAddressing = 41
	cuPointerAttrMemoryType = 2
	cuMemHostAllocPortable  = 1
	cuStreamNonBlocking     = 1
	cuEventDisableTiming    = 2
)

type cudaDev struct {
	c       *CUDA
	ordinal int
	dev     int32
	ctx     uintptr
	name    string
	total   int64
	unified bool
	engines int
	err     error // from initialisation
	poison  atomic.Pointer[error]
}

// NewCUDA returns the CUDA backend. Nothing is loaded until the first
// Probe or Open.
func NewCUDA(opts CUDAOptions) *CUDA { return &CUDA{opts: opts} }

// Name returns "cuda".
func (c *CUDA) Name() string { return "cuda" }

// LibraryPath is the library that was loaded ("" before the first Probe or
// when none could be).
func (c *CUDA) LibraryPath() string { return c.path }

// DriverVersion is the driver's CUDA version (12040 for 12.4) after a
// successful Probe.
func (c *CUDA) DriverVersion() int { return c.version }

func (c *CUDA) candidates() []string {
	if c.opts.LibraryPath != "" {
		return []string{c.opts.LibraryPath}
	}
	out := []string{"libcuda.so.1"}
	for _, d := range cudaSearchDirs {
		out = append(out, filepath.Join(d, "libcuda.so.1"))
	}
	return out
}

func (c *CUDA) init() error {
	c.once.Do(func() { c.initErr = c.load() })
	if c.initErr != nil {
		return c.initErr
	}
	if c.closed.Load() {
		return fmt.Errorf("cuda: %w", ErrClosed)
	}
	return nil
}

func (c *CUDA) load() error {
	var lib uintptr
	var tried []string
	for _, p := range c.candidates() {
		if strings.Contains(p, "/stubs/") {
			tried = append(tried, p+": a CUDA toolkit stub, not a driver")
			continue
		}
		h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			tried = append(tried, err.Error())
			continue
		}
		lib, c.path = h, p
		break
	}
	if lib == 0 {
		return fmt.Errorf("libcuda.so.1 not found: %s", strings.Join(tried, "; "))
	}
	sym := func(fptr any, names ...string) error {
		for _, n := range names {
			if addr, err := purego.Dlsym(lib, n); err == nil && addr != 0 {
				purego.RegisterFunc(fptr, addr)
				return nil
			}
		}
		return fmt.Errorf("%s lacks %s: not a CUDA driver", c.path, names[0])
	}
	a := &c.api
	if err := errors.Join(sym(&a.cuInit, "cuInit"), sym(&a.cuGetErrorName, "cuGetErrorName")); err != nil {
		return err
	}
	if r := a.cuInit(0); r != 0 {
		return c.errOf("cuInit", r)
	}
	if err := errors.Join(
		sym(&a.cuDriverGetVersion, "cuDriverGetVersion"),
		sym(&a.cuDeviceGetCount, "cuDeviceGetCount"),
		sym(&a.cuDeviceGet, "cuDeviceGet"),
		sym(&a.cuDeviceGetName, "cuDeviceGetName"),
		sym(&a.cuDeviceTotalMem, "cuDeviceTotalMem_v2"),
		sym(&a.cuDeviceGetAttribute, "cuDeviceGetAttribute"),
		sym(&a.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
		sym(&a.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"),
		sym(&a.cuCtxPushCurrent, "cuCtxPushCurrent_v2"),
		sym(&a.cuCtxPopCurrent, "cuCtxPopCurrent_v2"),
		sym(&a.cuMemGetInfo, "cuMemGetInfo_v2"),
		sym(&a.cuMemAlloc, "cuMemAlloc_v2"),
		sym(&a.cuMemFree, "cuMemFree_v2"),
		sym(&a.cuMemHostAlloc, "cuMemHostAlloc"),
		sym(&a.cuMemFreeHost, "cuMemFreeHost"),
		sym(&a.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
		sym(&a.cuMemcpyDtoH, "cuMemcpyDtoH_v2"),
		sym(&a.cuStreamCreate, "cuStreamCreate"),
		sym(&a.cuStreamDestroy, "cuStreamDestroy_v2"),
		sym(&a.cuEventCreate, "cuEventCreate"),
		sym(&a.cuEventRecord, "cuEventRecord"),
		sym(&a.cuEventSynchronize, "cuEventSynchronize"),
		sym(&a.cuEventDestroy, "cuEventDestroy_v2"),
		sym(&a.cuPointerGetAttribute, "cuPointerGetAttribute"),
	); err != nil {
		return err
	}
	var v, n int32
	if r := a.cuDriverGetVersion(&v); r != 0 {
		return c.errOf("cuDriverGetVersion", r)
	}
	c.version = int(v)
	if r := a.cuDeviceGetCount(&n); r != 0 {
		return c.errOf("cuDeviceGetCount", r)
	}
	if n == 0 {
		return &CUDAError{Func: "cuDeviceGetCount", Code: cudaErrNoDevice, Name: "CUDA_ERROR_NO_DEVICE"}
	}
	for i := range int(n) {
		c.devs = append(c.devs, c.openDev(i))
	}
	return nil
}

// openDev describes device i and retains its primary context.
func (c *CUDA) openDev(i int) *cudaDev {
	a := &c.api
	d := &cudaDev{c: c, ordinal: i, name: fmt.Sprintf("CUDA device %d", i)}
	if r := a.cuDeviceGet(&d.dev, int32(i)); r != 0 {
		d.err = c.errOf("cuDeviceGet", r)
		return d
	}
	var name [256]byte
	if r := a.cuDeviceGetName(&name[0], int32(len(name)), d.dev); r == 0 {
		if n := strings.IndexByte(string(name[:]), 0); n > 0 {
			d.name = string(name[:n])
		}
	}
	var total uintptr
	if r := a.cuDeviceTotalMem(&total, d.dev); r == 0 {
		d.total = int64(total)
	}
	var v int32
	if r := a.cuDeviceGetAttribute(&v, cuAttrUnifiedAddressing, d.dev); r == 0 {
		d.unified = v != 0
	}
	if r := a.cuDeviceGetAttribute(&v, cuAttrAsyncEngineCount, d.dev); r == 0 {
		d.engines = int(v)
	}
	if r := a.cuDevicePrimaryCtxRetain(&d.ctx, d.dev); r != 0 {
		d.err = c.errOf("cuDevicePrimaryCtxRetain", r)
	}
	return d
}

// errOf turns a CUresult into a *CUDAError named by cuGetErrorName.
func (c *CUDA) errOf(fn string, r int32) *CUDAError {
	e := &CUDAError{Func: fn, Code: int(r)}
	var p unsafe.Pointer
	if c.api.cuGetErrorName != nil && c.api.cuGetErrorName(r, &p) == 0 && p != nil {
		e.Name = cString(p)
	}
	if e.Name == "" {
		e.Name = cudaErrNames[int(r)]
	}
	return e
}

// cString copies a NUL-terminated C string of at most 256 bytes.
func cString(p unsafe.Pointer) string {
	b := unsafe.Slice((*byte)(p), 256)
	if n := strings.IndexByte(string(b), 0); n >= 0 {
		return string(b[:n])
	}
	return string(b)
}

// Probe loads and initialises the driver on the first call and describes
// the devices, with their current free memory.
func (c *CUDA) Probe(ctx context.Context) ([]GPUInfo, error) {
	if err := c.init(); err != nil {
		return nil, err
	}
	out := make([]GPUInfo, len(c.devs))
	for i, d := range c.devs {
		in := GPUInfo{Ordinal: i, Name: d.name, TotalBytes: d.total, UnifiedAddressing: d.unified, AsyncEngines: d.engines, Err: d.Err()}
		if in.Err == nil {
			var free, total uintptr
			if err := d.do("cuMemGetInfo_v2", func() int32 { return c.api.cuMemGetInfo(&free, &total) }); err != nil {
				in.Err = err
			} else {
				in.FreeBytes, in.TotalBytes = int64(free), int64(total)
			}
		}
		out[i] = in
	}
	return out, nil
}

// Open returns a handle on device ordinal.
func (c *CUDA) Open(ctx context.Context, ordinal int) (GPU, error) {
	if err := c.init(); err != nil {
		return nil, err
	}
	if ordinal < 0 || ordinal >= len(c.devs) {
		return nil, fmt.Errorf("%w: CUDA device %d of %d", ErrUnknownDevice, ordinal, len(c.devs))
	}
	d := c.devs[ordinal]
	if err := d.Err(); err != nil {
		return nil, err
	}
	return &cudaGPU{d: d}, nil
}

// Close releases the primary contexts. The library stays loaded (unloading
// a driver in a running process is not safe). Close is idempotent.
func (c *CUDA) Close() error {
	var errs []error
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if c.initErr != nil {
			return
		}
		for _, d := range c.devs {
			if d.ctx != 0 {
				if r := c.api.cuDevicePrimaryCtxRelease(d.dev); r != 0 {
					errs = append(errs, c.errOf("cuDevicePrimaryCtxRelease_v2", r))
				}
			}
		}
	})
	return errors.Join(errs...)
}

// Err is the device's initialisation error or sticky poison.
func (d *cudaDev) Err() error {
	if d.err != nil {
		return d.err
	}
	if p := d.poison.Load(); p != nil {
		return *p
	}
	return nil
}

// do runs f on a locked OS thread with the device's primary context
// current, and checks its result. A sticky result poisons the device.
func (d *cudaDev) do(fn string, f func() int32) error {
	if err := d.Err(); err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	a := &d.c.api
	if r := a.cuCtxPushCurrent(d.ctx); r != 0 {
		return d.check("cuCtxPushCurrent_v2", r)
	}
	r := f()
	var prev uintptr
	pr := a.cuCtxPopCurrent(&prev)
	if r == 0 && pr != 0 {
		return d.check("cuCtxPopCurrent_v2", pr)
	}
	return d.check(fn, r)
}

func (d *cudaDev) check(fn string, r int32) error {
	if r == 0 {
		return nil
	}
	e := d.c.errOf(fn, r)
	if Sticky(e.Code) {
		p := poisoned(e)
		d.poison.CompareAndSwap(nil, &p)
		return d.Err()
	}
	return e
}

// cudaGPU is an open CUDA device.
type cudaGPU struct{ d *cudaDev }

func (g *cudaGPU) Err() error   { return g.d.Err() }
func (g *cudaGPU) Close() error { return nil }

func (g *cudaGPU) AllocDevice(n int64) (uintptr, error) {
	var p uint64
	err := g.d.do("cuMemAlloc_v2", func() int32 { return g.d.c.api.cuMemAlloc(&p, uintptr(n)) })
	return uintptr(p), err
}

func (g *cudaGPU) FreeDevice(addr uintptr) error {
	return g.d.do("cuMemFree_v2", func() int32 { return g.d.c.api.cuMemFree(uint64(addr)) })
}

func (g *cudaGPU) AllocPinned(n int64) ([]byte, error) {
	var p unsafe.Pointer
	if err := g.d.do("cuMemHostAlloc", func() int32 { return g.d.c.api.cuMemHostAlloc(&p, uintptr(n), cuMemHostAllocPortable) }); err != nil {
		return nil, err
	}
	return unsafe.Slice((*byte)(p), n), nil
}

func (g *cudaGPU) FreePinned(b []byte) error {
	p := unsafe.Pointer(unsafe.SliceData(b))
	return g.d.do("cuMemFreeHost", func() int32 { return g.d.c.api.cuMemFreeHost(p) })
}

func (g *cudaGPU) NewEvent() (uintptr, error) {
	var ev uintptr
	err := g.d.do("cuEventCreate", func() int32 { return g.d.c.api.cuEventCreate(&ev, cuEventDisableTiming) })
	return ev, err
}

func (g *cudaGPU) DestroyEvent(ev uintptr) error {
	return g.d.do("cuEventDestroy_v2", func() int32 { return g.d.c.api.cuEventDestroy(ev) })
}

func (g *cudaGPU) SyncEvent(ev uintptr) error {
	return g.d.do("cuEventSynchronize", func() int32 { return g.d.c.api.cuEventSynchronize(ev) })
}

func (g *cudaGPU) NewStream() (Stream, error) {
	var s uintptr
	if err := g.d.do("cuStreamCreate", func() int32 { return g.d.c.api.cuStreamCreate(&s, cuStreamNonBlocking) }); err != nil {
		return nil, err
	}
	return &cudaStream{g: g, h: s}, nil
}

// cudaStream is a CUDA stream.
type cudaStream struct {
	g *cudaGPU
	h uintptr
}

func (s *cudaStream) CopyHtoDAsync(dst uintptr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	p := unsafe.Pointer(unsafe.SliceData(src))
	return s.g.d.do("cuMemcpyHtoDAsync_v2", func() int32 {
		return s.g.d.c.api.cuMemcpyHtoDAsync(uint64(dst), p, uintptr(len(src)), s.h)
	})
}

func (s *cudaStream) RecordEvent(ev uintptr) error {
	return s.g.d.do("cuEventRecord", func() int32 { return s.g.d.c.api.cuEventRecord(ev, s.h) })
}

// Synchronize records a temporary event and waits for it.
func (s *cudaStream) Synchronize() error {
	ev, err := s.g.NewEvent()
	if err != nil {
		return err
	}
	defer s.g.DestroyEvent(ev)
	if err := s.RecordEvent(ev); err != nil {
		return err
	}
	return s.g.SyncEvent(ev)
}

func (s *cudaStream) Close() error {
	err := s.Synchronize()
	return errors.Join(err, s.g.d.do("cuStreamDestroy_v2", func() int32 { return s.g.d.c.api.cuStreamDestroy(s.h) }))
}

// CopyToHost copies len(dst) bytes of device memory at src on device
// ordinal into dst, synchronously. For checks and tests.
func (c *CUDA) CopyToHost(ordinal int, dst []byte, src uintptr) error {
	d, err := c.dev(ordinal)
	if err != nil || len(dst) == 0 {
		return err
	}
	p := unsafe.Pointer(unsafe.SliceData(dst))
	err = d.do("cuMemcpyDtoH_v2", func() int32 { return c.api.cuMemcpyDtoH(p, uint64(src), uintptr(len(dst))) })
	runtime.KeepAlive(dst)
	return err
}

// WaitSyncEvent waits as a C consumer does on a batch's SyncEvent: it
// reads the CUevent the pointer points to and calls cuEventSynchronize on
// it. For checks and tests.
func (c *CUDA) WaitSyncEvent(ordinal int, syncEvent unsafe.Pointer) error {
	d, err := c.dev(ordinal)
	if err != nil {
		return err
	}
	if syncEvent == nil {
		return nil
	}
	ev := *(*uintptr)(syncEvent)
	return d.do("cuEventSynchronize", func() int32 { return c.api.cuEventSynchronize(ev) })
}

// MemoryType asks the driver what kind of memory addr is
// (CU_POINTER_ATTRIBUTE_MEMORY_TYPE): [CUDAMemoryDevice] for device memory.
func (c *CUDA) MemoryType(ordinal int, addr uintptr) (int, error) {
	d, err := c.dev(ordinal)
	if err != nil {
		return 0, err
	}
	var t uint32
	err = d.do("cuPointerGetAttribute", func() int32 {
		return c.api.cuPointerGetAttribute(unsafe.Pointer(&t), cuPointerAttrMemoryType, uint64(addr))
	})
	return int(t), err
}

// RawCopyBandwidth measures plain pinned host-to-device copies on device
// ordinal: iters copies of size bytes from one pinned buffer into one
// device buffer on one stream, waited for at the end. It returns bytes per
// second. For the GPU check's baseline.
func (c *CUDA) RawCopyBandwidth(ordinal int, size int64, iters int) (float64, error) {
	g, err := c.Open(context.Background(), ordinal)
	if err != nil {
		return 0, err
	}
	host, err := g.AllocPinned(size)
	if err != nil {
		return 0, err
	}
	defer g.FreePinned(host)
	for i := range host {
		host[i] = byte(i)
	}
	dev, err := g.AllocDevice(size)
	if err != nil {
		return 0, err
	}
	defer g.FreeDevice(dev)
	st, err := g.NewStream()
	if err != nil {
		return 0, err
	}
	defer st.Close()
	if err := st.CopyHtoDAsync(dev, host); err != nil { // warm-up
		return 0, err
	}
	if err := st.Synchronize(); err != nil {
		return 0, err
	}
	start := time.Now()
	for range iters {
		if err := st.CopyHtoDAsync(dev, host); err != nil {
			return 0, err
		}
	}
	if err := st.Synchronize(); err != nil {
		return 0, err
	}
	return float64(size) * float64(iters) / time.Since(start).Seconds(), nil
}

func (c *CUDA) dev(ordinal int) (*cudaDev, error) {
	if err := c.init(); err != nil {
		return nil, err
	}
	if ordinal < 0 || ordinal >= len(c.devs) {
		return nil, fmt.Errorf("%w: CUDA device %d of %d", ErrUnknownDevice, ordinal, len(c.devs))
	}
	return c.devs[ordinal], nil
}
