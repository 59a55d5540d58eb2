package devicebuf

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/volleyhq/volley/async"
)

// deviceMover moves batches into device memory through the GPU's pinned
// staging slabs, on its own stream. A completer goroutine, owned by the
// mover and ended by Close, waits for each recorded event in order, gives
// the slab back and completes the batch.
//
// Move is called by one goroutine at a time; Close may come from any
// goroutine (the Manager's Close) and waits for a Move in progress to stop.
type deviceMover struct {
	g       *gpuState
	dev     async.Device
	opts    Options
	stream  Stream
	slabs   *slabPool
	pending chan completion
	done    chan struct{} // completer exited
	closing chan struct{}

	moveMu sync.Mutex     // serialises Moves
	active sync.WaitGroup // Moves in progress; Add under mu while open

	mu         sync.Mutex
	closed     bool
	unregister bool
	refs       int // 1 while open, plus one per batch not yet freed
	freeBlocks []devBlock
	freeBytes  int64
	freeEvents []*moverEvent
	asyncErr   error
	last       *devBatch // the most recently moved batch, for Flush
}

// devBlock is one device allocation holding a whole batch.
type devBlock struct {
	addr uintptr
	size int64
}

// moverEvent is an event and the pinned slot holding its handle.
type moverEvent struct {
	h    uintptr
	slot unsafe.Pointer
}

// completion is one recorded event for the completer: the slab to give
// back when it is reached, and the batch it belongs to.
type completion struct {
	ev    *moverEvent
	slab  []byte
	batch *devBatch
	last  bool // ev is the batch's sync event
}

func newDeviceMover(g *gpuState, dev async.Device, opts Options) (*deviceMover, error) {
	slabs, err := g.staging()
	if err != nil {
		return nil, err
	}
	st, err := g.gpu.NewStream()
	if err != nil {
		return nil, fmt.Errorf("devicebuf: %s: creating a stream: %w", dev, err)
	}
	m := &deviceMover{g: g, dev: dev, opts: opts, stream: st, slabs: slabs,
		pending: make(chan completion, cap(slabs.free)+1), done: make(chan struct{}),
		closing: make(chan struct{}), refs: 1}
	go m.complete()
	return m, nil
}

// Device returns the device batches land on.
func (m *deviceMover) Device() async.Device { return m.dev }

// complete is the mover's completer goroutine.
func (m *deviceMover) complete() {
	defer close(m.done)
	for c := range m.pending {
		err := m.g.gpu.SyncEvent(c.ev.h)
		m.slabs.put(c.slab)
		if err != nil {
			err = fmt.Errorf("devicebuf: %s: copy failed: %w", m.dev, err)
			if !errors.Is(err, ErrCopyFailed) {
				err = fmt.Errorf("%w: %w", ErrCopyFailed, err)
			}
			m.mu.Lock()
			if m.asyncErr == nil {
				m.asyncErr = err
			}
			m.mu.Unlock()
		}
		if c.last {
			c.batch.complete(err)
		} else {
			c.batch.noteErr(err)
			m.putEvent(c.ev)
		}
	}
}

// Move packs rec's buffers into staging slabs, enqueues their copies into
// one device block and returns the batch without waiting for the copies.
// rec is released before Move returns, on every path.
func (m *deviceMover) Move(ctx context.Context, rec arrow.RecordBatch) (*async.DeviceBatch, error) {
	defer rec.Release()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, fmt.Errorf("devicebuf: move to %s: %w", m.dev, ErrClosed)
	}
	m.active.Add(1)
	m.mu.Unlock()
	defer m.active.Done()
	m.moveMu.Lock()
	defer m.moveMu.Unlock()
	m.mu.Lock()
	aerr := m.asyncErr
	m.mu.Unlock()
	if err := m.g.gpu.Err(); err != nil {
		return nil, &unavailableError{dev: m.dev, cause: err}
	}
	if aerr != nil {
		return nil, fmt.Errorf("devicebuf: move to %s after an earlier failure: %w", m.dev, aerr)
	}
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("devicebuf: move to %s: %w", m.dev, err)
	}
	p, err := planRecord(rec)
	if err != nil {
		return nil, err
	}
	block, err := m.getBlock(p.size)
	if err != nil {
		return nil, fmt.Errorf("devicebuf: %s: %d bytes for a batch of %d rows: %w", m.dev, p.size, rec.NumRows(), err)
	}
	ev, err := m.getEvent()
	if err != nil {
		m.putBlock(block)
		return nil, err
	}
	b := &devBatch{m: m, block: block, ev: ev, done: make(chan struct{})}
	m.mu.Lock()
	m.refs++
	m.mu.Unlock()

	if err := m.enqueue(ctx, p, b); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.last = b
	m.mu.Unlock()
	batch := async.NewDeviceBatch(async.DeviceBatchParts{Device: m.dev, Schema: rec.Schema(), NumRows: rec.NumRows(),
		Array: p.deviceArray(block.addr), SyncEvent: ev.slot, Wait: b.wait, Release: b.release})
	return batch, nil
}

// enqueue copies the plan's buffers through slabs into b's block. On
// failure the batch is abandoned: its memory is freed once the copies
// already enqueued are done.
func (m *deviceMover) enqueue(ctx context.Context, p *plan, b *devBatch) (err error) {
	var (
		slab      []byte
		slabStart int64 // block offset the slab's first byte goes to
		used      int64 // bytes of the slab to copy
		jobs      []copyJob
		sent      int // completions handed to the completer
	)
	defer func() {
		if err == nil {
			return
		}
		m.slabs.put(slab)
		b.abandon(sent > 0)
	}()
	flush := func(last bool) error {
		parallelCopy(jobs, m.opts.CopyWorkers)
		jobs = jobs[:0]
		if err := m.stream.CopyHtoDAsync(b.block.addr+uintptr(slabStart), slab[:used]); err != nil {
			return m.fail("enqueueing a copy", err)
		}
		ev := b.ev
		if !last {
			var err error
			if ev, err = m.getEvent(); err != nil {
				return err
			}
		}
		if err := m.stream.RecordEvent(ev.h); err != nil {
			if !last {
				m.putEvent(ev)
			}
			return m.fail("recording an event", err)
		}
		m.pending <- completion{ev: ev, slab: slab, batch: b, last: last}
		sent++
		slab, used = nil, 0
		return nil
	}
	size := m.slabs.size
	for _, buf := range p.bufs {
		data, off := buf.data, buf.off
		for len(data) > 0 {
			if slab != nil && off >= slabStart+size {
				if err := flush(false); err != nil {
					return err
				}
			}
			if slab == nil {
				s, err := m.slabs.get(ctx, m.closing)
				if err != nil {
					return err
				}
				slab, slabStart, used = s, off, 0
			}
			at := off - slabStart
			n := min(int64(len(data)), size-at)
			jobs = append(jobs, copyJob{dst: slab[at : at+n], src: data[:n]})
			used = at + n
			data, off = data[n:], off+n
		}
	}
	if slab == nil { // no data at all: still one event, after nothing
		if err := m.stream.RecordEvent(b.ev.h); err != nil {
			return m.fail("recording an event", err)
		}
		m.pending <- completion{ev: b.ev, batch: b, last: true}
		sent++
		return nil
	}
	return flush(true)
}

// fail wraps a stream error.
func (m *deviceMover) fail(what string, err error) error {
	return fmt.Errorf("devicebuf: %s: %s: %w", m.dev, what, err)
}

// blockClass rounds n up to one of four sizes per power of two, so that
// blocks of similar batches are interchangeable (at most 25% unused).
func blockClass(n int64) int64 {
	if n <= 1<<16 {
		return 1 << 16
	}
	step := int64(1) << (bits.Len64(uint64(n-1)) - 3)
	return (n + step - 1) / step * step
}

func (m *deviceMover) getBlock(n int64) (devBlock, error) {
	c := blockClass(n)
	m.mu.Lock()
	for i, b := range m.freeBlocks {
		if b.size >= n && b.size <= 2*c {
			m.freeBlocks = append(m.freeBlocks[:i], m.freeBlocks[i+1:]...)
			m.freeBytes -= b.size
			m.mu.Unlock()
			return b, nil
		}
	}
	m.mu.Unlock()
	addr, err := m.g.gpu.AllocDevice(c)
	if err != nil && errors.Is(err, ErrOutOfMemory) {
		// Unused blocks of other sizes may be what is missing.
		m.mu.Lock()
		stale := m.freeBlocks
		m.freeBlocks, m.freeBytes = nil, 0
		m.mu.Unlock()
		for _, b := range stale {
			_ = m.g.gpu.FreeDevice(b.addr)
		}
		if len(stale) > 0 {
			addr, err = m.g.gpu.AllocDevice(c)
		}
	}
	if err != nil {
		return devBlock{}, err
	}
	return devBlock{addr: addr, size: c}, nil
}

// putBlock keeps b for reuse, or frees it when the mover is closed or its
// pool is full.
func (m *deviceMover) putBlock(b devBlock) {
	m.mu.Lock()
	if !m.closed && m.freeBytes+b.size <= m.opts.BlockPoolBytes {
		m.freeBlocks = append(m.freeBlocks, b)
		m.freeBytes += b.size
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	_ = m.g.gpu.FreeDevice(b.addr)
}

func (m *deviceMover) getEvent() (*moverEvent, error) {
	m.mu.Lock()
	if n := len(m.freeEvents); n > 0 {
		ev := m.freeEvents[n-1]
		m.freeEvents = m.freeEvents[:n-1]
		m.mu.Unlock()
		return ev, nil
	}
	m.mu.Unlock()
	slot, err := m.g.getSlot()
	if err != nil {
		return nil, err
	}
	h, err := m.g.gpu.NewEvent()
	if err != nil {
		m.g.putSlot(slot)
		return nil, fmt.Errorf("devicebuf: %s: creating an event: %w", m.dev, err)
	}
	*(*uintptr)(slot) = h
	return &moverEvent{h: h, slot: slot}, nil
}

func (m *deviceMover) putEvent(ev *moverEvent) {
	m.mu.Lock()
	if !m.closed {
		m.freeEvents = append(m.freeEvents, ev)
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	m.destroyEvent(ev)
}

func (m *deviceMover) destroyEvent(ev *moverEvent) {
	_ = m.g.gpu.DestroyEvent(ev.h)
	*(*uintptr)(ev.slot) = 0
	m.g.putSlot(ev.slot)
}

// unref drops a reference; the last one (after Close) frees the pools and
// the mover's hold on the GPU.
func (m *deviceMover) unref() error {
	m.mu.Lock()
	m.refs--
	if m.refs > 0 {
		m.mu.Unlock()
		return nil
	}
	blocks, events := m.freeBlocks, m.freeEvents
	m.freeBlocks, m.freeEvents, m.freeBytes = nil, nil, 0
	m.mu.Unlock()
	for _, b := range blocks {
		_ = m.g.gpu.FreeDevice(b.addr)
	}
	for _, ev := range events {
		m.destroyEvent(ev)
	}
	return m.g.unref()
}

// Flush waits until every copy enqueued so far has completed and returns
// the first copy failure the mover met (async.Flusher). Completions are
// reached in order, so waiting for the last batch's completes them all.
func (m *deviceMover) Flush(ctx context.Context) error {
	m.mu.Lock()
	last := m.last
	m.mu.Unlock()
	if last != nil {
		select {
		case <-last.done:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.asyncErr
}

// Close stops the mover: it waits for a Move in progress to return and for
// every enqueued copy to complete, ends the completer goroutine and the
// stream, and frees the pooled blocks and events. Batches already moved
// stay valid until released; the last release frees what remains. Close is
// idempotent.
func (m *deviceMover) Close() error { return m.close(true) }

func (m *deviceMover) close(unregister bool) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.closing)
	m.mu.Unlock()
	if unregister {
		m.g.m.forget(m)
	}
	m.active.Wait() // a Move waiting for a slab gives up on m.closing
	close(m.pending)
	<-m.done
	err := m.stream.Close()
	if errors.Is(err, ErrPoisoned) {
		err = nil // a poisoned device cannot finish anything; nothing more to report
	}
	// Free what the pools hold now; later releases free directly.
	m.mu.Lock()
	blocks, events := m.freeBlocks, m.freeEvents
	m.freeBlocks, m.freeEvents, m.freeBytes = nil, nil, 0
	m.mu.Unlock()
	for _, b := range blocks {
		_ = m.g.gpu.FreeDevice(b.addr)
	}
	for _, ev := range events {
		m.destroyEvent(ev)
	}
	return errors.Join(err, m.unref())
}

// devBatch is the device state of one moved batch.
type devBatch struct {
	m     *deviceMover
	block devBlock
	ev    *moverEvent
	done  chan struct{}

	mu        sync.Mutex
	err       error
	completed bool
	released  bool
}

func (b *devBatch) noteErr(err error) {
	if err == nil {
		return
	}
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
}

// complete is called by the completer when the sync event is reached.
func (b *devBatch) complete(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.completed = true
	close(b.done)
	free := b.released
	b.mu.Unlock()
	if free {
		b.free()
	}
}

// wait is the batch's Wait.
func (b *devBatch) wait(ctx context.Context) error {
	select {
	case <-b.done:
	case <-ctx.Done():
		return fmt.Errorf("devicebuf: waiting for a batch on %s: %w", b.m.dev, context.Cause(ctx))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// release is the batch's Release: the memory is freed now, or when the
// copies complete if they are still running.
func (b *devBatch) release() {
	b.mu.Lock()
	b.released = true
	free := b.completed
	b.mu.Unlock()
	if free {
		b.free()
	}
}

// abandon gives up a batch whose Move failed. When completions were sent,
// the batch's event is recorded (or the stream synchronised) so that its
// memory is freed only after the copies already enqueued.
func (b *devBatch) abandon(sent bool) {
	m := b.m
	b.mu.Lock()
	b.released = true
	b.mu.Unlock()
	if sent {
		if err := m.stream.RecordEvent(b.ev.h); err == nil {
			m.pending <- completion{ev: b.ev, batch: b, last: true}
			return
		}
		_ = m.stream.Synchronize()
	}
	b.mu.Lock()
	b.completed = true
	close(b.done)
	b.mu.Unlock()
	b.free()
}

func (b *devBatch) free() {
	b.m.putBlock(b.block)
	b.m.putEvent(b.ev)
	_ = b.m.unref()
}
