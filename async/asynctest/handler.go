package asynctest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/volleyhq/volley/async"
)

// ErrRefusedByScript is what a [Handler] returns when its script refuses;
// use errors.Is.
var ErrRefusedByScript = errors.New("asynctest: refused by the script")

// EventKind names a handler call.
type EventKind int

// The handler calls a [Handler] records.
const (
	EvSchema EventKind = iota + 1
	EvTask
	EvEnd
	EvError
	EvRelease
)

// String returns the call's name ("OnSchema", "OnNextTask(end)", ...).
func (k EventKind) String() string {
	switch k {
	case EvSchema:
		return "OnSchema"
	case EvTask:
		return "OnNextTask"
	case EvEnd:
		return "OnNextTask(end)"
	case EvError:
		return "OnError"
	case EvRelease:
		return "Release"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one recorded handler call.
type Event struct {
	// Seq numbers the calls from 1 in the order they began.
	Seq  int
	Kind EventKind
	// Task is the task's 1-based index for EvTask.
	Task int
	// Err is OnError's error.
	Err *async.Error
	// Metadata is the call's metadata (task metadata, end metadata).
	Metadata arrow.Metadata
	// Requested is the total the handler had requested when the call
	// began; AfterCancel whether it had called Cancel by then.
	Requested   int64
	AfterCancel bool
	// Returned is what the call returned (OnSchema, OnNextTask).
	Returned error
}

// Handler is a recording [async.Handler] with a script. It records every
// call with a sequence number and notes each rule the producer breaks in
// Violations (each message starts with the rule's ID). The zero value
// requests nothing and extracts every task at once. Odd request patterns
// (0, negative, re-entrant bursts, other goroutines) go through the hooks
// and [Handler.Request]. Set the fields before
// handing it to a producer and do not change them afterwards.
//
// Request and Cancel go through the handler (they count what was
// requested); they may be called from any goroutine.
type Handler struct {
	// Accept is what AcceptedDevices returns (default CPU).
	Accept []async.DeviceType
	// InitialRequest is requested inside OnSchema (0: nothing).
	InitialRequest int64
	// RequestPerTask is requested inside each OnNextTask (0: nothing).
	RequestPerTask int64
	// Keep keeps tasks for the test (Tasks) instead of extracting them.
	Keep bool
	// RefuseSchema refuses the schema; RefuseTask refuses the RefuseTask-th
	// task (1-based; the handler then leaves the task to the producer).
	RefuseSchema bool
	RefuseTask   int
	// CancelAtTask cancels inside the CancelAtTask-th OnNextTask, or, with
	// CancelAsync, from a new goroutine started there (the handler waits
	// for it in Release).
	CancelAtTask int
	CancelAsync  bool
	// PanicInSchema and PanicAtTask make the handler panic there.
	PanicInSchema bool
	PanicAtTask   int
	// SchemaHook runs first in OnSchema; a non-nil return refuses.
	SchemaHook func(h *Handler, p async.Producer, s *arrow.Schema) error
	// TaskHook runs first in OnNextTask for task i (1-based); a non-nil
	// return refuses the task (the handler then does not touch it).
	TaskHook func(h *Handler, i int, t async.Task) error
	// EndHook runs in the end-of-stream OnNextTask.
	EndHook func(h *Handler) error
	// ErrorHook and ReleaseHook run in OnError and Release.
	ErrorHook   func(h *Handler, err *async.Error)
	ReleaseHook func(h *Handler)

	async     sync.WaitGroup
	inside    atomic.Int32
	requested atomic.Int64
	cancelled atomic.Bool
	p         atomic.Pointer[producerBox]

	mu         sync.Mutex
	seq        int
	events     []Event
	violations []string
	tasks      []async.Task
	rows       int64
	extracted  int
	extractErr []error
	schema     *arrow.Schema
	state      hstate
	released   chan struct{}
	once       sync.Once
}

type producerBox struct{ p async.Producer }

type hstate int

const (
	hsNew hstate = iota
	hsRunning
	hsRefused
	hsEnded
	hsReleased
)

func (h *Handler) init() {
	h.once.Do(func() { h.released = make(chan struct{}) })
}

// Released returns a channel closed by the first Release.
func (h *Handler) Released() <-chan struct{} {
	h.init()
	return h.released
}

// WaitReleased waits for Release or ctx's end.
func (h *Handler) WaitReleased(ctx context.Context) error {
	select {
	case <-h.Released():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("asynctest: no Release: %w", context.Cause(ctx))
	}
}

// AcceptedDevices implements [async.DeviceAcceptor].
func (h *Handler) AcceptedDevices() []async.DeviceType {
	if len(h.Accept) == 0 {
		return []async.DeviceType{async.DeviceCPU}
	}
	return slices.Clone(h.Accept)
}

// Producer returns the producer OnSchema delivered, or nil.
func (h *Handler) Producer() async.Producer {
	if b := h.p.Load(); b != nil {
		return b.p
	}
	return nil
}

// Request counts n as requested and calls the producer's Request. It does
// nothing before OnSchema.
func (h *Handler) Request(n int64) {
	p := h.Producer()
	if p == nil {
		return
	}
	if n > 0 {
		h.requested.Add(n)
	}
	p.Request(n)
}

// Cancel notes the cancel and calls the producer's Cancel.
func (h *Handler) Cancel() {
	p := h.Producer()
	if p == nil {
		return
	}
	h.cancelled.Store(true)
	p.Cancel()
}

// Requested is the total of the positive requests made through Request.
func (h *Handler) Requested() int64 { return h.requested.Load() }

// Events returns a copy of the recorded calls.
func (h *Handler) Events() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

// Count returns how many calls of kind k were recorded.
func (h *Handler) Count(k EventKind) int {
	n := 0
	for _, e := range h.Events() {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// Violations returns the rule breaches seen so far, each starting with the
// rule's ID.
func (h *Handler) Violations() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.violations)
}

// Tasks returns the tasks kept (with Keep) so far.
func (h *Handler) Tasks() []async.Task {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.tasks)
}

// Extracted returns the number of tasks extracted at once (without Keep)
// and the rows they held; ExtractErrors the failures met.
func (h *Handler) Extracted() (tasks int, rows int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.extracted, h.rows
}

// ExtractErrors returns the errors extraction returned (without Keep).
func (h *Handler) ExtractErrors() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.extractErr)
}

// Schema returns the schema OnSchema delivered.
func (h *Handler) Schema() *arrow.Schema {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.schema
}

func (h *Handler) violatef(format string, args ...any) {
	h.violations = append(h.violations, fmt.Sprintf(format, args...))
}

// enter records the start of a call; it returns the event's index.
func (h *Handler) enter(k EventKind) int {
	h.init()
	if n := h.inside.Add(1); n != 1 {
		h.mu.Lock()
		h.violatef("TH1: %s entered while another handler call was running (N1)", k)
		h.mu.Unlock()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	e := Event{Seq: h.seq, Kind: k, Requested: h.requested.Load(), AfterCancel: h.cancelled.Load()}
	switch h.state {
	case hsReleased:
		h.violatef("E5: %s after Release", k)
		if k == EvRelease {
			h.violatef("E6: second Release")
		}
	case hsRefused:
		if k != EvRelease {
			h.violatef("S4/N7: %s after the handler refused the stream", k)
		}
	case hsEnded:
		if k != EvRelease {
			h.violatef("N3: %s after end of stream or OnError", k)
		}
	case hsNew:
		if k == EvTask || k == EvEnd {
			h.violatef("S1: %s before OnSchema", k)
		}
	case hsRunning:
		if k == EvSchema {
			h.violatef("S1: second OnSchema")
		}
	}
	h.events = append(h.events, e)
	return len(h.events) - 1
}

func (h *Handler) leave(i int, ret error, next hstate) {
	h.mu.Lock()
	h.events[i].Returned = ret
	if h.state != hsReleased {
		h.state = next
	}
	h.mu.Unlock()
	h.inside.Add(-1)
}

// OnSchema implements [async.Handler].
func (h *Handler) OnSchema(p async.Producer, s *arrow.Schema) (err error) {
	i := h.enter(EvSchema)
	next := hsRunning
	defer func() {
		if err != nil {
			next = hsRefused
		}
		h.leave(i, err, next)
	}()
	if p == nil || s == nil {
		h.mu.Lock()
		h.violatef("O2: OnSchema with a nil producer or schema")
		h.mu.Unlock()
		return fmt.Errorf("%w: nil producer or schema", async.ErrProtocol)
	}
	h.p.Store(&producerBox{p})
	h.mu.Lock()
	h.schema = s
	h.mu.Unlock()
	if md := p.AdditionalMetadata(); md.Len() > 0 {
		if got, err := async.DecodeMetadata(async.EncodeMetadata(md)); err != nil || !metadataEqual(got, md) {
			h.mu.Lock()
			h.violatef("S6: additional metadata does not round-trip: %v", err)
			h.mu.Unlock()
		}
	}
	if h.PanicInSchema {
		panic("asynctest: scripted panic in OnSchema")
	}
	if h.SchemaHook != nil {
		if err := h.SchemaHook(h, p, s); err != nil {
			return err
		}
	}
	if h.RefuseSchema {
		return ErrRefusedByScript
	}
	if h.InitialRequest != 0 {
		h.Request(h.InitialRequest)
	}
	return nil
}

// OnNextTask implements [async.Handler].
func (h *Handler) OnNextTask(t async.Task, md arrow.Metadata) (err error) {
	if t == nil {
		i := h.enter(EvEnd)
		h.mu.Lock()
		h.events[i].Metadata = md
		h.mu.Unlock()
		defer func() { h.leave(i, err, hsEnded) }()
		if h.EndHook != nil {
			return h.EndHook(h)
		}
		return nil
	}
	i := h.enter(EvTask)
	h.mu.Lock()
	n := 0
	for _, e := range h.events {
		if e.Kind == EvTask {
			n++
		}
	}
	ev := &h.events[i]
	ev.Task, ev.Metadata = n, md
	if int64(n) > ev.Requested {
		h.violatef("N2: task %d delivered with only %d requested", n, ev.Requested)
	}
	h.mu.Unlock()
	next := hsRunning
	defer func() {
		if err != nil {
			next = hsRefused
		}
		h.leave(i, err, next)
	}()
	if n == h.PanicAtTask {
		panic(fmt.Sprintf("asynctest: scripted panic in task %d", n))
	}
	if h.TaskHook != nil {
		if err := h.TaskHook(h, n, t); err != nil {
			return err
		}
	}
	if n == h.RefuseTask {
		return ErrRefusedByScript
	}
	if n == h.CancelAtTask {
		if h.CancelAsync {
			h.async.Add(1)
			go func() {
				defer h.async.Done()
				h.Cancel()
			}()
		} else {
			h.Cancel()
		}
	}
	if h.Keep {
		h.mu.Lock()
		h.tasks = append(h.tasks, t)
		h.mu.Unlock()
	} else {
		h.extract(t)
	}
	if h.RequestPerTask != 0 {
		h.Request(h.RequestPerTask)
	}
	return nil
}

// extract extracts t, checks the batch against the stream and releases it.
func (h *Handler) extract(t async.Task) {
	b, err := t.Extract()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.extractErr = append(h.extractErr, err)
		return
	}
	h.extracted++
	h.rows += b.NumRows
	h.checkBatchLocked(b)
	b.Release()
}

// CheckBatch notes T6/N6 violations of b against the stream (device type
// and schema); the test still owns b.
func (h *Handler) CheckBatch(b *async.DeviceBatch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checkBatchLocked(b)
}

func (h *Handler) checkBatchLocked(b *async.DeviceBatch) {
	if b == nil {
		h.violatef("T3: Extract returned a nil batch and no error")
		return
	}
	if p := h.Producer(); p != nil && b.Device.Type != p.DeviceType() {
		h.violatef("T6: batch on %s from a %s producer", b.Device, p.DeviceType())
	}
	if h.schema != nil && b.Schema != nil && !b.Schema.Equal(h.schema) {
		h.violatef("N6: batch schema %s differs from the stream's %s", b.Schema, h.schema)
	}
}

// OnError implements [async.Handler].
func (h *Handler) OnError(err *async.Error) {
	i := h.enter(EvError)
	h.mu.Lock()
	h.events[i].Err = err
	if err == nil {
		h.violatef("E1: OnError with a nil error")
	}
	h.mu.Unlock()
	defer h.leave(i, nil, hsEnded)
	if h.ErrorHook != nil {
		h.ErrorHook(h, err)
	}
}

// Release implements [async.Handler].
func (h *Handler) Release() {
	i := h.enter(EvRelease)
	defer h.leave(i, nil, hsReleased)
	h.async.Wait()
	if h.ReleaseHook != nil {
		h.ReleaseHook(h)
	}
	h.mu.Lock()
	first := h.state != hsReleased
	h.state = hsReleased
	h.mu.Unlock()
	if first {
		close(h.released)
	}
}

func metadataEqual(a, b arrow.Metadata) bool {
	return slices.Equal(a.Keys(), b.Keys()) && slices.Equal(a.Values(), b.Values())
}
