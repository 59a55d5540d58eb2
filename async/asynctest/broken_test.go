package asynctest_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/async/asynctest"
)

// The checks must be able to fail: each broken producer or consumer below
// has one deliberate bug, and the check for the rule it breaks must report
// it. The conformant runtime and Reader must report nothing.

// wrapped runs the real runtime behind a handler wrapper that injects a
// producer-side bug.
func wrapped(wrap func(h async.Handler) async.Handler) asynctest.ProducerFactory {
	return asynctest.Blocking(func(ctx context.Context, h async.Handler, spec asynctest.StreamSpec) error {
		return async.Produce(ctx, wrap(h), spec.Source(), async.ProduceOptions{})
	})
}

// base forwards every call; the bugs embed it and override one method.
type base struct{ async.Handler }

// spyProducer intercepts the producer the runtime hands over.
type spyProducer struct {
	async.Producer
	request func(p async.Producer, n int64)
	cancel  func(p async.Producer)
	device  async.DeviceType
}

func (s *spyProducer) Request(n int64) {
	if s.request != nil {
		s.request(s.Producer, n)
		return
	}
	s.Producer.Request(n)
}

func (s *spyProducer) Cancel() {
	if s.cancel != nil {
		s.cancel(s.Producer)
		return
	}
	s.Producer.Cancel()
}

func (s *spyProducer) DeviceType() async.DeviceType {
	if s.device != 0 {
		return s.device
	}
	return s.Producer.DeviceType()
}

type spyHandler struct {
	base
	spy *spyProducer
}

func (h *spyHandler) OnSchema(p async.Producer, s *arrow.Schema) error {
	h.spy.Producer = p
	return h.Handler.OnSchema(h.spy, s)
}

func spying(spy func() *spyProducer) asynctest.ProducerFactory {
	return wrapped(func(h async.Handler) async.Handler { return &spyHandler{base{h}, spy()} })
}

type doubleRelease struct{ base }

func (h doubleRelease) Release() { h.Handler.Release(); h.Handler.Release() }

type errorAfterCancel struct {
	base
	cancelled atomic.Bool
}

func (h *errorAfterCancel) OnSchema(p async.Producer, s *arrow.Schema) error {
	return h.Handler.OnSchema(&spyProducer{Producer: p, cancel: func(p async.Producer) {
		h.cancelled.Store(true)
		p.Cancel()
	}}, s)
}

func (h *errorAfterCancel) Release() {
	if h.cancelled.Load() {
		h.Handler.OnError(async.NewError(async.ECANCELED, "cancelled", arrow.Metadata{}))
	}
	h.Handler.Release()
}

type endAfterRefusedSchema struct{ base }

func (h endAfterRefusedSchema) OnSchema(p async.Producer, s *arrow.Schema) error {
	err := h.Handler.OnSchema(p, s)
	if err != nil {
		h.Handler.OnNextTask(nil, arrow.Metadata{})
	}
	return err
}

type endAfterRefusedTask struct{ base }

func (h endAfterRefusedTask) OnNextTask(t async.Task, md arrow.Metadata) error {
	err := h.Handler.OnNextTask(t, md)
	if err != nil && t != nil {
		h.Handler.OnNextTask(nil, md)
	}
	return err
}

type schemaTwice struct{ base }

func (h schemaTwice) OnSchema(p async.Producer, s *arrow.Schema) error {
	if err := h.Handler.OnSchema(p, s); err != nil {
		return err
	}
	return h.Handler.OnSchema(p, s)
}

type endInsteadOfError struct{ base }

func (h endInsteadOfError) OnError(*async.Error) { h.Handler.OnNextTask(nil, arrow.Metadata{}) }

type errorAfterRelease struct{ base }

func (h errorAfterRelease) Release() {
	h.Handler.Release()
	h.Handler.OnError(async.NewError(async.EIO, "late", arrow.Metadata{}))
}

// freedAtRelease frees every task's state when the stream is released.
type freedAtRelease struct {
	base
	mu    sync.Mutex
	tasks []async.Task
}

func (h *freedAtRelease) OnNextTask(t async.Task, md arrow.Metadata) error {
	if t != nil {
		h.mu.Lock()
		h.tasks = append(h.tasks, t)
		h.mu.Unlock()
		t = &lateTask{Task: t}
	}
	return h.Handler.OnNextTask(t, md)
}

func (h *freedAtRelease) Release() {
	h.mu.Lock()
	for _, t := range h.tasks {
		t.Discard()
	}
	h.mu.Unlock()
	h.Handler.Release()
}

type lateTask struct{ async.Task }

// leakyDiscard wraps tasks so that Discard frees nothing (the extracted
// batch would, but a discarded one leaks).
type leakyDiscard struct{ base }

func (h leakyDiscard) OnNextTask(t async.Task, md arrow.Metadata) error {
	if t != nil {
		t = &leakyTask{Task: t}
	}
	return h.Handler.OnNextTask(t, md)
}

type leakyTask struct {
	async.Task
	done atomic.Bool
}

func (t *leakyTask) Discard() {
	if t.done.CompareAndSwap(false, true) {
		b, _ := t.Task.Extract()
		if b != nil && b.Record != nil {
			b.Record.Retain() // the leak
		}
		b.Release()
	}
}

func (t *leakyTask) Extract() (*async.DeviceBatch, error) {
	if t.done.Swap(true) {
		return nil, async.ErrReleased
	}
	return t.Task.Extract()
}

// ignoresDemand is a hand-written producer that sends every batch without
// waiting for demand.
func ignoresDemand(ctx context.Context, h async.Handler, spec asynctest.StreamSpec) error {
	src := spec.Source()
	defer src.Close()
	s, err := src.Schema(ctx)
	if err != nil {
		h.OnError(async.AsError(err))
		h.Release()
		return err
	}
	p := &rogueProducer{}
	if err := h.OnSchema(p, s); err != nil {
		h.Release()
		return err
	}
	for i := 0; i < 50 && !p.cancelled.Load() && spec.Kind != asynctest.Stalled; i++ {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			h.OnNextTask(nil, arrow.Metadata{})
			break
		}
		if err != nil {
			h.OnError(async.AsError(err))
			break
		}
		t := &rogueTask{}
		t.b.Store(async.NewCPUBatch(b.Record))
		if err := h.OnNextTask(t, arrow.Metadata{}); err != nil {
			t.Discard()
			break
		}
	}
	h.Release()
	return nil
}

type rogueProducer struct{ cancelled atomic.Bool }

func (*rogueProducer) DeviceType() async.DeviceType       { return async.DeviceCPU }
func (*rogueProducer) Request(int64)                      {}
func (p *rogueProducer) Cancel()                          { p.cancelled.Store(true) }
func (*rogueProducer) AdditionalMetadata() arrow.Metadata { return arrow.Metadata{} }

type rogueTask struct {
	b atomic.Pointer[async.DeviceBatch]
}

func (t *rogueTask) Extract() (*async.DeviceBatch, error) {
	if b := t.b.Swap(nil); b != nil {
		return b, nil
	}
	return nil, async.ErrReleased
}
func (t *rogueTask) Discard() { t.b.Swap(nil).Release() }

// busyPolling is the runtime plus a polling loop while it runs (the
// arrow-go producer's bug).
func busyPolling(ctx context.Context, h async.Handler, spec asynctest.StreamSpec) error {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select { // deliberately a polling loop
			case <-stop:
				return
			default:
			}
		}
	}()
	err := async.Produce(ctx, h, spec.Source(), async.ProduceOptions{})
	close(stop)
	<-done
	return err
}

func TestProducerChecksCanFail(t *testing.T) {
	defer asynctest.SetTimeout(time.Second)()
	cases := []struct {
		name  string
		f     asynctest.ProducerFactory
		check string
	}{
		{"ignores demand", asynctest.Blocking(ignoresDemand), "N2_DemandBounded"},
		{"on_error after cancel", wrapped(func(h async.Handler) async.Handler { return &errorAfterCancel{base: base{h}} }), "X4_NoErrorAfterCancel"},
		{"double release", wrapped(func(h async.Handler) async.Handler { return doubleRelease{base{h}} }), "E6_ReleaseExactlyOnce"},
		{"busy polling", asynctest.Blocking(busyPolling), "IdleCost_NoBusyPoll"},
		{"request(n<=0) accepted", spying(func() *spyProducer {
			return &spyProducer{request: func(p async.Producer, n int64) {
				if n > 0 {
					p.Request(n)
				}
			}}
		}), "R4_NonPositiveRequest"},
		{"cancel ignored", spying(func() *spyProducer { return &spyProducer{cancel: func(async.Producer) {}} }), "X3_CancelEndsWithRelease"},
		{"cancel ignored, requests honoured", spying(func() *spyProducer { return &spyProducer{cancel: func(async.Producer) {}} }), "R3_RequestAfterCancel"},
		{"end after refused schema", wrapped(func(h async.Handler) async.Handler { return endAfterRefusedSchema{base{h}} }), "S4_RefusedSchemaThenReleaseOnly"},
		{"end after refused task", wrapped(func(h async.Handler) async.Handler { return endAfterRefusedTask{base{h}} }), "N7_RefusedTaskThenReleaseOnly"},
		{"schema twice", wrapped(func(h async.Handler) async.Handler { return schemaTwice{base{h}} }), "S1_SchemaFirstOnce"},
		{"end instead of error", wrapped(func(h async.Handler) async.Handler { return endInsteadOfError{base{h}} }), "E1_ErrorThenRelease"},
		{"on_error after release", wrapped(func(h async.Handler) async.Handler { return errorAfterRelease{base{h}} }), "E5_ReleaseLast"},
		{"tasks freed at release", wrapped(func(h async.Handler) async.Handler { return &freedAtRelease{base: base{h}} }), "A4_ExtractAfterRelease"},
		{"discard leaks", wrapped(func(h async.Handler) async.Handler { return leakyDiscard{base{h}} }), "T1_DiscardFrees"},
		{"wrong device type", spying(func() *spyProducer { return &spyProducer{device: async.DeviceCUDA} }), "T6_DeviceType"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fails := asynctest.CheckProducer(c.f, c.check)
			if len(fails) == 0 {
				t.Fatalf("check %s passed a producer with the bug %q", c.check, c.name)
			}
			for _, f := range fails {
				if f.Check != c.check {
					t.Errorf("failure attributed to %s, want %s", f.Check, c.check)
				}
				t.Logf("reported as expected: %s", f)
			}
		})
	}
}

// TestCheckProducerCleanRuntime shows the recorder path reports nothing for
// the conformant runtime.
func TestCheckProducerCleanRuntime(t *testing.T) {
	if fails := asynctest.CheckProducer(asynctest.ProduceFactory(async.ProduceOptions{})); len(fails) != 0 {
		t.Fatalf("failures for the conformant runtime: %v", fails)
	}
}

// brokenConsumer wraps a Reader with one consumer-side bug.
type brokenConsumer struct {
	*async.Reader
	mu       sync.Mutex
	p        async.Producer
	onError  func(c *brokenConsumer, err *async.Error)
	onSchema func(c *brokenConsumer, p async.Producer, s *arrow.Schema) error
}

func (c *brokenConsumer) OnSchema(p async.Producer, s *arrow.Schema) error {
	c.mu.Lock()
	c.p = p
	c.mu.Unlock()
	if c.onSchema != nil {
		return c.onSchema(c, p, s)
	}
	return c.Reader.OnSchema(p, s)
}

func (c *brokenConsumer) OnError(err *async.Error) {
	if c.onError != nil {
		c.onError(c, err)
		return
	}
	c.Reader.OnError(err)
}

func (c *brokenConsumer) producer() async.Producer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p
}

// consumer builds a HandlerFactory around a broken consumer; drain and
// closeFn may replace the Reader's.
func consumer(setup func(c *brokenConsumer), drain func(c *brokenConsumer, ut asynctest.HandlerUnderTest, ctx context.Context) (int, error), closeFn func(c *brokenConsumer)) asynctest.HandlerFactory {
	return func() asynctest.HandlerUnderTest {
		ut := asynctest.ReaderHandler(async.ReaderOptions{})()
		c := &brokenConsumer{Reader: ut.Handler.(*async.Reader)}
		if setup != nil {
			setup(c)
		}
		out := asynctest.HandlerUnderTest{Handler: c, Drain: ut.Drain, Close: ut.Close}
		if drain != nil {
			out.Drain = func(ctx context.Context) (int, error) { return drain(c, ut, ctx) }
		}
		if closeFn != nil {
			out.Close = func() { closeFn(c) }
		}
		return out
	}
}

func TestHandlerChecksCanFail(t *testing.T) {
	defer asynctest.SetTimeout(time.Second)()
	cases := []struct {
		name  string
		f     asynctest.HandlerFactory
		check string
	}{
		{"close leaves queued tasks", consumer(nil, nil, func(c *brokenConsumer) {
			if p := c.producer(); p != nil {
				p.Cancel()
			}
		}), "T1_DiscardOnClose"},
		{"truncates error metadata", consumer(func(c *brokenConsumer) {
			c.onError = func(c *brokenConsumer, err *async.Error) {
				ks, vs := slices.Clone(err.Metadata.Keys()), slices.Clone(err.Metadata.Values())
				for i := range ks {
					ks[i], _, _ = strings.Cut(ks[i], "\x00")
					vs[i], _, _ = strings.Cut(vs[i], "\x00")
				}
				c.Reader.OnError(async.NewError(err.Code, err.Message, arrow.NewMetadata(ks, vs)))
			}
		}, nil, nil), "E3_ErrorMetadataKept"},
		{"accepts any device", consumer(func(c *brokenConsumer) {
			c.onSchema = func(c *brokenConsumer, p async.Producer, s *arrow.Schema) error {
				return c.Reader.OnSchema(&spyProducer{Producer: p, device: async.DeviceCPU}, s)
			}
		}, nil, nil), "T6_RefusesUnacceptedDevice"},
		{"requests from on_error", consumer(func(c *brokenConsumer) {
			c.onError = func(c *brokenConsumer, err *async.Error) {
				c.producer().Request(1)
				c.Reader.OnError(err)
			}
		}, nil, nil), "E2_NoProducerCallsFromOnError"},
		{"drops extraction failures", consumer(nil, func(c *brokenConsumer, ut asynctest.HandlerUnderTest, ctx context.Context) (int, error) {
			n, err := ut.Drain(ctx)
			if err != nil && !errors.Is(err, async.ErrProtocol) {
				return n, nil // "best effort": the failure is dropped
			}
			return n, err
		}, nil), "T5_ExtractFailureSurfaces"},
		{"early error dropped", consumer(nil, func(c *brokenConsumer, ut asynctest.HandlerUnderTest, ctx context.Context) (int, error) {
			n, err := ut.Drain(ctx)
			if n == 0 {
				return 0, nil
			}
			return n, err
		}, nil), "A5_EarlyErrorWithoutProducer"},
		{"cancels after release", consumer(nil, nil, func(c *brokenConsumer) {
			c.Reader.Close()
			if p := c.producer(); p != nil {
				p.Cancel()
			}
		}), "E5_NoProducerCallsAfterRelease"},
		{"never requests", consumer(func(c *brokenConsumer) {
			c.onSchema = func(c *brokenConsumer, p async.Producer, s *arrow.Schema) error {
				return c.Reader.OnSchema(&spyProducer{Producer: p, request: func(async.Producer, int64) {}}, s)
			}
		}, nil, nil), "A1_KeepsRequestOutstanding"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fails := asynctest.CheckHandler(c.f, c.check)
			if len(fails) == 0 {
				t.Fatalf("check %s passed a consumer with the bug %q", c.check, c.name)
			}
			for _, f := range fails {
				if f.Check != c.check {
					t.Errorf("failure attributed to %s, want %s", f.Check, c.check)
				}
				t.Logf("reported as expected: %s", f)
			}
		})
	}
}

// TestCheckHandlerCleanReader shows the recorder path reports nothing for
// the Reader.
func TestCheckHandlerCleanReader(t *testing.T) {
	if fails := asynctest.CheckHandler(asynctest.ReaderHandler(async.ReaderOptions{})); len(fails) != 0 {
		t.Fatalf("failures for the Reader: %v", fails)
	}
}
