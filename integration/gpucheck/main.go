// Command gpucheck is Volley's prepared GPU check: it runs on a machine
// with an NVIDIA GPU and no Go toolchain (see run.sh), using the CUDA driver
// through devicebuf's purego backend, and without a GPU it checks the
// fallback to the CPU.
//
// Steps: 1 inventory (driver version, device, free memory); 2 stream a
// lineitem-shaped Source of -gib GiB onto cuda:0 through async.Produce and
// the Mover, waiting on each sync event and comparing every buffer copied
// back with the CPU batch; 3 bandwidth: raw pinned cuMemcpyHtoDAsync vs the
// Volley pipeline vs a CPU stream; 5 fallback: with the CUDA library
// pointed nowhere, the stream lands on the CPU and says why. (Step 4, the
// CuPy consumer through libvolley.so, belongs to run.sh.)
//
// Exit status: 0 all checks passed; 1 correct but the pipeline reached
// less than -target of the raw pinned bandwidth; 2 a check failed; 3 no
// usable GPU: only the fallback ran, and it passed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/devicebuf"
)

type config struct {
	cudaLib     string
	gib         float64
	rows        int
	target      float64
	slabMiB     int64
	poolMiB     int64
	workers     int
	window      int
	reps        int
	timeout     time.Duration
	fallbackLib string
}

func main() {
	var c config
	flag.StringVar(&c.cudaLib, "cuda-lib", "", "libcuda.so.1 to load (default: search the loader path and driver directories)")
	flag.Float64Var(&c.gib, "gib", 1.0, "GiB of lineitem-shaped data to stream")
	flag.IntVar(&c.rows, "rows", 64<<10, "rows per batch")
	flag.Float64Var(&c.target, "target", 0.80, "pipeline bandwidth target as a fraction of raw pinned copies")
	flag.Int64Var(&c.slabMiB, "slab-mib", 16, "staging slab size in MiB")
	flag.Int64Var(&c.poolMiB, "pool-mib", 256, "pinned staging pool in MiB")
	flag.IntVar(&c.workers, "copy-workers", 8, "goroutines per host copy into staging")
	flag.IntVar(&c.window, "window", 8, "consumer window (tasks in flight)")
	flag.IntVar(&c.reps, "reps", 3, "timed repetitions of each bandwidth measurement (best is reported)")
	flag.DurationVar(&c.timeout, "timeout", 4*time.Minute, "overall deadline")
	flag.StringVar(&c.fallbackLib, "fallback-lib", "/nonexistent/volley-gpucheck/libcuda.so.1", "library path for the fallback step (must not exist)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	os.Exit(run(ctx, c))
}

func run(ctx context.Context, c config) int {
	cuda := devicebuf.NewCUDA(devicebuf.CUDAOptions{LibraryPath: c.cudaLib})
	gpus, err := cuda.Probe(ctx)
	fmt.Println("== step 1: inventory")
	if err != nil || len(gpus) == 0 || gpus[0].Err != nil {
		reason := fmt.Sprint(err)
		if err == nil && len(gpus) > 0 {
			reason = gpus[0].Err.Error()
		}
		fmt.Printf("inventory: no usable GPU: %s\n", reason)
		fmt.Println("steps 2 and 3 skipped: they need a GPU")
		if !fallback(ctx, c) {
			return 2
		}
		fmt.Println("RESULT: no usable GPU; fallback to cpu verified (exit 3)")
		return 3
	}
	v := cuda.DriverVersion()
	fmt.Printf("driver: CUDA %d.%d (%d), library %s\n", v/1000, v%1000/10, v, cuda.LibraryPath())
	for _, g := range gpus {
		fmt.Printf("cuda:%d %q: %.1f GiB free of %.1f GiB, unified addressing %v, %d copy engines\n",
			g.Ordinal, g.Name, gib(g.FreeBytes), gib(g.TotalBytes), g.UnifiedAddressing, g.AsyncEngines)
	}
	m := devicebuf.NewManager(devicebuf.Options{Backends: []devicebuf.Backend{cuda},
		PinnedPoolBytes: c.poolMiB << 20, SlabBytes: c.slabMiB << 20, CopyWorkers: c.workers})
	defer m.Close()
	for _, in := range m.Inventory(ctx) {
		fmt.Printf("  %-12s usable=%-5v %s %s\n", in.Device, in.Usable, in.Name, in.Reason)
	}

	start := time.Now()
	recs, total := generate(memory.DefaultAllocator, int64(c.gib*(1<<30)), c.rows)
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	fmt.Printf("source: %d lineitem batches of %d rows, %.2f GiB, generated in %v\n", len(recs), c.rows, gib(total), time.Since(start).Round(time.Millisecond))

	ok := true
	fmt.Println("== step 2: stream onto cuda:0, wait, copy back, compare")
	if err := verifyStream(ctx, m, cuda, recs, c); err != nil {
		fmt.Printf("FAIL stream: %v\n", err)
		ok = false
	} else {
		fmt.Println("PASS stream: every buffer of every batch matches the CPU stream byte for byte")
	}

	fmt.Println("== step 3: bandwidth")
	met, err := bandwidth(ctx, m, cuda, recs, total, c)
	if err != nil {
		fmt.Printf("FAIL bandwidth: %v\n", err)
		ok = false
	}
	fmt.Println("== step 5: fallback")
	if !fallback(ctx, c) {
		ok = false
	}
	switch {
	case !ok:
		fmt.Println("RESULT: FAIL (exit 2)")
		return 2
	case !met:
		fmt.Printf("RESULT: correct, but the pipeline is below %.0f%% of raw pinned bandwidth (exit 1)\n", 100*c.target)
		return 1
	}
	fmt.Println("RESULT: PASS (exit 0)")
	return 0
}

func gib(n int64) float64 { return float64(n) / (1 << 30) }

// stream runs one Volley stream of recs onto dev and hands every batch to
// each, which must wait for it (goWait, or on its sync event) and must not
// release it.
func stream(ctx context.Context, m *devicebuf.Manager, dev async.Device, recs []arrow.RecordBatch, window int,
	each func(i int, b *async.DeviceBatch) error) (time.Duration, error) {
	var mover async.Mover
	if dev.Type != async.DeviceCPU {
		mv, err := m.Mover(ctx, dev, devicebuf.MoverOptions{})
		if err != nil {
			return 0, err
		}
		defer mv.(io.Closer).Close()
		mover = mv
	}
	r := async.NewReader(async.ReaderOptions{Window: window, Accept: []async.DeviceType{dev.Type}})
	defer r.Close()
	start := time.Now()
	produced := make(chan error, 1)
	go func() {
		produced <- async.Produce(ctx, r, &sliceSource{recs: recs}, async.ProduceOptions{Mover: mover})
	}()
	i := 0
	var ferr error
	for b, err := range r.All(ctx) {
		if err != nil {
			ferr = err
			break
		}
		if err := each(i, b); err != nil {
			b.Release()
			ferr = fmt.Errorf("batch %d: %w", i, err)
			break
		}
		b.Release()
		i++
	}
	r.Close()
	perr := <-produced
	elapsed := time.Since(start)
	if ferr != nil {
		return elapsed, ferr
	}
	if perr != nil {
		return elapsed, fmt.Errorf("Produce: %w", perr)
	}
	if i != len(recs) {
		return elapsed, fmt.Errorf("%d batches arrived, %d were sent", i, len(recs))
	}
	return elapsed, nil
}

var errMismatch = errors.New("device data differs from the CPU batch")

// goWait waits for a batch the Go way.
func goWait(ctx context.Context, b *async.DeviceBatch) error {
	if err := b.Wait(ctx); err != nil {
		return fmt.Errorf("Wait: %w", err)
	}
	return nil
}
