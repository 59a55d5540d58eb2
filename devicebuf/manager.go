package devicebuf

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/volleyhq/volley/async"
)

// Info describes one device of the inventory.
type Info struct {
	// Device is the device: cpu, cuda_host:N or cuda:N.
	Device async.Device
	// Name is the device's name ("CPU", "NVIDIA H200", "simulated GPU").
	Name string
	// Usable reports whether a Mover for the device can be had now.
	Usable bool
	// Reason says why the device is not usable ("libcuda.so.1 not found:
	// ...", "cuInit: CUDA_ERROR_NO_DEVICE (100)", "poisoned: ..."); empty
	// when it is.
	Reason string
	// FreeBytes and TotalBytes are the memory a batch can land in: host
	// memory for cpu and cuda_host, device memory for cuda; 0 when unknown.
	FreeBytes, TotalBytes int64
	// UnifiedAddressing reports a GPU sharing one address space with the
	// host.
	UnifiedAddressing bool
	// AsyncEngines is the GPU's number of copy engines.
	AsyncEngines int
	// Simulated marks devices of the simulated backend.
	Simulated bool
}

// Options configure a [Manager]. The zero value works: the CPU plus every
// GPU the CUDA driver reports, with a 64 MiB pinned staging pool per GPU.
type Options struct {
	// Backends are the GPU backends, in the order their devices are
	// numbered: the first backend's GPUs are cuda:0..n-1, the next one's
	// follow. A backend that cannot be used takes one number, under which
	// the inventory says why. nil means the CUDA driver alone
	// (NewCUDA(CUDAOptions{LibraryPath: CUDALibraryPath})).
	Backends []Backend
	// CUDALibraryPath is the libcuda.so.1 the default CUDA backend loads;
	// "" searches the library path and the usual driver directories.
	// Ignored when Backends is set.
	CUDALibraryPath string
	// PinnedPoolBytes is the pinned staging memory per GPU, allocated once
	// when its first Mover is made; 0 means 64 MiB. It bounds the copies in
	// flight: Move waits when all of it is in use.
	PinnedPoolBytes int64
	// SlabBytes is the size of one staging slab, the largest single copy;
	// 0 means 8 MiB (or PinnedPoolBytes/2 when that is smaller).
	SlabBytes int64
	// BlockPoolBytes bounds the released device (or pinned host) blocks
	// each Mover keeps for reuse; 0 means 512 MiB.
	BlockPoolBytes int64
	// CopyWorkers is the number of goroutines a large host copy is split
	// across; 0 means min(4, GOMAXPROCS).
	CopyWorkers int
}

// withDefaults returns o with the documented defaults filled in.
func (o Options) withDefaults() Options {
	if o.PinnedPoolBytes <= 0 {
		o.PinnedPoolBytes = 64 << 20
	}
	if o.SlabBytes <= 0 {
		o.SlabBytes = min(8<<20, o.PinnedPoolBytes/2)
	}
	o.SlabBytes = max(alignUp(o.SlabBytes), bufAlign)
	if o.BlockPoolBytes <= 0 {
		o.BlockPoolBytes = 512 << 20
	}
	if o.CopyWorkers <= 0 {
		o.CopyWorkers = min(4, runtime.GOMAXPROCS(0))
	}
	return o
}

// Validate reports options that cannot work.
func (o Options) Validate() error {
	d := o.withDefaults()
	if d.SlabBytes > d.PinnedPoolBytes {
		return fmt.Errorf("%w: devicebuf: SlabBytes %d exceeds PinnedPoolBytes %d", async.ErrInvalid, d.SlabBytes, d.PinnedPoolBytes)
	}
	return nil
}

// MoverOptions configure one [Manager.Mover].
type MoverOptions struct {
	// CPULabelledPinned, for a cuda_host device or the cpu, copies
	// batches into pinned host memory but labels them cpu: for a consumer
	// that takes CPU arrays only yet benefits from pinned memory. For the
	// cpu the first usable GPU's pinned memory is used, and without one
	// the batches stay plain CPU batches. Ignored for cuda devices.
	CPULabelledPinned bool
}

// Manager is the device inventory and the source of Movers. It is safe for
// concurrent use. Close it when done.
type Manager struct {
	opts     Options
	backends []*backendState

	mu     sync.Mutex
	closed bool
	gpus   map[int64]*gpuState // opened GPUs by device ID
	movers map[io.Closer]struct{}
}

type backendState struct {
	b    Backend
	live int // gpuStates not yet torn down; Manager.mu
	done bool
}

// NewManager returns a Manager. Options that fail Validate are replaced by
// their defaults where they conflict (SlabBytes is capped at
// PinnedPoolBytes).
func NewManager(opts Options) *Manager {
	o := opts.withDefaults()
	if o.SlabBytes > o.PinnedPoolBytes {
		o.SlabBytes = o.PinnedPoolBytes
	}
	bs := o.Backends
	if bs == nil {
		bs = []Backend{NewCUDA(CUDAOptions{LibraryPath: o.CUDALibraryPath})}
	}
	m := &Manager{opts: o, gpus: map[int64]*gpuState{}, movers: map[io.Closer]struct{}{}}
	for _, b := range bs {
		m.backends = append(m.backends, &backendState{b: b})
	}
	return m
}

// gpuEntry is one GPU as the inventory numbers it.
type gpuEntry struct {
	id      int64
	bs      *backendState
	ordinal int
	info    GPUInfo
	err     error // why unusable
}

// gpuEntries probes every backend and numbers the GPUs.
func (m *Manager) gpuEntries(ctx context.Context) []gpuEntry {
	var out []gpuEntry
	var id int64
	for _, bs := range m.backends {
		infos, err := bs.b.Probe(ctx)
		if err != nil || len(infos) == 0 {
			if err == nil {
				err = fmt.Errorf("%s: no devices", bs.b.Name())
			}
			out = append(out, gpuEntry{id: id, bs: bs, ordinal: -1, info: GPUInfo{Name: bs.b.Name()}, err: err})
			id++
			continue
		}
		for _, in := range infos {
			out = append(out, gpuEntry{id: id, bs: bs, ordinal: in.Ordinal, info: in, err: in.Err})
			id++
		}
	}
	return out
}

// Inventory lists the devices: the CPU first, then for each GPU its pinned
// host entry cuda_host:N and its device entry cuda:N. A backend or GPU
// that cannot be used appears with Usable false and the reason.
func (m *Manager) Inventory(ctx context.Context) []Info {
	free, total := hostMemory()
	out := []Info{{Device: async.CPU, Name: "CPU", Usable: true, FreeBytes: free, TotalBytes: total}}
	for _, e := range m.gpuEntries(ctx) {
		usable, reason := e.err == nil, ""
		if !usable {
			reason = e.err.Error()
		}
		host := Info{Device: async.Device{Type: async.DeviceCUDAHost, ID: e.id}, Name: e.info.Name, Usable: usable,
			Reason: reason, FreeBytes: free, TotalBytes: total, UnifiedAddressing: e.info.UnifiedAddressing,
			AsyncEngines: e.info.AsyncEngines, Simulated: e.info.Simulated}
		dev := host
		dev.Device.Type = async.DeviceCUDA
		dev.FreeBytes, dev.TotalBytes = e.info.FreeBytes, e.info.TotalBytes
		out = append(out, host, dev)
	}
	return out
}

// Mover returns a Mover onto dev. For the CPU it is a no-op mover whose
// batches are the records themselves; with opts.CPULabelledPinned it copies
// into the pinned host memory of the first usable GPU instead, labelling
// the batches cpu (and stays a no-op mover when no GPU is usable). For cuda_host:N and cuda:N the GPU
// must be usable; otherwise the error wraps [ErrUnavailable] and names the
// reason. An unknown device is an error wrapping [ErrUnknownDevice].
//
// The returned Mover also implements io.Closer; close it when the stream
// ends (batches already moved stay valid until released).
func (m *Manager) Mover(ctx context.Context, dev async.Device, opts MoverOptions) (async.Mover, error) {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("devicebuf: mover for %s: %w", dev, ErrClosed)
	}
	var entry *gpuEntry
	switch dev.Type {
	case async.DeviceCPU:
		if !opts.CPULabelledPinned {
			return cpuMover{}, nil
		}
		entries := m.gpuEntries(ctx)
		for i := range entries {
			if entries[i].err == nil {
				entry = &entries[i]
				break
			}
		}
		if entry == nil {
			return cpuMover{}, nil // no pinned memory to be had: plain CPU batches
		}
		dev = async.Device{Type: async.DeviceCUDAHost, ID: entry.id}
	case async.DeviceCUDA, async.DeviceCUDAHost:
		entries := m.gpuEntries(ctx)
		for i := range entries {
			if entries[i].id == dev.ID {
				entry = &entries[i]
			}
		}
	default:
		return nil, fmt.Errorf("%w: no backend for %s (devices: cpu, cuda_host:N, cuda:N)", ErrUnknownDevice, dev)
	}
	if entry == nil {
		return nil, fmt.Errorf("%w: %s (the inventory has no such GPU)", ErrUnknownDevice, dev)
	}
	if entry.err != nil {
		return nil, &unavailableError{dev: dev, cause: entry.err}
	}
	g, err := m.openGPU(ctx, entry)
	if err != nil {
		return nil, err
	}
	var mv moverCloser
	if dev.Type == async.DeviceCUDA {
		mv, err = newDeviceMover(g, dev, m.opts)
	} else {
		label := dev
		if opts.CPULabelledPinned {
			label = async.CPU
		}
		mv, err = newHostMover(g, label, m.opts), nil
	}
	if err != nil {
		g.unref()
		return nil, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		_ = mv.close(false)
		return nil, fmt.Errorf("devicebuf: mover for %s: %w", dev, ErrClosed)
	}
	m.movers[mv] = struct{}{}
	m.mu.Unlock()
	return mv, nil
}

// moverCloser is a Mover the Manager tracks.
type moverCloser interface {
	async.Mover
	io.Closer
	close(unregister bool) error
}

func (m *Manager) forget(mv io.Closer) {
	m.mu.Lock()
	delete(m.movers, mv)
	m.mu.Unlock()
}

// unavailableError says why a device cannot be used.
type unavailableError struct {
	dev   async.Device
	cause error
}

func (e *unavailableError) Error() string {
	return fmt.Sprintf("devicebuf: %s unavailable: %v", e.dev, e.cause)
}
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

// openGPU returns the shared state of the entry's GPU, opening it on first
// use, with one reference for the caller.
func (m *Manager) openGPU(ctx context.Context, e *gpuEntry) (*gpuState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if g, ok := m.gpus[e.id]; ok {
		g.ref()
		return g, nil
	}
	gpu, err := e.bs.b.Open(ctx, e.ordinal)
	if err != nil {
		return nil, &unavailableError{dev: async.Device{Type: async.DeviceCUDA, ID: e.id}, cause: err}
	}
	g := &gpuState{m: m, bs: e.bs, id: e.id, gpu: gpu, refs: 2, opts: m.opts} // the Manager's and the caller's
	e.bs.live++
	m.gpus[e.id] = g
	return g, nil
}

// gpuGone is called when a GPU's last reference went.
func (m *Manager) gpuGone(g *gpuState) error {
	m.mu.Lock()
	g.bs.live--
	closeBackend := m.closed && g.bs.live == 0 && !g.bs.done
	if closeBackend {
		g.bs.done = true
	}
	m.mu.Unlock()
	if closeBackend {
		return g.bs.b.Close()
	}
	return nil
}

// Close closes every open Mover (waiting for the copies they have in
// flight), drops the Manager's hold on the GPUs and their staging pools,
// and closes the backends. Batches moved earlier stay valid: the memory
// they need is freed, and a backend closed, when the last of them is
// released. Close is idempotent; later Movers fail with [ErrClosed].
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	movers := make([]moverCloser, 0, len(m.movers))
	for mv := range m.movers {
		movers = append(movers, mv.(moverCloser))
	}
	m.movers = map[io.Closer]struct{}{}
	gpus := make([]*gpuState, 0, len(m.gpus))
	for _, g := range m.gpus {
		gpus = append(gpus, g)
	}
	m.gpus = map[int64]*gpuState{}
	var idle []*backendState
	for _, bs := range m.backends {
		if bs.live == 0 && !bs.done {
			bs.done = true
			idle = append(idle, bs)
		}
	}
	m.mu.Unlock()
	var errs []error
	for _, mv := range movers {
		errs = append(errs, mv.close(false))
	}
	for _, g := range gpus {
		errs = append(errs, g.unref())
	}
	for _, bs := range idle {
		errs = append(errs, bs.b.Close())
	}
	return errors.Join(errs...)
}

// hostMemory reads MemAvailable and MemTotal from /proc/meminfo; zeros
// where it cannot.
func hostMemory() (free, total int64) {
	hostMem.Lock()
	defer hostMem.Unlock()
	if now := time.Now(); now.Sub(hostMem.at) > hostMemTTL {
		hostMem.free, hostMem.total = readMeminfo()
		hostMem.at = now
	}
	return hostMem.free, hostMem.total
}

// hostMem caches /proc/meminfo for hostMemTTL: placement asks for the
// inventory on every query, and host memory moves slowly.
var hostMem struct {
	sync.Mutex
	at          time.Time
	free, total int64
}

const hostMemTTL = time.Second

func readMeminfo() (free, total int64) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() && (free == 0 || total == 0) {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "MemTotal":
			total = n << 10
		case "MemAvailable":
			free = n << 10
		}
	}
	return free, total
}

// cpuMover is the CPU's no-op mover.
type cpuMover struct{}

func (cpuMover) Device() async.Device { return async.CPU }

func (cpuMover) Move(ctx context.Context, rec arrow.RecordBatch) (*async.DeviceBatch, error) {
	return async.NewCPUBatch(rec), nil
}

func (cpuMover) Close() error                { return nil }
func (cpuMover) close(unregister bool) error { return nil }
