package asynctest

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/volleyhq/volley/async"
)

// HandlerUnderTest is a consumer as the handler checks drive it: the
// handler a producer calls, and the consumer's user-side operations.
type HandlerUnderTest struct {
	// Handler is given to the scripted producer.
	Handler async.Handler
	// Drain reads the whole stream as the consumer's user would, releasing
	// every batch, and returns how many batches it got and the stream's
	// final error (nil for a clean end of stream). It must return when ctx
	// ends.
	Drain func(ctx context.Context) (batches int, err error)
	// Close abandons the stream: the consumer cancels the producer and
	// discards every task it holds. It must not wait for the producer.
	Close func()
}

// HandlerFactory returns a fresh consumer for each check.
type HandlerFactory func() HandlerUnderTest

// ReaderHandler is the [HandlerFactory] of [async.Reader] with opts.
func ReaderHandler(opts async.ReaderOptions) HandlerFactory {
	return func() HandlerUnderTest {
		r := async.NewReader(opts)
		return HandlerUnderTest{
			Handler: r,
			Drain: func(ctx context.Context) (int, error) {
				n := 0
				for {
					b, err := r.Next(ctx)
					if errors.Is(err, io.EOF) {
						return n, nil
					}
					if err != nil {
						return n, err
					}
					if err := b.Wait(ctx); err != nil {
						b.Release()
						return n, err
					}
					b.Release()
					n++
				}
			},
			Close: func() { r.Close() },
		}
	}
}

type handlerCheck struct {
	name string
	run  func(t TB, f HandlerFactory)
}

// RunHandlerChecks runs every consumer check against the consumers f makes,
// each as a sub-test named for its rule ([HandlerCheckNames]). A
// [ScriptedProducer] drives each consumer; besides its own assertion, each
// check fails on every rule breach the producer sees (calls from OnError or
// Release or after Release, non-positive requests, a task extracted or
// discarded twice or never), on a callback that blocks, and on batch memory
// left allocated.
func RunHandlerChecks(t *testing.T, f HandlerFactory) {
	t.Helper()
	for _, c := range handlerChecks {
		t.Run(c.name, func(t *testing.T) { c.run(t, f) })
	}
}

// CheckHandler runs the consumer checks against f and returns the failures
// instead of failing a test. With names, it runs only the checks named.
func CheckHandler(f HandlerFactory, names ...string) []Failure {
	var all []Failure
	for _, c := range handlerChecks {
		if len(names) == 0 || slices.Contains(names, c.name) {
			all = append(all, runRecorded(c.name, func(t TB) { c.run(t, f) })...)
		}
	}
	return all
}

// HandlerCheckNames lists the consumer checks in the order they run.
func HandlerCheckNames() []string {
	names := make([]string, len(handlerChecks))
	for i, c := range handlerChecks {
		names[i] = c.name
	}
	return names
}

// hrun is one scripted stream under a consumer check.
type hrun struct {
	t      TB
	c      HandlerUnderTest
	p      *ScriptedProducer
	alloc  *memory.CheckedAllocator
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// script starts a scripted producer for a fresh consumer; the script runs on
// its own goroutine and must end with p.Release.
func script(t TB, f HandlerFactory, device async.DeviceType, run func(ctx context.Context, p *ScriptedProducer)) *hrun {
	c := f()
	r := &hrun{t: t, c: c, alloc: memory.NewCheckedAllocator(memory.NewGoAllocator()), done: make(chan struct{})}
	r.ctx, r.cancel = context.WithTimeout(context.Background(), timeout)
	r.p = NewScriptedProducer(c.Handler)
	r.p.Alloc, r.p.Device = r.alloc, device
	go func() {
		defer close(r.done)
		run(r.ctx, r.p)
	}()
	return r
}

// drain runs the consumer's Drain with the check's deadline.
func (r *hrun) drain() (int, error) {
	return r.c.Drain(r.ctx)
}

// finish waits for the script, then reports the producer's violations,
// tasks not extracted or discarded exactly once, and leaked memory.
func (r *hrun) finish() {
	r.t.Helper()
	defer r.cancel()
	select { // the script ends by its deadline unless a consumer callback blocks
	case <-r.done:
	case <-time.After(2 * timeout):
		r.t.Errorf("TH1: the script did not finish within %s: a consumer callback blocked", 2*timeout)
		return
	}
	for _, v := range r.p.Violations() {
		r.t.Errorf("%s", v)
	}
	for _, tk := range r.p.Tasks() {
		if n := tk.Calls(); n == 0 {
			r.t.Errorf("T1: task %d never extracted nor discarded", tk.Index)
			tk.Free()
		}
	}
	if n := r.alloc.CurrentAlloc(); n != 0 {
		r.t.Errorf("T3: %d bytes of batch memory still allocated at the end", n)
	}
}

// sendWhileDemand sends up to n tasks, each within demand, waiting for the
// first.
func sendWhileDemand(ctx context.Context, p *ScriptedProducer, n int) {
	for i := range n {
		if i == 0 {
			if ok, _ := p.WaitDemand(ctx, 1); !ok {
				return
			}
		} else if p.Demand() <= 0 {
			return
		}
		if _, err := p.Task(nil); err != nil {
			return
		}
	}
}

func wantCode(t TB, rule string, err error, code async.Errno) *async.Error {
	t.Helper()
	var e *async.Error
	if !errors.As(err, &e) {
		t.Errorf("%s: stream error %v (%T) is not an *async.Error", rule, err, err)
		return nil
	}
	if e.Code != code {
		t.Errorf("%s: stream error code %v, want %v", rule, e.Code, code)
	}
	return e
}

var handlerChecks = []handlerCheck{
	{"A5_EarlyErrorWithoutProducer", func(t TB, f HandlerFactory) {
		r := script(t, f, async.DeviceCPU, func(ctx context.Context, p *ScriptedProducer) {
			p.Error(async.NewError(async.ECONNREFUSED, "early", arrow.Metadata{}))
			p.Release()
		})
		n, err := r.drain()
		if n != 0 || err == nil {
			t.Errorf("A5: Drain = (%d, %v), want the early error", n, err)
		} else {
			wantCode(t, "A5", err, async.ECONNREFUSED)
		}
		r.finish()
	}},
	{"A1_EndWithoutDemand", func(t TB, f HandlerFactory) {
		r := script(t, f, async.DeviceCPU, func(ctx context.Context, p *ScriptedProducer) {
			if err := p.Schema(); err != nil {
				t.Errorf("A1: OnSchema refused a CPU stream: %v", err)
			} else if err := p.End(); err != nil {
				t.Errorf("A1: end of stream refused: %v", err)
			}
			p.Release()
		})
		if n, err := r.drain(); n != 0 || err != nil {
			t.Errorf("A1: Drain = (%d, %v), want (0, nil)", n, err)
		}
		r.finish()
	}},
	{"A1_KeepsRequestOutstanding", func(t TB, f HandlerFactory) {
		r := script(t, f, async.DeviceCPU, func(ctx context.Context, p *ScriptedProducer) {
			defer p.Release()
			if p.Schema() != nil {
				return
			}
			for i := range 6 { // 5 tasks, then end of stream, each only with demand
				if ok, err := p.WaitDemand(ctx, 1); !ok {
					t.Errorf("A1: no demand for step %d: %v", i+1, err)
					return
				}
				if i == 5 {
					p.End()
				} else if _, err := p.Task(nil); err != nil {
					return
				}
			}
		})
		if n, err := r.drain(); n != 5 || err != nil {
			t.Errorf("A1: Drain = (%d, %v), want (5, nil)", n, err)
		}
		r.finish()
	}},
	{"T1_ExtractExactlyOnce", func(t TB, f HandlerFactory) {
		r := script(t, f, async.DeviceCPU, func(ctx context.Context, p *ScriptedProducer) {
			defer p.Release()
			if p.Schema() != nil {
				return
			}
			for range 6 {
				if ok, _ := p.WaitDemand(ctx, 1); !ok {
					return
				}
				if _, err := p.Task(nil); err != nil {
					return
				}
			}
			p.End()
		})
		if n, err := r.drain(); n != 6 || err != nil {
			t.Errorf("T1: Drain = (%d, %v), want (6, nil)", n, err)
		}
		r.finish()
		for _, tk := range r.p.Tasks() {
			if tk.Calls() != 1 {
				t.Errorf("T1: task %d: %d extract/discard calls", tk.Index, tk.Calls())
			}
		}
	}},
	{"T1_DiscardOnClose", func(t TB, f HandlerFactory) {
		sent := make(chan struct{})
		r := script(t, f, async.DeviceCPU, func(ctx context.Context, p *ScriptedProducer) {
			defer p.Release()
			if p.Schema() != nil {
				close(sent)
				return
			}
			sendWhileDemand(ctx, p, 3)
			close(sent)
			if err := p.WaitCancel(ctx); err != nil {
				t.Errorf("T1: Close did not cancel the producer: %v", err)
			}
		})
		<-sent
		r.c.Close()
		for _, tk := range r.p.Tasks() {
			if tk.Calls() != 1 {
				t.Errorf("T1: task %d: %d extract/discard calls when Close returned, want 1", tk.Index, tk.Calls())
			}
		}
		if len(r.p.Tasks()) == 0 {
			t.Errorf("T1: the consumer requested nothing")
		}
		r.finish()
	}},
	{"N8_TasksAfterCancel", func(t TB, f HandlerFactory) {
		for _, ending := range []string{"end", "error", "release"} {
			delivered := make(chan struct{})
			r := script(t, f, async.DeviceCPU, func(ctx context.Context, p *ScriptedProducer) {
				defer p.Release()
				if p.Schema() != nil {
					close(delivered)
					return
				}
				sendWhileDemand(ctx, p, 1)
				close(delivered)
				if err := p.WaitCancel(ctx); err != nil {
					t.Errorf("N8: Close did not cancel the producer: %v", err)
					return
				}
				for range 2 {
					if p.Demand() <= 0 {
						break
					}
					if _, err := p.Task(nil); err != nil {
						t.Errorf("N8: a task after cancel was refused: %v", err)
					}
				}
				switch ending {
				case "end":
					if err := p.End(); err != nil {
						t.Errorf("N8: end of stream after cancel was refused: %v", err)
					}
				case "error":
					p.Error(async.NewError(async.ECANCELED, "cancelled", arrow.Metadata{}))
				}
			})
			<-delivered
			r.c.Close()
			r.finish()
		}
	}},
	{"T6_RefusesUnacceptedDevice", func(t TB, f HandlerFactory) {
		c := f()
		accepted := async.AcceptedDevices(c.Handler)
		other := async.DeviceHexagon
		for _, d := range async.DeviceTypes() {
			if !slices.Contains(accepted, d) {
				other = d
				break
			}
		}
		refused := make(chan error, 1)
		r := script(t, func() HandlerUnderTest { return c }, other, func(ctx context.Context, p *ScriptedProducer) {
			refused <- p.Schema()
			p.Release() // must still work after the refusal
		})
		if err := <-refused; err == nil {
			t.Errorf("T6: consumer accepting %v accepted a %s stream", accepted, other)
		}
		if _, err := r.drain(); err == nil {
			t.Errorf("T6: Drain of a refused stream returned nil")
		}
		r.finish()
	}},
	{"E3_ErrorMetadataKept", func(t TB, f HandlerFactory) {
		md := arrow.NewMetadata([]string{"k\x00ey", "trace"}, []string{"v\x00al\x00ue", "\x00"})
		r := script(t, f, async.DeviceCPU, func(ctx context.Context, p *ScriptedProducer) {
			defer p.Release()
			if p.Schema() != nil {
				return
			}
			p.Error(async.NewError(async.EIO, "boom", md))
		})
		_, err := r.drain()
		if err == nil {
			t.Errorf("E3: Drain returned nil after OnError")
		} else if e := wantCode(t, "E3", err, async.EIO); e != nil {
			if !metadataEqual(e.Metadata, md) {
				t.Errorf("E3: error metadata %q=%q, want %q=%q (zero bytes kept whole)", e.Metadata.Keys(), e.Metadata.Values(), md.Keys(), md.Values())
			}
			if e.Message != "boom" {
				t.Errorf("E3: error message %q, want %q", e.Message, "boom")
			}
		}
		r.finish()
	}},
	{"T5_ExtractFailureSurfaces", func(t TB, f HandlerFactory) {
		failure := async.NewError(async.ENOMEM, "scripted extract failure", arrow.Metadata{})
		r := script(t, f, async.DeviceCPU, func(ctx context.Context, p *ScriptedProducer) {
			defer p.Release()
			if p.Schema() != nil {
				return
			}
			if ok, _ := p.WaitDemand(ctx, 1); !ok {
				return
			}
			tk, err := p.Task(failure)
			if err != nil {
				return
			}
			select { // T5: the producer reports the failure after extract_data
			case <-tk.Touched():
			case <-ctx.Done():
				return
			}
			p.Error(failure)
		})
		if n, err := r.drain(); err == nil {
			t.Errorf("T5: Drain = (%d, nil) after a failed extraction", n)
		}
		r.finish()
	}},
	{"E2_NoProducerCallsFromOnError", func(t TB, f HandlerFactory) {
		r := script(t, f, async.DeviceCPU, func(ctx context.Context, p *ScriptedProducer) {
			defer p.Release()
			if p.Schema() != nil {
				return
			}
			sendWhileDemand(ctx, p, 1)
			p.Error(async.NewError(async.EIO, "mid-stream", arrow.Metadata{}))
		})
		if _, err := r.drain(); err == nil {
			t.Errorf("E2: Drain returned nil after OnError")
		}
		r.finish() // producer calls from OnError are violations
	}},
	{"E5_NoProducerCallsAfterRelease", func(t TB, f HandlerFactory) {
		r := script(t, f, async.DeviceCPU, func(ctx context.Context, p *ScriptedProducer) {
			defer p.Release()
			if p.Schema() != nil {
				return
			}
			sendWhileDemand(ctx, p, 3)
			p.End()
		})
		n, err := r.drain()
		if err != nil {
			t.Errorf("E5: Drain = (%d, %v), want a clean end", n, err)
		}
		select {
		case <-r.done:
		case <-time.After(timeout):
		}
		r.c.Close() // after Release: must not touch the producer
		r.finish()
	}},
}
