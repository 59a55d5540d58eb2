package devicebuf

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

// gpuState is one opened GPU shared by the Manager and every Mover and
// batch that uses it: its handle, its pinned staging slabs and the pinned
// slots that hold sync events for C. It is torn down when the last
// reference goes (the Manager holds one until Close).
type gpuState struct {
	m    *Manager
	bs   *backendState
	id   int64
	gpu  GPU
	opts Options

	mu    sync.Mutex
	refs  int
	slabs *slabPool
	slots slotPool
}

func (g *gpuState) ref() {
	g.mu.Lock()
	g.refs++
	g.mu.Unlock()
}

// unref drops one reference; the last one frees the pools and closes the
// handle.
func (g *gpuState) unref() error {
	g.mu.Lock()
	g.refs--
	last := g.refs == 0
	g.mu.Unlock()
	if !last {
		return nil
	}
	var errs []error
	if g.slabs != nil {
		errs = append(errs, g.gpu.FreePinned(g.slabs.mem))
	}
	for _, p := range g.slots.pages {
		errs = append(errs, g.gpu.FreePinned(p))
	}
	errs = append(errs, g.gpu.Close(), g.m.gpuGone(g))
	// Frees on a poisoned device fail: its context is lost, and with it
	// the memory; that is no news to report at teardown.
	for i, err := range errs {
		if errors.Is(err, ErrPoisoned) {
			errs[i] = nil
		}
	}
	return errors.Join(errs...)
}

// staging returns the GPU's slab pool, pinning it on first use: one
// pinned allocation for the whole pool, never one per batch.
func (g *gpuState) staging() (*slabPool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.slabs != nil {
		return g.slabs, nil
	}
	n := g.opts.PinnedPoolBytes / g.opts.SlabBytes
	mem, err := g.gpu.AllocPinned(n * g.opts.SlabBytes)
	if err != nil {
		return nil, fmt.Errorf("devicebuf: pinning %d bytes of staging memory: %w", n*g.opts.SlabBytes, err)
	}
	p := &slabPool{mem: mem, size: g.opts.SlabBytes, free: make(chan []byte, n)}
	for i := range n {
		p.free <- mem[i*p.size : (i+1)*p.size : (i+1)*p.size]
	}
	g.slabs = p
	return p, nil
}

// slabPool is a fixed set of pinned slabs. Taking one blocks (honouring
// ctx) until another stream's or this stream's copy gives one back.
type slabPool struct {
	mem  []byte
	size int64
	free chan []byte
}

func (p *slabPool) get(ctx context.Context, closing <-chan struct{}) ([]byte, error) {
	select {
	case s := <-p.free:
		return s, nil
	default:
	}
	select {
	case s := <-p.free:
		return s, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("devicebuf: waiting for a staging slab: %w", context.Cause(ctx))
	case <-closing:
		return nil, fmt.Errorf("devicebuf: waiting for a staging slab: %w", ErrClosed)
	}
}

func (p *slabPool) put(s []byte) {
	if s != nil {
		p.free <- s
	}
}

// slotPool hands out 8-byte slots of pinned host memory; each holds one
// event handle, so that a batch's SyncEvent points at memory C can read.
type slotPool struct {
	mu    sync.Mutex
	pages [][]byte
	free  []unsafe.Pointer
}

const slotPage = 4096

func (g *gpuState) getSlot() (unsafe.Pointer, error) {
	s := &g.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.free) == 0 {
		page, err := g.gpu.AllocPinned(slotPage)
		if err != nil {
			return nil, fmt.Errorf("devicebuf: pinned memory for event slots: %w", err)
		}
		s.pages = append(s.pages, page)
		for i := 0; i+8 <= len(page); i += 8 {
			s.free = append(s.free, unsafe.Pointer(&page[i]))
		}
	}
	p := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	return p, nil
}

func (g *gpuState) putSlot(p unsafe.Pointer) {
	s := &g.slots
	s.mu.Lock()
	s.free = append(s.free, p)
	s.mu.Unlock()
}
