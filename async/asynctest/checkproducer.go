package asynctest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/volleyhq/volley/async"
)

// producerCheck is one rule-named check of a producer.
type producerCheck struct {
	name string
	run  func(t TB, f ProducerFactory)
}

// RunProducerChecks runs every producer check against f, each as a
// sub-test named for its rule ("S1_SchemaFirstOnce", "N2_DemandBounded",
// ...; see [ProducerCheckNames]). Every check also fails on any rule breach
// the recording [Handler] sees along the way, on a missing or repeated
// Release, on a producer that does not return, and on memory from
// spec.Alloc that is not freed at the end.
func RunProducerChecks(t *testing.T, f ProducerFactory) {
	t.Helper()
	for _, c := range producerChecks {
		t.Run(c.name, func(t *testing.T) { c.run(t, f) })
	}
}

// CheckProducer runs the producer checks against f and returns the
// failures instead of failing a test. With names, it runs only the checks
// named.
func CheckProducer(f ProducerFactory, names ...string) []Failure {
	var all []Failure
	for _, c := range producerChecks {
		if len(names) == 0 || slices.Contains(names, c.name) {
			all = append(all, runRecorded(c.name, func(t TB) { c.run(t, f) })...)
		}
	}
	return all
}

// ProducerCheckNames lists the producer checks in the order they run.
func ProducerCheckNames() []string {
	names := make([]string, len(producerChecks))
	for i, c := range producerChecks {
		names[i] = c.name
	}
	return names
}

// pstream is one stream under a producer check.
type pstream struct {
	t      TB
	h      *Handler
	alloc  *memory.CheckedAllocator
	cancel context.CancelFunc
	waitCh chan error
	wg     sync.WaitGroup // the check's helper goroutines
}

// startStream starts f for h; the allocator is checked in finish.
func startStream(t TB, f ProducerFactory, spec StreamSpec, h *Handler) *pstream {
	t.Helper()
	return newStream(t).start(f, spec, h)
}

// newStream prepares a stream, for hooks that need it before it starts.
func newStream(t TB) *pstream {
	return &pstream{t: t, alloc: memory.NewCheckedAllocator(memory.NewGoAllocator()), waitCh: make(chan error, 1)}
}

// start starts f for h.
func (s *pstream) start(f ProducerFactory, spec StreamSpec, h *Handler) *pstream {
	s.h = h
	spec.Alloc = s.alloc
	if spec.Rows <= 0 {
		spec.Rows = 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	h.init()
	wait := f(ctx, h, spec)
	go func() { s.waitCh <- wait() }()
	return s
}

// goHelp runs fn on a helper goroutine that finish waits for.
func (s *pstream) goHelp(fn func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

// end waits for Release and for the producer to return, then reports every
// violation the handler saw; it returns the producer's result and whether
// it returned at all.
func (s *pstream) end() (error, bool) {
	s.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-s.h.Released():
	case <-timer.C:
		s.t.Errorf("E6: no Release within %s (events: %s)", timeout, eventList(s.h.Events()))
		s.cancel()
		timer.Reset(timeout)
	}
	var err error
	returned := true
	select {
	case err = <-s.waitCh:
	case <-timer.C:
		s.t.Errorf("E6: the producer did not return within %s of its start", timeout)
		returned = false
	}
	s.cancel()
	s.wg.Wait()
	for _, v := range s.h.Violations() {
		s.t.Errorf("%s", v)
	}
	if n := s.h.Count(EvRelease); n != 1 && returned {
		s.t.Errorf("E6: %d Release calls, want 1", n)
	}
	return err, returned
}

// finish is end plus the memory assertion; kept tasks must have been dealt
// with.
func (s *pstream) finish() error {
	s.t.Helper()
	err, _ := s.end()
	s.checkMemory()
	return err
}

func (s *pstream) checkMemory() {
	s.t.Helper()
	if n := s.alloc.CurrentAlloc(); n != 0 {
		s.t.Errorf("T2: %d bytes of batch memory still allocated at the end", n)
	}
}

func eventList(es []Event) string {
	var b []byte
	for i, e := range es {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, e.Kind.String()...)
		if e.Kind == EvTask {
			b = fmt.Appendf(b, "#%d", e.Task)
		}
	}
	return "[" + string(b) + "]"
}

func kinds(es []Event) []EventKind {
	ks := make([]EventKind, len(es))
	for i, e := range es {
		ks[i] = e.Kind
	}
	return ks
}

// expectKinds checks the exact sequence of calls.
func expectKinds(t TB, h *Handler, want ...EventKind) {
	t.Helper()
	if got := h.Events(); !slices.Equal(kinds(got), want) {
		t.Errorf("calls %s, want %s", eventList(got), kindList(want))
	}
}

func kindList(ks []EventKind) string {
	es := make([]Event, len(ks))
	for i, k := range ks {
		es[i] = Event{Kind: k, Task: i}
	}
	return eventList(es)
}

func repeatKind(k EventKind, n int) []EventKind { return slices.Repeat([]EventKind{k}, n) }

func seq(parts ...[]EventKind) []EventKind { return slices.Concat(parts...) }

func one(k EventKind) []EventKind { return []EventKind{k} }

// noErrorEvent checks that no OnError came.
func noErrorEvent(t TB, h *Handler, rule string) {
	t.Helper()
	for _, e := range h.Events() {
		if e.Kind == EvError {
			t.Errorf("%s: OnError(%v) after the consumer's cancel", rule, e.Err)
		}
	}
}

var errRefuse = errors.New("asynctest: refused by the handler")

var producerChecks = []producerCheck{
	{"S1_SchemaFirstOnce", func(t TB, f ProducerFactory) {
		h := &Handler{InitialRequest: 10}
		s := startStream(t, f, StreamSpec{Kind: Finite, Batches: 3}, h)
		if err := s.finish(); err != nil {
			t.Errorf("clean stream: producer returned %v", err)
		}
		es := h.Events()
		if len(es) == 0 || es[0].Kind != EvSchema {
			t.Errorf("S1: first call is not OnSchema: %s", eventList(es))
		}
		if n := h.Count(EvSchema); n != 1 {
			t.Errorf("S1: %d OnSchema calls, want 1", n)
		}
	}},
	{"S4_RefusedSchemaThenReleaseOnly", func(t TB, f ProducerFactory) {
		for _, kind := range []Kind{Finite, Endless} {
			h := &Handler{InitialRequest: 5, SchemaHook: func(h *Handler, p async.Producer, _ *arrow.Schema) error {
				p.Request(5) // demand before refusing: still nothing may follow
				return errRefuse
			}}
			s := startStream(t, f, StreamSpec{Kind: kind, Batches: 3}, h)
			if err := s.finish(); err == nil {
				t.Errorf("S4: producer returned nil after a refused schema (%s stream)", kind)
			}
			expectKinds(t, h, EvSchema, EvRelease)
		}
	}},
	{"S5_RequestInsideOnSchema", func(t TB, f ProducerFactory) {
		h := &Handler{SchemaHook: func(h *Handler, _ async.Producer, _ *arrow.Schema) error {
			h.Request(4)
			return nil
		}}
		s := startStream(t, f, StreamSpec{Kind: Finite, Batches: 3}, h)
		if err := s.finish(); err != nil {
			t.Errorf("producer returned %v", err)
		}
		expectKinds(t, h, seq(one(EvSchema), repeatKind(EvTask, 3), one(EvEnd), one(EvRelease))...)
	}},
	{"S6_AdditionalMetadata", func(t TB, f ProducerFactory) {
		h := &Handler{InitialRequest: 2, SchemaHook: func(h *Handler, p async.Producer, _ *arrow.Schema) error {
			md := p.AdditionalMetadata()
			if _, err := async.DecodeMetadata(async.EncodeMetadata(md)); err != nil {
				t.Errorf("S6: additional metadata does not encode: %v", err)
			}
			return nil
		}}
		s := startStream(t, f, StreamSpec{Kind: Finite, Batches: 1}, h)
		if err := s.finish(); err != nil {
			t.Errorf("producer returned %v", err)
		}
	}},
	{"N1_NoConcurrentTasks", func(t TB, f ProducerFactory) {
		s := newStream(t)
		h := &Handler{InitialRequest: 1}
		h.TaskHook = func(h *Handler, i int, _ async.Task) error {
			s.goHelp(func() { h.Request(1) }) // demand from another goroutine, racing the next task
			runtime.Gosched()
			return nil
		}
		s.start(f, StreamSpec{Kind: Finite, Batches: 20}, h)
		if err := s.finish(); err != nil {
			t.Errorf("producer returned %v", err)
		}
		if n := h.Count(EvTask); n != 20 {
			t.Errorf("N1: %d tasks, want 20", n)
		}
	}},
	{"N2_DemandBounded", func(t TB, f ProducerFactory) {
		s := newStream(t)
		h := &Handler{InitialRequest: 2}
		third := make(chan struct{})
		h.TaskHook = func(h *Handler, i int, _ async.Task) error {
			switch {
			case i == 2:
				// Demand is used up. Before asking for more, give a
				// producer that ignores demand the chance to send a third
				// task anyway (a conformant one sends nothing, and the
				// wait ends by timeout); asking at once would race it.
				s.goHelp(func() {
					select {
					case <-third:
					case <-time.After(100 * time.Millisecond):
					}
					h.Request(1)
				})
			case i > 2:
				if i == 3 {
					close(third)
				}
				s.goHelp(func() { h.Request(1) })
			}
			return nil
		}
		s.start(f, StreamSpec{Kind: Finite, Batches: 6}, h)
		if err := s.finish(); err != nil {
			t.Errorf("producer returned %v", err)
		}
		if n := h.Count(EvTask); n != 6 {
			t.Errorf("N2: %d tasks, want 6", n)
		}
		for _, e := range h.Events() {
			if e.Kind == EvTask && int64(e.Task) > e.Requested {
				t.Errorf("N2: task %d arrived with %d requested", e.Task, e.Requested)
			}
		}
	}},
	{"N3_EndOfStream", func(t TB, f ProducerFactory) {
		h := &Handler{InitialRequest: 100}
		s := startStream(t, f, StreamSpec{Kind: Finite, Batches: 3, Rows: 5}, h)
		if err := s.finish(); err != nil {
			t.Errorf("producer returned %v", err)
		}
		expectKinds(t, h, seq(one(EvSchema), repeatKind(EvTask, 3), one(EvEnd), one(EvRelease))...)
		if n, rows := h.Extracted(); n != 3 || rows != 15 {
			t.Errorf("N3: extracted %d tasks with %d rows, want 3 with 15", n, rows)
		}
	}},
	{"N7_RefusedTaskThenReleaseOnly", func(t TB, f ProducerFactory) {
		h := &Handler{InitialRequest: 10, TaskHook: func(h *Handler, i int, tk async.Task) error {
			if i == 2 {
				tk.Discard()
				return errRefuse
			}
			return nil
		}}
		s := startStream(t, f, StreamSpec{Kind: Endless}, h)
		if err := s.finish(); err == nil {
			t.Errorf("N7: producer returned nil after a refused task")
		}
		expectKinds(t, h, EvSchema, EvTask, EvTask, EvRelease)
	}},
	{"R1_DemandOverflow", func(t TB, f ProducerFactory) {
		h := &Handler{SchemaHook: func(h *Handler, p async.Producer, _ *arrow.Schema) error {
			for range 3 {
				h.Request(math.MaxInt64)
			}
			return nil
		}}
		s := startStream(t, f, StreamSpec{Kind: Finite, Batches: 5}, h)
		if err := s.finish(); err != nil {
			t.Errorf("R1: requests summing past MaxInt64: producer returned %v", err)
		}
		expectKinds(t, h, seq(one(EvSchema), repeatKind(EvTask, 5), one(EvEnd), one(EvRelease))...)
	}},
	{"R2_ReentrantRequest", func(t TB, f ProducerFactory) {
		h := &Handler{}
		reentrant := func(h *Handler, n int) {
			before := len(h.Events())
			for range n {
				h.Request(1)
			}
			if after := len(h.Events()); after != before {
				t.Errorf("R2: Request called the handler synchronously (%d calls)", after-before)
			}
		}
		h.SchemaHook = func(h *Handler, _ async.Producer, _ *arrow.Schema) error { reentrant(h, 100); return nil }
		h.TaskHook = func(h *Handler, i int, _ async.Task) error { reentrant(h, 10); return nil }
		s := startStream(t, f, StreamSpec{Kind: Finite, Batches: 10}, h)
		if err := s.finish(); err != nil {
			t.Errorf("producer returned %v", err)
		}
		if n := h.Count(EvTask); n != 10 {
			t.Errorf("R2: %d tasks, want 10", n)
		}
	}},
	{"R3_RequestAfterCancel", func(t TB, f ProducerFactory) {
		h := &Handler{InitialRequest: 1, TaskHook: func(h *Handler, i int, _ async.Task) error {
			if i == 1 {
				h.Cancel()
				h.Producer().Request(1000) // not counted: must do nothing
			}
			return nil
		}}
		s := startStream(t, f, StreamSpec{Kind: Endless}, h)
		s.finish()
		if n := h.Count(EvTask); n != 1 {
			t.Errorf("R3: %d tasks after requesting 1 and then cancelling, want 1", n)
		}
		noErrorEvent(t, h, "R3")
	}},
	{"R4_NonPositiveRequest", func(t TB, f ProducerFactory) {
		for _, n := range []int64{0, -1, math.MinInt64} {
			h := &Handler{SchemaHook: func(h *Handler, p async.Producer, _ *arrow.Schema) error {
				p.Request(n)
				return nil
			}}
			s := startStream(t, f, StreamSpec{Kind: Finite, Batches: 3}, h)
			if err := s.finish(); err == nil {
				t.Errorf("R4: request(%d): producer returned nil", n)
			}
			es := h.Events()
			if !slices.Equal(kinds(es), []EventKind{EvSchema, EvError, EvRelease}) {
				t.Errorf("R4: request(%d): calls %s, want [OnSchema OnError Release]", n, eventList(es))
				continue
			}
			if e := es[1].Err; e == nil || e.Code != async.EINVAL {
				t.Errorf("R4: request(%d): OnError(%v), want EINVAL", n, e)
			}
		}
	}},
	{"X1_ConcurrentCancel", func(t TB, f ProducerFactory) {
		h := &Handler{InitialRequest: 1, RequestPerTask: 1}
		h.TaskHook = func(h *Handler, i int, _ async.Task) error {
			if i == 3 {
				var wg sync.WaitGroup
				for range 8 {
					wg.Go(func() {
						for range 50 {
							h.Cancel()
							h.Producer().Request(1)
						}
					})
				}
				wg.Wait() // Cancel and Request never block nor call the handler
			}
			return nil
		}
		s := startStream(t, f, StreamSpec{Kind: Endless}, h)
		s.finish()
		noErrorEvent(t, h, "X4")
		if n := h.Count(EvTask); n > 4 {
			t.Errorf("X1: %d tasks after cancel at task 3 (at most 4 requested)", n)
		}
	}},
	{"X2_CancelCallsNoHandler", func(t TB, f ProducerFactory) {
		h := &Handler{InitialRequest: 1, TaskHook: func(h *Handler, i int, _ async.Task) error {
			before := len(h.Events())
			h.Cancel()
			h.Cancel()
			if after := len(h.Events()); after != before {
				t.Errorf("X2: Cancel called the handler synchronously (%d calls)", after-before)
			}
			return nil
		}}
		s := startStream(t, f, StreamSpec{Kind: Endless}, h)
		s.finish()
	}},
	{"X3_CancelEndsWithRelease", func(t TB, f ProducerFactory) {
		// Cancel from another goroutine, once while the source is blocked
		// and once while batches flow.
		for _, kind := range []Kind{Stalled, Endless} {
			started := make(chan struct{})
			h := &Handler{InitialRequest: 1, RequestPerTask: 1}
			h.SchemaHook = func(*Handler, async.Producer, *arrow.Schema) error {
				if kind == Stalled {
					close(started)
				}
				return nil
			}
			h.TaskHook = func(_ *Handler, i int, _ async.Task) error {
				if kind == Endless && i == 5 {
					close(started)
				}
				return nil
			}
			s := startStream(t, f, StreamSpec{Kind: kind}, h)
			select {
			case <-started:
				h.Cancel()
			case <-h.Released():
				t.Errorf("X3: %s stream released before it was cancelled: %s", kind, eventList(h.Events()))
			case <-time.After(timeout):
				t.Errorf("X3: %s stream did not start within %s: %s", kind, timeout, eventList(h.Events()))
			}
			s.finish()
			noErrorEvent(t, h, "X4")
		}
	}},
	{"X4_NoErrorAfterCancel", func(t TB, f ProducerFactory) {
		h := &Handler{SchemaHook: func(h *Handler, _ async.Producer, _ *arrow.Schema) error {
			h.Cancel()
			h.Producer().Request(10) // after cancel: nothing
			return nil
		}}
		s := startStream(t, f, StreamSpec{Kind: Finite, Batches: 3}, h)
		s.finish()
		noErrorEvent(t, h, "X4")
		if n := h.Count(EvTask); n != 0 {
			t.Errorf("X4: %d tasks after a cancel with no demand", n)
		}
	}},
	{"E1_ErrorThenRelease", func(t TB, f ProducerFactory) {
		h := &Handler{InitialRequest: 10}
		s := startStream(t, f, StreamSpec{Kind: FailAfter, Batches: 2}, h)
		if err := s.finish(); err == nil {
			t.Errorf("E1: producer returned nil for a failing stream")
		}
		es := h.Events()
		expectKinds(t, h, EvSchema, EvTask, EvTask, EvError, EvRelease)
		if len(es) == 5 && (es[3].Err == nil || es[3].Err.Code == 0) {
			t.Errorf("E4: OnError(%v) without a code", es[3].Err)
		}
	}},
	{"E2_ErrorBeforeSchema", func(t TB, f ProducerFactory) {
		h := &Handler{InitialRequest: 10}
		s := startStream(t, f, StreamSpec{Kind: FailSchema}, h)
		if err := s.finish(); err == nil {
			t.Errorf("E2: producer returned nil for a failing schema")
		}
		expectKinds(t, h, EvError, EvRelease)
	}},
	{"E5_ReleaseLast", func(t TB, f ProducerFactory) {
		for _, spec := range []StreamSpec{{Kind: Finite, Batches: 2}, {Kind: FailAfter, Batches: 1}, {Kind: FailSchema}} {
			h := &Handler{InitialRequest: 10}
			s := startStream(t, f, spec, h)
			s.finish()
			if es := h.Events(); len(es) == 0 || es[len(es)-1].Kind != EvRelease {
				t.Errorf("E5: %s stream: last call is not Release: %s", spec.Kind, eventList(es))
			}
		}
	}},
	{"E6_ReleaseExactlyOnce", func(t TB, f ProducerFactory) {
		scripts := []struct {
			name string
			spec StreamSpec
			h    *Handler
		}{
			{"end", StreamSpec{Kind: Finite, Batches: 2}, &Handler{InitialRequest: 10}},
			{"error", StreamSpec{Kind: FailAfter, Batches: 1}, &Handler{InitialRequest: 10}},
			{"schema error", StreamSpec{Kind: FailSchema}, &Handler{}},
			{"refused", StreamSpec{Kind: Finite, Batches: 2}, &Handler{SchemaHook: func(*Handler, async.Producer, *arrow.Schema) error { return errRefuse }}},
			{"cancel", StreamSpec{Kind: Endless}, &Handler{InitialRequest: 1, TaskHook: func(h *Handler, _ int, _ async.Task) error { h.Cancel(); return nil }}},
		}
		for _, sc := range scripts {
			s := startStream(t, f, sc.spec, sc.h)
			s.finish()
			if n := sc.h.Count(EvRelease); n != 1 {
				t.Errorf("E6: %s: %d Release calls", sc.name, n)
			}
		}
	}},
	{"T1_ExtractOnce", func(t TB, f ProducerFactory) {
		h := &Handler{InitialRequest: 10, Keep: true}
		s := startStream(t, f, StreamSpec{Kind: Finite, Batches: 3}, h)
		s.end()
		for i, tk := range h.Tasks() {
			b, err := tk.Extract()
			if err != nil {
				t.Errorf("T1: task %d: Extract: %v", i+1, err)
				continue
			}
			h.CheckBatch(b)
			b.Release()
			if b2, err := tk.Extract(); !errors.Is(err, async.ErrReleased) {
				t.Errorf("T1: task %d: second Extract returned (%v, %v), want ErrReleased", i+1, b2, err)
				b2.Release()
			}
		}
		s.checkMemory()
	}},
	{"T1_DiscardFrees", func(t TB, f ProducerFactory) {
		h := &Handler{InitialRequest: 10, Keep: true}
		s := startStream(t, f, StreamSpec{Kind: Finite, Batches: 5, Rows: 100}, h)
		s.end()
		for i, tk := range h.Tasks() {
			tk.Discard()
			tk.Discard() // a second discard does nothing
			if b, err := tk.Extract(); !errors.Is(err, async.ErrReleased) {
				t.Errorf("T1: task %d: Extract after Discard returned (%v, %v), want ErrReleased", i+1, b, err)
				b.Release()
			}
		}
		s.checkMemory()
	}},
	{"A4_ExtractAfterRelease", func(t TB, f ProducerFactory) {
		h := &Handler{InitialRequest: 10, Keep: true}
		s := startStream(t, f, StreamSpec{Kind: Finite, Batches: 4, Rows: 3}, h)
		s.end()
		var wg sync.WaitGroup
		for i, tk := range h.Tasks() {
			wg.Go(func() { // on any goroutine, after Release (T4, A4)
				b, err := tk.Extract()
				if err != nil {
					t.Errorf("A4: task %d after Release: Extract: %v", i+1, err)
					return
				}
				h.CheckBatch(b)
				if b.NumRows != 3 {
					t.Errorf("A4: task %d: %d rows, want 3", i+1, b.NumRows)
				}
				if err := b.Wait(context.Background()); err != nil {
					t.Errorf("D4: task %d: Wait: %v", i+1, err)
				}
				b.Release()
			})
		}
		wg.Wait()
		if n := len(h.Tasks()); n != 4 {
			t.Errorf("A4: %d tasks, want 4", n)
		}
		s.checkMemory()
	}},
	{"TH1_Serialized", func(t TB, f ProducerFactory) {
		for _, spec := range []StreamSpec{{Kind: Finite, Batches: 30}, {Kind: FailAfter, Batches: 10}} {
			s := newStream(t)
			h := &Handler{InitialRequest: 2}
			h.TaskHook = func(h *Handler, i int, _ async.Task) error {
				s.goHelp(func() { h.Request(1) })
				runtime.Gosched()
				return nil
			}
			h.ErrorHook = func(*Handler, *async.Error) { runtime.Gosched() }
			s.start(f, spec, h)
			s.finish() // overlapping calls are reported as TH1 violations
		}
	}},
	{"TH2_ConcurrentExtract", func(t TB, f ProducerFactory) {
		s := newStream(t)
		h := &Handler{InitialRequest: 1, Keep: true}
		h.TaskHook = func(h *Handler, i int, tk async.Task) error {
			s.goHelp(func() {
				b, err := tk.Extract()
				if err != nil {
					t.Errorf("TH2: task %d: Extract on another goroutine: %v", i, err)
					return
				}
				h.CheckBatch(b)
				b.Release()
				h.Request(1)
			})
			return nil
		}
		s.start(f, StreamSpec{Kind: Finite, Batches: 20}, h)
		s.finish()
		if n := h.Count(EvTask); n != 20 {
			t.Errorf("TH2: %d tasks, want 20", n)
		}
	}},
	{"T6_DeviceType", func(t TB, f ProducerFactory) {
		h := &Handler{InitialRequest: 10}
		s := startStream(t, f, StreamSpec{Kind: Finite, Batches: 3}, h)
		s.finish() // each batch is checked against the producer's device type
		if n, _ := h.Extracted(); n != 3 {
			t.Errorf("T6: extracted %d tasks, want 3 (errors: %v)", n, h.ExtractErrors())
		}
	}},
	{"IdleCost_NoBusyPoll", func(t TB, f ProducerFactory) {
		schema := make(chan struct{})
		h := &Handler{SchemaHook: func(*Handler, async.Producer, *arrow.Schema) error { close(schema); return nil }}
		s := startStream(t, f, StreamSpec{Kind: Finite, Batches: 2}, h)
		select {
		case <-schema:
			const window = 300 * time.Millisecond
			cpu := IdleCPU(window)
			if cpu > window/10 {
				t.Errorf("idle cost: %v of CPU in %v with no demand (want < 10%% of a core)", cpu, window)
			}
			h.Request(10)
		case <-h.Released():
		}
		if err := s.finish(); err != nil {
			t.Errorf("producer returned %v", err)
		}
	}},
}

// IdleCPU returns the CPU time (user + system) the whole process used over
// the next window: a measurement of idle cost, not a synchronisation.
func IdleCPU(window time.Duration) time.Duration {
	before := processCPU()
	time.Sleep(window)
	return processCPU() - before
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
