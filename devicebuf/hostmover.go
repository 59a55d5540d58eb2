package devicebuf

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/volleyhq/volley/async"
)

// hostMover moves batches into pinned host memory (cuda_host:N, or cpu
// when the consumer takes CPU arrays only). The copy is a host memcpy done
// inside Move, so batches have no sync event. Blocks come from the mover's
// pool of pinned blocks; a block goes back when the batch and every
// arrow-go buffer built over it (a Record the consumer retained) are
// released.
type hostMover struct {
	g     *gpuState
	label async.Device
	opts  Options

	mu         sync.Mutex
	closed     bool
	refs       int // 1 while open, plus one per block in use
	freeBlocks [][]byte
	freeBytes  int64
}

func newHostMover(g *gpuState, label async.Device, opts Options) *hostMover {
	return &hostMover{g: g, label: label, opts: opts, refs: 1}
}

// Device returns the device batches are labelled with.
func (m *hostMover) Device() async.Device { return m.label }

// Move copies rec into a pinned block and returns it as a batch with both
// Record (over the pinned memory) and Array set. rec is released before
// Move returns.
func (m *hostMover) Move(ctx context.Context, rec arrow.RecordBatch) (*async.DeviceBatch, error) {
	defer rec.Release()
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("devicebuf: move to %s: %w", m.label, ErrClosed)
	}
	if err := m.g.gpu.Err(); err != nil {
		return nil, &unavailableError{dev: m.label, cause: err}
	}
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("devicebuf: move to %s: %w", m.label, err)
	}
	p, err := planRecord(rec)
	if err != nil {
		return nil, err
	}
	mem, err := m.getBlock(p.size)
	if err != nil {
		return nil, fmt.Errorf("devicebuf: %s: %d pinned bytes for a batch of %d rows: %w", m.label, p.size, rec.NumRows(), err)
	}
	p.copyInto(mem, m.opts.CopyWorkers)
	blk := &pinnedBlock{m: m, mem: mem}
	blk.refs.Store(1) // the batch's
	newBuf := func(b []byte) *memory.Buffer {
		blk.refs.Add(1)
		return memory.NewBufferWithAllocator(b, blk)
	}
	out := p.hostRecord(rec.Schema(), mem, newBuf)
	return async.NewDeviceBatch(async.DeviceBatchParts{Device: m.label, Record: out,
		Array: p.deviceArray(uintptr(unsafe.Pointer(&mem[0]))), Release: blk.unref}), nil
}

func (m *hostMover) getBlock(n int64) ([]byte, error) {
	c := blockClass(n)
	m.mu.Lock()
	for i, b := range m.freeBlocks {
		if int64(len(b)) >= n && int64(len(b)) <= 2*c {
			m.freeBlocks = append(m.freeBlocks[:i], m.freeBlocks[i+1:]...)
			m.freeBytes -= int64(len(b))
			m.refs++
			m.mu.Unlock()
			return b, nil
		}
	}
	m.mu.Unlock()
	b, err := m.g.gpu.AllocPinned(c)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.refs++
	m.mu.Unlock()
	return b[:c:c], nil
}

// putBlock keeps a released block for reuse or frees it.
func (m *hostMover) putBlock(b []byte) {
	m.mu.Lock()
	if !m.closed && m.freeBytes+int64(len(b)) <= m.opts.BlockPoolBytes {
		m.freeBlocks = append(m.freeBlocks, b)
		m.freeBytes += int64(len(b))
		m.mu.Unlock()
	} else {
		m.mu.Unlock()
		_ = m.g.gpu.FreePinned(b)
	}
	_ = m.unref()
}

func (m *hostMover) unref() error {
	m.mu.Lock()
	m.refs--
	last := m.refs == 0
	m.mu.Unlock()
	if !last {
		return nil
	}
	return m.g.unref()
}

// Close frees the pooled blocks; blocks still held by batches are freed
// when released. Close is idempotent.
func (m *hostMover) Close() error { return m.close(true) }

func (m *hostMover) close(unregister bool) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	blocks := m.freeBlocks
	m.freeBlocks, m.freeBytes = nil, 0
	m.mu.Unlock()
	if unregister {
		m.g.m.forget(m)
	}
	var errs []error
	for _, b := range blocks {
		errs = append(errs, m.g.gpu.FreePinned(b))
	}
	errs = append(errs, m.unref())
	return errors.Join(errs...)
}

// pinnedBlock counts the holders of one pinned block: the batch and each
// arrow-go buffer over it. It is the buffers' memory.Allocator, so the
// last buffer's release gives the block back.
type pinnedBlock struct {
	m    *hostMover
	mem  []byte
	refs atomic.Int64
}

func (b *pinnedBlock) unref() {
	if b.refs.Add(-1) == 0 {
		b.m.putBlock(b.mem)
	}
}

// Allocate is not used: pinned blocks only back buffers made over them.
func (b *pinnedBlock) Allocate(int) []byte { panic("devicebuf: pinned block cannot allocate") }

// Reallocate is not used, as Allocate.
func (b *pinnedBlock) Reallocate(int, []byte) []byte {
	panic("devicebuf: pinned block cannot reallocate")
}

// Free drops the reference of one buffer over the block.
func (b *pinnedBlock) Free([]byte) { b.unref() }
