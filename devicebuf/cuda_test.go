//go:build linux

package devicebuf_test

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ebitengine/purego"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/devicebuf"
)

// Counters of testdata/fakecuda.c.
const (
	fakeAllocated = iota
	fakePinned
	fakePins
	fakeCopies
	fakeEvents
	fakeStreams
	fakeRetains
	fakeNoCtx
	fakeBadPop
	fakeDevAllocs
)

// fakeCUDA builds testdata/fakecuda.c into a libcuda.so.1 whose cuInit
// returns initResult, and returns its path and its counters.
func fakeCUDA(t *testing.T, initResult int) (string, func(int) int64, func(int32)) {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatalf("gcc is needed to build the fake libcuda.so.1 (install it: apt-get install gcc): %v", err)
	}
	lib := filepath.Join(t.TempDir(), "libcuda.so.1")
	out, err := exec.CommandContext(t.Context(), gcc, "-shared", "-fPIC", "-O1", "-Wl,-Bsymbolic",
		"-DINIT_RESULT="+strconv.Itoa(initResult), "-o", lib, "testdata/fakecuda.c", "-lpthread").CombinedOutput()
	if err != nil {
		t.Fatalf("building the fake libcuda: %v\n%s", err, out)
	}
	h, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		t.Fatal(err)
	}
	var stat func(int32) int64
	var failSync func(int32)
	purego.RegisterLibFunc(&stat, h, "fake_stat")
	purego.RegisterLibFunc(&failSync, h, "fake_fail_sync")
	return lib, func(w int) int64 { return stat(int32(w)) }, failSync
}

func cudaEntry(t *testing.T, inv []devicebuf.Info, typ async.DeviceType) devicebuf.Info {
	t.Helper()
	for _, in := range inv {
		if in.Device.Type == typ && in.Device.ID == 0 {
			return in
		}
	}
	t.Fatalf("no %s:0 in the inventory %+v", typ, inv)
	return devicebuf.Info{}
}

func TestCUDALibraryMissing(t *testing.T) {
	m := devicebuf.NewManager(devicebuf.Options{CUDALibraryPath: "/nonexistent/dir/libcuda.so.1"})
	defer m.Close()
	inv := m.Inventory(t.Context())
	if inv[0].Device != async.CPU || !inv[0].Usable || inv[0].TotalBytes <= 0 {
		t.Errorf("first entry %+v, want a usable CPU with its memory", inv[0])
	}
	for _, typ := range []async.DeviceType{async.DeviceCUDAHost, async.DeviceCUDA} {
		in := cudaEntry(t, inv, typ)
		if in.Usable || !strings.Contains(in.Reason, "libcuda.so.1 not found") || !strings.Contains(in.Reason, "/nonexistent/dir/libcuda.so.1") {
			t.Errorf("%s: usable %v reason %q", in.Device, in.Usable, in.Reason)
		}
	}
	_, err := m.Mover(t.Context(), async.Device{Type: async.DeviceCUDA, ID: 0}, devicebuf.MoverOptions{})
	if !errors.Is(err, devicebuf.ErrUnavailable) || !strings.Contains(err.Error(), "libcuda.so.1 not found") {
		t.Errorf("Mover on a missing driver: %v", err)
	}
	// The CPU still works, and unknown devices say so.
	if mv, err := m.Mover(t.Context(), async.CPU, devicebuf.MoverOptions{}); err != nil || mv.Device() != async.CPU {
		t.Errorf("cpu mover: %v", err)
	}
	if _, err := m.Mover(t.Context(), async.Device{Type: async.DeviceCUDA, ID: 5}, devicebuf.MoverOptions{}); !errors.Is(err, devicebuf.ErrUnknownDevice) {
		t.Errorf("cuda:5: %v", err)
	}
	if _, err := m.Mover(t.Context(), async.Device{Type: async.DeviceOpenCL, ID: 0}, devicebuf.MoverOptions{}); !errors.Is(err, devicebuf.ErrUnknownDevice) {
		t.Errorf("opencl:0: %v", err)
	}
}

func TestCUDAStubsAreNotADriver(t *testing.T) {
	c := devicebuf.NewCUDA(devicebuf.CUDAOptions{LibraryPath: "/usr/local/cuda/lib64/stubs/libcuda.so"})
	_, err := c.Probe(t.Context())
	if err == nil || !strings.Contains(err.Error(), "stub") {
		t.Fatalf("Probe of the toolkit stub: %v", err)
	}
}

func TestCUDAInitFails(t *testing.T) {
	lib, _, _ := fakeCUDA(t, 100)
	m := devicebuf.NewManager(devicebuf.Options{CUDALibraryPath: lib})
	defer m.Close()
	in := cudaEntry(t, m.Inventory(t.Context()), async.DeviceCUDA)
	if in.Usable || in.Reason != "cuInit: CUDA_ERROR_NO_DEVICE (100)" {
		t.Errorf("cuda:0: usable %v reason %q", in.Usable, in.Reason)
	}
	if _, err := m.Mover(t.Context(), in.Device, devicebuf.MoverOptions{}); !errors.Is(err, devicebuf.ErrUnavailable) || !strings.Contains(err.Error(), "CUDA_ERROR_NO_DEVICE") {
		t.Errorf("Mover: %v", err)
	}
}

// TestCUDABackendOverFakeDriver runs the real purego backend against the
// fake driver: every call must find a context pushed on its thread, and
// everything allocated must be freed.
func TestCUDABackendOverFakeDriver(t *testing.T) {
	lib, stat, failSync := fakeCUDA(t, 0)
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	cuda := devicebuf.NewCUDA(devicebuf.CUDAOptions{LibraryPath: lib})
	m := devicebuf.NewManager(devicebuf.Options{Backends: []devicebuf.Backend{cuda}, PinnedPoolBytes: 4 << 20, SlabBytes: 1 << 20})
	inv := m.Inventory(t.Context())
	dev := cudaEntry(t, inv, async.DeviceCUDA)
	if !dev.Usable || dev.Name != "Fake CUDA Device" || dev.TotalBytes != 1<<30 || dev.FreeBytes != 1<<30 || !dev.UnifiedAddressing || dev.AsyncEngines != 2 || dev.Simulated {
		t.Fatalf("cuda:0 = %+v", dev)
	}
	if cuda.DriverVersion() != 13000 || cuda.LibraryPath() != lib {
		t.Errorf("driver version %d, library %q", cuda.DriverVersion(), cuda.LibraryPath())
	}
	mv, err := m.Mover(t.Context(), dev.Device, devicebuf.MoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		rec := allTypesRecord(t, alloc)
		rec.Retain()
		b, err := mv.Move(t.Context(), rec)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		if b.SyncEvent == nil || *(*uintptr)(b.SyncEvent) == 0 {
			t.Fatal("no CUevent behind SyncEvent")
		}
		for c, col := range rec.Columns() {
			want := expectedBuffers(t, col.Data())
			for j, buf := range b.Array.Children[c].Buffers {
				if buf.Len == 0 {
					continue
				}
				got := make([]byte, buf.Len)
				if err := cuda.CopyToHost(0, got, buf.Addr); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want[j]) {
					t.Errorf("batch %d column %d buffer %d differs", i, c, j)
				}
				if mt, err := cuda.MemoryType(0, buf.Addr); err != nil || mt != devicebuf.CUDAMemoryDevice {
					t.Errorf("memory type %d, %v", mt, err)
				}
			}
		}
		rec.Release()
		b.Release()
	}
	if n := stat(fakePins); n != 2 {
		t.Errorf("%d pinned allocations for 5 batches, want 2 (staging pool + event slots)", n)
	}
	// A sticky error from the driver poisons the device.
	failSync(700)
	b, err := mv.Move(t.Context(), intRecord(alloc, 10, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(t.Context()); !errors.Is(err, devicebuf.ErrPoisoned) {
		t.Errorf("Wait after CUDA_ERROR_ILLEGAL_ADDRESS: %v", err)
	}
	b.Release()
	if in := cudaEntry(t, m.Inventory(t.Context()), async.DeviceCUDA); in.Usable || !strings.Contains(in.Reason, "poisoned: cuEventSynchronize: CUDA_ERROR_ILLEGAL_ADDRESS (700)") {
		t.Errorf("after the sticky error: %+v", in)
	}
	failSync(0)
	if err := mv.(interface{ Close() error }).Close(); err != nil {
		t.Error(err)
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
	// The poisoned device refused the frees; what the fake driver still
	// holds is accounted below only for the healthy phase.
	if n := stat(fakeNoCtx); n != 0 {
		t.Errorf("%d driver calls without a current context", n)
	}
	if n := stat(fakeBadPop); n != 0 {
		t.Errorf("%d unbalanced context pops", n)
	}
	if n := stat(fakeRetains); n != 0 {
		t.Errorf("primary context retained %d times after Close", n)
	}
}

// TestCUDALeakFree checks, on a healthy fake device, that Close frees every
// driver object.
func TestCUDALeakFree(t *testing.T) {
	lib, stat, _ := fakeCUDA(t, 0)
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	m := devicebuf.NewManager(devicebuf.Options{CUDALibraryPath: lib})
	for _, d := range []async.Device{{Type: async.DeviceCUDA, ID: 0}, {Type: async.DeviceCUDAHost, ID: 0}} {
		mv, err := m.Mover(t.Context(), d, devicebuf.MoverOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var kept []*async.DeviceBatch
		for i := range 10 {
			b, err := mv.Move(t.Context(), intRecord(alloc, 10000, i))
			if err != nil {
				t.Fatal(err)
			}
			kept = append(kept, b)
		}
		if err := mv.(interface{ Close() error }).Close(); err != nil {
			t.Fatal(err)
		}
		for _, b := range kept {
			if err := b.Wait(t.Context()); err != nil {
				t.Fatal(err)
			}
			b.Release()
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for name, w := range map[string]int{"device bytes": fakeAllocated, "pinned bytes": fakePinned, "events": fakeEvents,
		"streams": fakeStreams, "context retains": fakeRetains, "calls without context": fakeNoCtx, "bad pops": fakeBadPop} {
		if n := stat(w); n != 0 {
			t.Errorf("%s: %d left", name, n)
		}
	}
}
