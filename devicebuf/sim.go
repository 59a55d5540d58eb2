package devicebuf

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"
)

// SimOptions configure [NewSimulated]. The zero value is one healthy
// simulated GPU with 16 GiB of memory.
type SimOptions struct {
	// Devices is the number of GPUs; 0 means 1.
	Devices int
	// NoDevice makes Probe fail as cuInit does on a machine without a GPU
	// (CUDA_ERROR_NO_DEVICE).
	NoDevice bool
	// Name is the devices' name; "" means "simulated GPU".
	Name string
	// TotalBytes is each device's memory; 0 means 16 GiB. Memory is only
	// taken from the Go heap as it is allocated.
	TotalBytes int64
	// OOMAfterBytes, when positive, makes device allocations fail with
	// CUDA_ERROR_OUT_OF_MEMORY once a device would hold more than this.
	OOMAfterBytes int64
	// FailCopyAt, when positive, makes the FailCopyAt-th host-to-device
	// copy (1-based, counted over the backend) fail: the event recorded
	// after it reports the failure; the device stays usable.
	FailCopyAt int
	// PoisonAtCopy, when positive, makes the PoisonAtCopy-th copy fail with
	// the sticky CUDA_ERROR_ILLEGAL_ADDRESS, poisoning its device.
	PoisonAtCopy int
}

// simBase is where simulated device addresses start: far outside any user
// space mapping, so host code that dereferences one faults.
const simBase = uintptr(1) << (unsafe.Sizeof(uintptr(0))*8 - 2)

// simPoison fills fresh device memory.
const simPoison = 0xDE

// Simulated is the simulated GPU backend that [NewSimulated] returns. It
// behaves like a CUDA device without one: device memory lives at addresses
// that are not host pointers and starts filled with 0xDE, copies run on one
// goroutine per stream (owned by the stream and ended by its Close), and
// events are reached only once the copies before them ran. Its extra
// methods read device memory back and account for everything allocated, so
// tests can prove that nothing leaks.
//
// All methods are safe for concurrent use.
type Simulated struct {
	opts SimOptions
	devs []*simDevice

	copies      atomic.Int64 // copies enqueued
	pins        atomic.Int64 // AllocPinned calls
	pinnedBytes atomic.Int64 // live pinned bytes
	liveEvents  atomic.Int64
	liveStreams atomic.Int64
	openGPUs    atomic.Int64
	allocs      atomic.Int64 // AllocDevice calls that succeeded
	badFrees    atomic.Int64 // frees of memory or events not allocated
	nextEvent   atomic.Uintptr

	gateMu sync.Mutex
	gate   chan struct{} // closed while streams may run
}

// NewSimulated returns a simulated GPU backend.
func NewSimulated(opts SimOptions) Backend { return newSim(opts) }

func newSim(opts SimOptions) *Simulated {
	if opts.Devices <= 0 {
		opts.Devices = 1
	}
	if opts.Name == "" {
		opts.Name = "simulated GPU"
	}
	if opts.TotalBytes <= 0 {
		opts.TotalBytes = 16 << 30
	}
	s := &Simulated{opts: opts, gate: make(chan struct{})}
	close(s.gate)
	for i := range opts.Devices {
		s.devs = append(s.devs, &simDevice{sim: s, ordinal: i, next: simBase + uintptr(i)<<44 + 1<<20,
			events: map[uintptr]*simEvent{}})
	}
	return s
}

type simDevice struct {
	sim     *Simulated
	ordinal int

	mu        sync.Mutex
	next      uintptr
	allocs    []*simAlloc // sorted by addr
	allocated int64
	events    map[uintptr]*simEvent
	poison    error
}

type simAlloc struct {
	addr       uintptr
	mem        []byte
	lastStream *simStream // stream of the last copy into it
	lastSeq    uint64     // that copy's sequence number
}

type simEvent struct {
	occ *simOcc // the latest record, nil before the first
}

// simOcc is one recording of an event.
type simOcc struct {
	stream *simStream
	seq    uint64
	done   chan struct{}
	err    error
}

// Name returns "simulated".
func (s *Simulated) Name() string { return "simulated" }

// Probe describes the simulated devices, or fails like cuInit on a machine
// without a GPU when SimOptions.NoDevice is set.
func (s *Simulated) Probe(ctx context.Context) ([]GPUInfo, error) {
	if s.opts.NoDevice {
		return nil, &CUDAError{Func: "cuInit (simulated)", Code: cudaErrNoDevice, Name: cudaErrNames[cudaErrNoDevice]}
	}
	infos := make([]GPUInfo, len(s.devs))
	for i, d := range s.devs {
		d.mu.Lock()
		total := s.opts.TotalBytes
		limit := total
		if s.opts.OOMAfterBytes > 0 && s.opts.OOMAfterBytes < limit {
			limit = s.opts.OOMAfterBytes
		}
		infos[i] = GPUInfo{Ordinal: i, Name: s.opts.Name, TotalBytes: total, FreeBytes: max(0, limit-d.allocated),
			UnifiedAddressing: true, AsyncEngines: 2, Simulated: true, Err: d.poison}
		d.mu.Unlock()
	}
	return infos, nil
}

// Open opens a simulated device.
func (s *Simulated) Open(ctx context.Context, ordinal int) (GPU, error) {
	if s.opts.NoDevice {
		_, err := s.Probe(ctx)
		return nil, err
	}
	if ordinal < 0 || ordinal >= len(s.devs) {
		return nil, fmt.Errorf("%w: simulated GPU %d of %d", ErrUnknownDevice, ordinal, len(s.devs))
	}
	s.openGPUs.Add(1)
	return &simGPU{d: s.devs[ordinal]}, nil
}

// Close does nothing: the simulated backend holds no outside resource.
func (s *Simulated) Close() error { return nil }

// Hold stops every stream of the backend before its next operation until
// Resume, so a test can look at device memory while copies are pending.
// Stream.Close runs the held work anyway.
func (s *Simulated) Hold() {
	s.gateMu.Lock()
	defer s.gateMu.Unlock()
	select {
	case <-s.gate:
		s.gate = make(chan struct{})
	default: // already held
	}
}

// Resume lets held streams run again.
func (s *Simulated) Resume() {
	s.gateMu.Lock()
	defer s.gateMu.Unlock()
	select {
	case <-s.gate:
	default:
		close(s.gate)
	}
}

func (s *Simulated) waitGate(quit <-chan struct{}) {
	s.gateMu.Lock()
	g := s.gate
	s.gateMu.Unlock()
	select {
	case <-g:
	case <-quit:
	}
}

// Poison makes device ordinal fail every later call with the sticky error
// code (for example 719, CUDA_ERROR_LAUNCH_FAILED, as a failed kernel of the
// consumer would leave it).
func (s *Simulated) Poison(ordinal, code int) {
	d := s.devs[ordinal]
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.poison == nil {
		d.poison = poisoned(&CUDAError{Func: "kernel (simulated)", Code: code, Name: cudaErrNames[code]})
	}
}

// Allocated is the device memory currently allocated over all devices.
func (s *Simulated) Allocated() int64 {
	var n int64
	for _, d := range s.devs {
		d.mu.Lock()
		n += d.allocated
		d.mu.Unlock()
	}
	return n
}

// Pins counts AllocPinned calls since the backend was created.
func (s *Simulated) Pins() int64 { return s.pins.Load() }

// PinnedBytes is the pinned host memory currently allocated.
func (s *Simulated) PinnedBytes() int64 { return s.pinnedBytes.Load() }

// DeviceAllocs counts successful device allocations since the backend
// was created.
func (s *Simulated) DeviceAllocs() int64 { return s.allocs.Load() }

// BadFrees counts frees of device memory or events that were not live
// (double frees): it stays 0 when every release happens exactly once.
func (s *Simulated) BadFrees() int64 { return s.badFrees.Load() }

// Copies counts host-to-device copies enqueued since the backend was
// created.
func (s *Simulated) Copies() int64 { return s.copies.Load() }

// LiveEvents is the number of events created and not yet destroyed.
func (s *Simulated) LiveEvents() int64 { return s.liveEvents.Load() }

// LiveStreams is the number of streams created and not yet closed.
func (s *Simulated) LiveStreams() int64 { return s.liveStreams.Load() }

// OpenGPUs is the number of GPU handles opened and not yet closed.
func (s *Simulated) OpenGPUs() int64 { return s.openGPUs.Load() }

// CopyToHost reads n bytes of device memory at addr on device ordinal. It
// fails with [ErrNotSynchronized] when a copy into that memory was enqueued
// and no event recorded after it has been waited for: a consumer must wait
// on the sync event before reading.
func (s *Simulated) CopyToHost(ordinal int, addr uintptr, n int64) ([]byte, error) {
	return s.read(ordinal, addr, n, true)
}

// PeekDevice reads device memory like CopyToHost without the wait check,
// showing what a consumer that skipped the wait would see (0xDE poison
// where no copy has run yet).
func (s *Simulated) PeekDevice(ordinal int, addr uintptr, n int64) ([]byte, error) {
	return s.read(ordinal, addr, n, false)
}

func (s *Simulated) read(ordinal int, addr uintptr, n int64, strict bool) ([]byte, error) {
	if ordinal < 0 || ordinal >= len(s.devs) {
		return nil, fmt.Errorf("%w: simulated GPU %d", ErrUnknownDevice, ordinal)
	}
	d := s.devs[ordinal]
	d.mu.Lock()
	defer d.mu.Unlock()
	a, off, ok := d.find(addr, n)
	if !ok {
		return nil, &CUDAError{Func: "cuMemcpyDtoH_v2 (simulated)", Code: cudaErrInvalidValue, Name: cudaErrNames[cudaErrInvalidValue]}
	}
	if strict && a.lastStream != nil && a.lastSeq > a.lastStream.waited.Load() {
		return nil, fmt.Errorf("%w: %d bytes at %#x", ErrNotSynchronized, n, addr)
	}
	return append([]byte(nil), a.mem[off:off+n]...), nil
}

// find returns the allocation holding [addr, addr+n). d.mu is held.
func (d *simDevice) find(addr uintptr, n int64) (*simAlloc, int64, bool) {
	i := sort.Search(len(d.allocs), func(i int) bool { return d.allocs[i].addr > addr }) - 1
	if i < 0 || n < 0 {
		return nil, 0, false
	}
	a := d.allocs[i]
	off := int64(addr - a.addr)
	if off+n > int64(len(a.mem)) {
		return nil, 0, false
	}
	return a, off, true
}

// simGPU is an open simulated device.
type simGPU struct {
	d      *simDevice
	closed atomic.Bool
}

func (g *simGPU) err() error {
	g.d.mu.Lock()
	defer g.d.mu.Unlock()
	return g.d.poison
}

func (g *simGPU) Err() error { return g.err() }

func (g *simGPU) AllocDevice(n int64) (uintptr, error) {
	d := g.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.poison != nil {
		return 0, d.poison
	}
	limit := d.sim.opts.TotalBytes
	if o := d.sim.opts.OOMAfterBytes; o > 0 && o < limit {
		limit = o
	}
	if n <= 0 || d.allocated+n > limit {
		return 0, &CUDAError{Func: "cuMemAlloc_v2 (simulated)", Code: cudaErrOutOfMemory, Name: cudaErrNames[cudaErrOutOfMemory]}
	}
	mem := make([]byte, n)
	for i := range mem {
		mem[i] = simPoison
	}
	a := &simAlloc{addr: d.next, mem: mem}
	d.next += (uintptr(n) + 255) &^ 255
	d.allocs = append(d.allocs, a)
	d.allocated += n
	d.sim.allocs.Add(1)
	return a.addr, nil
}

func (g *simGPU) FreeDevice(addr uintptr) error {
	d := g.d
	d.mu.Lock()
	defer d.mu.Unlock()
	i := sort.Search(len(d.allocs), func(i int) bool { return d.allocs[i].addr >= addr })
	if i == len(d.allocs) || d.allocs[i].addr != addr {
		d.sim.badFrees.Add(1)
		return &CUDAError{Func: "cuMemFree_v2 (simulated)", Code: cudaErrInvalidValue, Name: cudaErrNames[cudaErrInvalidValue]}
	}
	d.allocated -= int64(len(d.allocs[i].mem))
	d.allocs = append(d.allocs[:i], d.allocs[i+1:]...)
	return nil
}

func (g *simGPU) AllocPinned(n int64) ([]byte, error) {
	if err := g.err(); err != nil {
		return nil, err
	}
	b, err := hostAlloc(n)
	if err != nil {
		return nil, fmt.Errorf("%w: pinned %d bytes: %v", ErrOutOfMemory, n, err)
	}
	g.d.sim.pins.Add(1)
	g.d.sim.pinnedBytes.Add(int64(len(b)))
	return b, nil
}

func (g *simGPU) FreePinned(b []byte) error {
	g.d.sim.pinnedBytes.Add(-int64(len(b)))
	return hostFree(b)
}

func (g *simGPU) NewEvent() (uintptr, error) {
	if err := g.err(); err != nil {
		return 0, err
	}
	h := g.d.sim.nextEvent.Add(1)
	g.d.mu.Lock()
	g.d.events[h] = &simEvent{}
	g.d.mu.Unlock()
	g.d.sim.liveEvents.Add(1)
	return h, nil
}

func (g *simGPU) DestroyEvent(ev uintptr) error {
	g.d.mu.Lock()
	defer g.d.mu.Unlock()
	if _, ok := g.d.events[ev]; !ok {
		g.d.sim.badFrees.Add(1)
		return &CUDAError{Func: "cuEventDestroy_v2 (simulated)", Code: cudaErrInvalidValue, Name: cudaErrNames[cudaErrInvalidValue]}
	}
	delete(g.d.events, ev)
	g.d.sim.liveEvents.Add(-1)
	return nil
}

func (g *simGPU) SyncEvent(ev uintptr) error {
	g.d.mu.Lock()
	e, ok := g.d.events[ev]
	var occ *simOcc
	if ok {
		occ = e.occ
	}
	g.d.mu.Unlock()
	if !ok {
		return &CUDAError{Func: "cuEventSynchronize (simulated)", Code: cudaErrInvalidValue, Name: cudaErrNames[cudaErrInvalidValue]}
	}
	if occ == nil {
		return nil
	}
	<-occ.done
	if occ.err != nil {
		return occ.err
	}
	for {
		w := occ.stream.waited.Load()
		if w >= occ.seq || occ.stream.waited.CompareAndSwap(w, occ.seq) {
			return nil
		}
	}
}

func (g *simGPU) NewStream() (Stream, error) {
	if err := g.err(); err != nil {
		return nil, err
	}
	s := &simStream{d: g.d, wake: make(chan struct{}, 1), quit: make(chan struct{}), exited: make(chan struct{})}
	g.d.sim.liveStreams.Add(1)
	go s.run()
	return s, nil
}

func (g *simGPU) Close() error {
	if g.closed.CompareAndSwap(false, true) {
		g.d.sim.openGPUs.Add(-1)
	}
	return nil
}

// simStream runs its operations in order on its own goroutine, which Close
// ends and waits for.
type simStream struct {
	d *simDevice

	mu      sync.Mutex
	queue   []simOp
	seq     uint64
	closing bool

	wake   chan struct{}
	quit   chan struct{}
	exited chan struct{}
	waited atomic.Uint64 // highest seq an event wait covered

	pendingErr error // the stream goroutine's only
}

type simOp struct {
	dst    uintptr
	src    []byte
	fail   bool
	poison bool
	occ    *simOcc // set for an event record
}

func (s *simStream) enqueue(op simOp) uint64 {
	s.mu.Lock()
	s.seq++
	seq := s.seq
	if op.occ != nil {
		op.occ.seq = seq
	}
	s.queue = append(s.queue, op)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
	return seq
}

func (s *simStream) CopyHtoDAsync(dst uintptr, src []byte) error {
	d := s.d
	d.mu.Lock()
	if d.poison != nil {
		d.mu.Unlock()
		return d.poison
	}
	a, _, ok := d.find(dst, int64(len(src)))
	d.mu.Unlock()
	n := d.sim.copies.Add(1)
	op := simOp{dst: dst, src: src, fail: int(n) == d.sim.opts.FailCopyAt, poison: int(n) == d.sim.opts.PoisonAtCopy}
	seq := s.enqueue(op)
	if ok {
		d.mu.Lock()
		a.lastStream, a.lastSeq = s, seq
		d.mu.Unlock()
	}
	return nil
}

func (s *simStream) RecordEvent(ev uintptr) error {
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.poison != nil {
		return d.poison
	}
	e, ok := d.events[ev]
	if !ok {
		return &CUDAError{Func: "cuEventRecord (simulated)", Code: cudaErrInvalidValue, Name: cudaErrNames[cudaErrInvalidValue]}
	}
	occ := &simOcc{stream: s, done: make(chan struct{})}
	e.occ = occ
	// enqueue under d.mu keeps the record and the event's latest
	// occurrence in step; enqueue takes only s.mu.
	s.enqueue(simOp{occ: occ})
	return nil
}

func (s *simStream) Synchronize() error {
	occ := &simOcc{stream: s, done: make(chan struct{})}
	s.enqueue(simOp{occ: occ})
	<-occ.done
	return occ.err
}

func (s *simStream) Close() error {
	err := s.Synchronize()
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	close(s.quit)
	<-s.exited
	s.d.sim.liveStreams.Add(-1)
	return err
}

func (s *simStream) run() {
	defer close(s.exited)
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return
			}
			select {
			case <-s.wake:
			case <-s.quit:
			}
			continue
		}
		op := s.queue[0]
		s.queue[0] = simOp{}
		s.queue = s.queue[1:]
		s.mu.Unlock()
		s.d.sim.waitGate(s.quit)
		s.exec(op)
	}
}

func (s *simStream) exec(op simOp) {
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if op.occ != nil {
		op.occ.err = s.pendingErr
		if d.poison != nil {
			op.occ.err = d.poison
		}
		s.pendingErr = nil
		close(op.occ.done)
		return
	}
	switch {
	case d.poison != nil:
		s.pendingErr = d.poison
	case op.poison:
		d.poison = poisoned(&CUDAError{Func: "cuMemcpyHtoDAsync_v2 (simulated)", Code: cudaErrIllegalAddress, Name: cudaErrNames[cudaErrIllegalAddress]})
		s.pendingErr = d.poison
	case op.fail:
		s.pendingErr = fmt.Errorf("%w: %w", ErrCopyFailed, &CUDAError{Func: "cuMemcpyHtoDAsync_v2 (simulated)", Code: cudaErrInvalidValue, Name: cudaErrNames[cudaErrInvalidValue]})
	default:
		a, off, ok := d.find(op.dst, int64(len(op.src)))
		if !ok {
			// Like the real driver, a copy to an address it does not own is
			// an illegal address and sticks.
			d.poison = poisoned(&CUDAError{Func: "cuMemcpyHtoDAsync_v2 (simulated)", Code: cudaErrIllegalAddress, Name: cudaErrNames[cudaErrIllegalAddress]})
			s.pendingErr = d.poison
			return
		}
		copy(a.mem[off:], op.src)
	}
}
