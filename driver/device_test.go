package driver

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/async/asynctest"
	"github.com/volleyhq/volley/devicebuf"
)

// newSimGPU returns a device manager over one simulated GPU, checked for
// leaks (device memory, events) when the test ends.
func newSimGPU(t *testing.T, opts devicebuf.SimOptions) (*devicebuf.Manager, *devicebuf.Simulated) {
	t.Helper()
	sim := devicebuf.NewSimulated(opts).(*devicebuf.Simulated)
	mgr := devicebuf.NewManager(devicebuf.Options{Backends: []devicebuf.Backend{sim}})
	t.Cleanup(func() {
		mgr.Close()
		if a, e := sim.Allocated(), sim.LiveEvents(); a != 0 || e != 0 {
			t.Errorf("simulated GPU leaked %d bytes of device memory and %d events", a, e)
		}
	})
	return mgr, sim
}

func TestQueryLandsOnSimulatedGPU(t *testing.T) {
	mgr, sim := newSimGPU(t, devicebuf.SimOptions{})
	// 1 GiB estimate: large enough to be worth a transfer, small enough to fit.
	db, _ := newFakeDB(t, "fake://?rows=5000&batch=1000&estimate=1073741824", Config{Devices: mgr})

	// A consumer that accepts only CPU stays on the CPU, with the reason.
	rows, err := db.Stream(t.Context(), "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := drain(t, rows); n != 5000 {
		t.Fatalf("cpu rows = %d", n)
	}
	rows.Close()
	if pl := rows.Query().Placement(); pl.Device != async.CPU || !strings.Contains(pl.Reason, "does not accept cuda") {
		t.Fatalf("cpu-only consumer placed on %s", pl)
	}

	// A consumer that accepts the GPU gets its batches in device memory.
	rows, err = db.Stream(t.Context(), "q", nil, WithAccept(async.DeviceCUDA, async.DeviceCPU))
	if err != nil {
		t.Fatal(err)
	}
	var next int64
	for b, err := range rows.All(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		if b.Device.Type != async.DeviceCUDA || b.Record != nil || b.Array == nil {
			t.Fatalf("batch on %s (record %v, array %v); want device memory", b.Device, b.Record != nil, b.Array != nil)
		}
		if err := b.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		col := b.Array.Children[0]
		data := col.Buffers[1]
		host, err := sim.CopyToHost(int(b.Device.ID), data.Addr, data.Len)
		if err != nil {
			t.Fatal(err)
		}
		for i := range col.Length {
			if v := int64(binary.LittleEndian.Uint64(host[8*(col.Offset+i):])); v != next {
				t.Fatalf("device row %d = %d", next, v)
			}
			next++
		}
		b.Release()
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if next != 5000 {
		t.Fatalf("gpu rows = %d", next)
	}
	pl := rows.Query().Placement()
	if pl.Device.Type != async.DeviceCUDA || !strings.Contains(pl.Reason, "fits") {
		t.Fatalf("gpu consumer placed on %s", pl)
	}
}

// TestConformanceThroughPlacement runs the async conformance kit against
// streams that go through db.Query and placement, on the CPU and onto the
// simulated GPU.
func TestConformanceThroughPlacement(t *testing.T) {
	for _, tc := range []struct {
		name   string
		device string
		accept []async.DeviceType
	}{
		{"cpu", "auto", nil},
		{"simulated-gpu", "cuda:0", []async.DeviceType{async.DeviceCUDA}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mgr, _ := newSimGPU(t, devicebuf.SimOptions{})
			asynctest.RunProducerChecks(t, func(ctx context.Context, h async.Handler, spec asynctest.StreamSpec) func() error {
				db, err := OpenDB(specConnector{spec}, Config{Devices: mgr})
				if err != nil {
					t.Fatal(err)
				}
				opts := []QueryOption{OnDevice(tc.device)}
				if tc.accept != nil {
					opts = append(opts, WithAccept(tc.accept...))
				}
				q, err := db.Query(ctx, h, "q", nil, opts...)
				if err != nil {
					t.Fatal(err)
				}
				return func() error {
					err := q.Wait()
					db.Close()
					return err
				}
			})
		})
	}
}

// specConnector opens connections whose queries yield the kit's scripted
// source for one stream spec.
type specConnector struct{ spec asynctest.StreamSpec }

func (c specConnector) Driver() Driver { return nil }
func (c specConnector) Connect(context.Context) (Conn, error) {
	return &specConn{spec: c.spec}, nil
}

type specConn struct{ spec asynctest.StreamSpec }

func (c *specConn) Query(context.Context, *Request) (async.Source, error) {
	return c.spec.Source(), nil
}
func (c *specConn) Close() error { return nil }

// TestCancelMidCopy cancels a stream while its copies are held on the
// simulated GPU's stream: the stream ends with Release only, and nothing
// leaks once the copies drain.
func TestCancelMidCopy(t *testing.T) {
	mgr, sim := newSimGPU(t, devicebuf.SimOptions{})
	db, _ := newFakeDB(t, "fake://?rows=100&batch=10", Config{Devices: mgr})
	sim.Hold()
	h := &asynctest.Handler{Accept: []async.DeviceType{async.DeviceCUDA}, InitialRequest: 3, Keep: true}
	h.TaskHook = func(h *asynctest.Handler, i int, task async.Task) error {
		if i == 2 {
			h.Cancel()
		}
		return nil
	}
	q, err := db.Query(t.Context(), h, "q", nil, OnDevice("cuda:0"))
	if err != nil {
		t.Fatal(err)
	}
	// The stream ends (Release) while the copies are still held.
	<-h.Released()
	for _, e := range h.Events() {
		if e.Kind == asynctest.EvError {
			t.Fatalf("cancel produced OnError (X4): %v", h.Events())
		}
	}
	// The consumer discards its tasks, then the copies drain and the
	// query's device stream can close.
	for _, task := range h.Tasks() {
		task.Discard()
	}
	sim.Resume()
	if err := q.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v; want context.Canceled", err)
	}
	if v := h.Violations(); len(v) > 0 {
		t.Fatalf("rule violations: %v", v)
	}
}

// TestSimulatedCopyFailureEndsWithOneError fails the third host-to-device
// copy: whether the failure is noticed by a later Move or only at the end
// (Flush), the stream ends with exactly one OnError naming the copy failure,
// then Release, and nothing leaks.
func TestSimulatedCopyFailureEndsWithOneError(t *testing.T) {
	mgr, _ := newSimGPU(t, devicebuf.SimOptions{FailCopyAt: 3})
	db, _ := newFakeDB(t, "fake://?rows=100&batch=10", Config{Devices: mgr})
	h := &asynctest.Handler{Accept: []async.DeviceType{async.DeviceCUDA}, InitialRequest: 100, Keep: true}
	q, err := db.Query(t.Context(), h, "q", nil, OnDevice("cuda:0"))
	if err != nil {
		t.Fatal(err)
	}
	err = q.Wait()
	if !errors.Is(err, devicebuf.ErrCopyFailed) {
		t.Fatalf("Wait = %v; want ErrCopyFailed", err)
	}
	waitErrs := 0
	for _, task := range h.Tasks() {
		b, err := task.Extract()
		if err != nil {
			t.Fatal(err)
		}
		if b.Wait(t.Context()) != nil {
			waitErrs++
		}
		b.Release()
	}
	if waitErrs != 1 {
		t.Fatalf("%d batches failed their wait; want exactly the third", waitErrs)
	}
	var kinds []asynctest.EventKind
	for _, e := range h.Events() {
		if e.Kind == asynctest.EvError || e.Kind == asynctest.EvRelease || e.Kind == asynctest.EvEnd {
			kinds = append(kinds, e.Kind)
		}
	}
	if len(kinds) != 2 || kinds[0] != asynctest.EvError || kinds[1] != asynctest.EvRelease {
		t.Fatalf("stream ended with %v; want one OnError, then Release", h.Events())
	}
	if v := h.Violations(); len(v) > 0 {
		t.Fatalf("rule violations: %v", v)
	}
}
