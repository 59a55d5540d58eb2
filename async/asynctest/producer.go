package asynctest

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/volleyhq/volley/async"
)

// ScriptedProducer is a fake [async.Producer] that a test drives by hand,
// step by step, to exercise a consumer: Schema, Task, End, Error and
// Release call the handler on the calling goroutine (the test's script),
// and the producer records what the consumer does: its requests, its
// cancels, and each rule it breaks (Violations, each starting with the
// rule's ID). Request and Cancel may be called from any goroutine.
//
// A ScriptedProducer does not enforce the producer's rules itself (a script
// can send a task without demand, or on_error after a cancel, on purpose).
type ScriptedProducer struct {
	// Device is the stream's device type (default CPU).
	Device async.DeviceType
	// Meta is the additional metadata.
	Meta arrow.Metadata
	// Alloc allocates the tasks' batches (default memory.DefaultAllocator).
	Alloc memory.Allocator

	h async.Handler

	mu         sync.Mutex
	changed    chan struct{}
	demand     int64
	requests   []int64
	cancels    int
	violations []string
	tasks      []*ScriptedTask
	inCallback string // "OnError"/"Release" while one runs
	callbackG  uint64 // the goroutine running inCallback
	released   bool
	sent       int
}

// NewScriptedProducer returns a producer for h.
func NewScriptedProducer(h async.Handler) *ScriptedProducer {
	return &ScriptedProducer{h: h, changed: make(chan struct{})}
}

func (p *ScriptedProducer) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *ScriptedProducer) violatef(format string, args ...any) {
	p.violations = append(p.violations, fmt.Sprintf(format, args...))
}

// DeviceType implements [async.Producer].
func (p *ScriptedProducer) DeviceType() async.DeviceType {
	if p.Device == 0 {
		return async.DeviceCPU
	}
	return p.Device
}

// AdditionalMetadata implements [async.Producer].
func (p *ScriptedProducer) AdditionalMetadata() arrow.Metadata { return p.Meta }

// Request implements [async.Producer]: it records n and adds it to the
// demand.
func (p *ScriptedProducer) Request(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checkCallLocked("Request")
	if n <= 0 {
		p.violatef("R4: consumer requested %d", n)
	}
	p.requests = append(p.requests, n)
	p.demand += n
	p.notifyLocked()
}

// Cancel implements [async.Producer].
func (p *ScriptedProducer) Cancel() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checkCallLocked("Cancel")
	p.cancels++
	p.notifyLocked()
}

func (p *ScriptedProducer) checkCallLocked(what string) {
	switch {
	case p.released:
		p.violatef("E5: consumer called %s after Release (A3)", what)
	case p.inCallback == "OnError" && goid() == p.callbackG:
		p.violatef("E2: consumer called %s from OnError", what)
	case p.inCallback == "Release" && goid() == p.callbackG:
		p.violatef("E5: consumer called %s from Release", what)
	}
	// A call from another goroutine while OnError or Release runs is not
	// "from" it: the consumer's thread may have committed to the call just
	// before the callback began (TH2). Release must wait for such a call
	// (A3): a call still arriving after Release returned is flagged above.
}

// goid returns the calling goroutine's ID, read from its stack header
// ("goroutine N [...]"). It is for this kit's checks only.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}

// Demand returns the outstanding demand: requested minus tasks sent.
func (p *ScriptedProducer) Demand() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.demand
}

// Cancelled reports whether the consumer called Cancel.
func (p *ScriptedProducer) Cancelled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cancels > 0
}

// Requests returns the consumer's requests in order.
func (p *ScriptedProducer) Requests() []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.requests)
}

// Violations returns the consumer's rule breaches seen so far, plus every
// task's (T1).
func (p *ScriptedProducer) Violations() []string {
	p.mu.Lock()
	v := slices.Clone(p.violations)
	tasks := slices.Clone(p.tasks)
	p.mu.Unlock()
	for _, t := range tasks {
		v = append(v, t.Violations()...)
	}
	return v
}

// Tasks returns every task sent.
func (p *ScriptedProducer) Tasks() []*ScriptedTask {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.tasks)
}

// WaitDemand waits until the demand is at least n, the consumer cancels, or
// ctx ends; it reports whether the demand is there.
func (p *ScriptedProducer) WaitDemand(ctx context.Context, n int64) (bool, error) {
	return p.waitFor(ctx, func() bool { return p.demand >= n || p.cancels > 0 }, func() bool { return p.demand >= n })
}

// WaitCancel waits until the consumer cancels or ctx ends.
func (p *ScriptedProducer) WaitCancel(ctx context.Context) error {
	_, err := p.waitFor(ctx, func() bool { return p.cancels > 0 }, func() bool { return true })
	return err
}

func (p *ScriptedProducer) waitFor(ctx context.Context, cond, result func() bool) (bool, error) {
	for {
		p.mu.Lock()
		ok, ch := cond(), p.changed
		res := ok && result()
		p.mu.Unlock()
		if ok {
			return res, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false, context.Cause(ctx)
		}
	}
}

// call runs f as handler call what, turning a panic into a violation.
func (p *ScriptedProducer) call(what string, f func() error) (err error) {
	p.mu.Lock()
	p.inCallback, p.callbackG = what, goid()
	p.mu.Unlock()
	defer func() {
		v := recover()
		p.mu.Lock()
		p.inCallback = ""
		if v != nil {
			p.violatef("%s: consumer panicked in %s: %v", ruleOfCallback(what), what, v)
			err = fmt.Errorf("asynctest: consumer panicked in %s: %v", what, v)
		}
		p.mu.Unlock()
	}()
	return f()
}

func ruleOfCallback(what string) string {
	if what == "Release" {
		return "E6"
	}
	return "TH1"
}

// Schema calls OnSchema(p, SchemaFor(1)) and returns what it returned.
func (p *ScriptedProducer) Schema() error {
	return p.call("OnSchema", func() error { return p.h.OnSchema(p, SchemaFor(1)) })
}

// Task sends a new task of one row (value: its 1-based index - 1). fail, when
// non-nil, makes its Extract fail with it. It does not wait for demand and
// returns what OnNextTask returned.
func (p *ScriptedProducer) Task(fail error) (*ScriptedTask, error) {
	p.mu.Lock()
	p.sent++
	t := &ScriptedTask{Index: p.sent, fail: fail,
		rec: MakeBatch(p.Alloc, 1, 1, int64(p.sent-1)), device: p.DeviceType()}
	p.tasks = append(p.tasks, t)
	p.demand--
	p.mu.Unlock()
	return t, p.call("OnNextTask", func() error { return p.h.OnNextTask(t, arrow.Metadata{}) })
}

// End sends end of stream and returns what OnNextTask returned.
func (p *ScriptedProducer) End() error {
	return p.call("OnNextTask", func() error { return p.h.OnNextTask(nil, arrow.Metadata{}) })
}

// Error calls OnError(err).
func (p *ScriptedProducer) Error(err *async.Error) {
	_ = p.call("OnError", func() error { p.h.OnError(err); return nil })
}

// Release calls Release; afterwards every producer call is a violation.
func (p *ScriptedProducer) Release() {
	_ = p.call("Release", func() error { p.h.Release(); return nil })
	p.mu.Lock()
	p.released = true
	p.mu.Unlock()
}

// ScriptedTask is a [ScriptedProducer]'s task. It counts Extract and
// Discard calls; a second one is a T1 violation.
type ScriptedTask struct {
	// Index is the task's 1-based position in the stream.
	Index int

	fail      error
	device    async.DeviceType
	mu        sync.Mutex
	rec       arrow.RecordBatch
	calls     int
	extracted bool
	touched   chan struct{}
	onceCh    sync.Once
	errs      []string
}

func (t *ScriptedTask) ch() chan struct{} {
	t.onceCh.Do(func() { t.touched = make(chan struct{}) })
	return t.touched
}

// Touched returns a channel closed at the first Extract or Discard.
func (t *ScriptedTask) Touched() <-chan struct{} { return t.ch() }

// Calls returns how many times Extract or Discard was called.
func (t *ScriptedTask) Calls() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.calls
}

// Violations returns the task's T1 breaches.
func (t *ScriptedTask) Violations() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.errs)
}

func (t *ScriptedTask) take() (arrow.RecordBatch, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls++
	if t.calls > 1 {
		t.errs = append(t.errs, fmt.Sprintf("T1: task %d extracted or discarded %d times", t.Index, t.calls))
		return nil, false
	}
	rec := t.rec
	t.rec = nil
	close(t.ch())
	return rec, true
}

// Extract implements [async.Task].
func (t *ScriptedTask) Extract() (*async.DeviceBatch, error) {
	rec, ok := t.take()
	if !ok {
		return nil, fmt.Errorf("%w: task extracted twice", async.ErrReleased)
	}
	if t.fail != nil {
		rec.Release()
		return nil, t.fail
	}
	b := async.NewCPUBatch(rec)
	if t.device != async.DeviceCPU {
		b.Device = async.Device{Type: t.device, ID: 0}
	}
	return b, nil
}

// Discard implements [async.Task].
func (t *ScriptedTask) Discard() {
	if rec, ok := t.take(); ok {
		rec.Release()
	}
}

// Free releases the task's batch when nobody took it (a test's cleanup for
// tasks a broken consumer dropped), without counting as a call.
func (t *ScriptedTask) Free() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rec != nil {
		t.rec.Release()
		t.rec = nil
	}
}
