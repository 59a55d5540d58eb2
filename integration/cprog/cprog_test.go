package cprog_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// build holds what TestMain built once for every test: libvolley.so and the
// C programs, in a temporary directory.
var build struct {
	once sync.Once
	dir  string
	err  error
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// programs builds libvolley.so with `go build -buildmode=c-shared` and the
// C programs against include/ with gcc; a missing compiler is a failure
// naming what to install.
func programs(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		if _, err := exec.LookPath("gcc"); err != nil {
			build.err = fmt.Errorf("gcc not found (install it: apt-get install gcc): %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "cprog")
		if err != nil {
			build.err = err
			return
		}
		build.dir = dir
		root := repoRoot()
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(dir, "libvolley.so"), "./async/cabi/lib")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("building libvolley.so: %v\n%s", err, out)
			return
		}
		for _, p := range []string{"consumer", "producer"} {
			cmd := exec.Command("gcc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Werror", "-pthread",
				"-I", filepath.Join(root, "include"), filepath.Join(root, "integration", "cprog", "testdata", p+".c"),
				"-L", dir, "-lvolley", "-Wl,-rpath,"+dir, "-o", filepath.Join(dir, p))
			if out, err := cmd.CombinedOutput(); err != nil {
				build.err = fmt.Errorf("gcc %s.c: %v\n%s", p, err, out)
				return
			}
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// runProgram runs a built C program with args and fails the test unless it
// exits 0 and prints "ok".
func runProgram(t *testing.T, prog string, args ...string) string {
	t.Helper()
	dir := programs(t)
	cmd := exec.CommandContext(t.Context(), filepath.Join(dir, prog), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil || !bytes.Contains(out.Bytes(), []byte("ok\n")) {
		t.Fatalf("%s %v: %v\n%s", prog, args, err, out.String())
	}
	return out.String()
}

// TestCConsumer runs the C consumer against Volley's producer
// (volley_produce_demo), one mode per rule group.
func TestCConsumer(t *testing.T) {
	for _, tc := range []struct{ mode, rules string }{
		{"basic", "O2 S1 S2 S6 N3 N5 T3 T7 D3 D5 E6"},
		{"reentrant", "S5 R2: request(1) from inside every callback, 5000 times"},
		{"cancel8", "X1 X3 X4 R3 A2 T1: cancel from 8 threads"},
		{"request0", "R4: request(0) -> on_error EINVAL"},
		{"request-1", "R4: request(-1) -> on_error EINVAL"},
		{"idle", "N2, no polling: idle producer < 1% of a core"},
		{"late", "A4 T1 T2: extraction and extract_data(NULL) after release"},
		{"refuse", "S4: release only after a refused schema"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			out := runProgram(t, "consumer", tc.mode)
			t.Logf("%s (%s): %s", tc.mode, tc.rules, out)
		})
	}
}

var nsPerBatch = regexp.MustCompile(`ns_per_batch=([0-9.]+)`)

// TestCConsumerOverhead measures the per-batch cost of a 1-row stream
// through the C ABI with a C consumer (extract inside on_next_task, release,
// request(1)); the target is 3 µs per batch.
func TestCConsumerOverhead(t *testing.T) {
	out := runProgram(t, "consumer", "bench", "100000")
	m := nsPerBatch.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no ns_per_batch in output:\n%s", out)
	}
	ns, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("per-batch overhead across the C ABI (1-row batches, C consumer): %.0f ns", ns)
	if ns > 3000 {
		t.Errorf("per-batch overhead %.0f ns, target <= 3000 ns", ns)
	}
}

// TestCProducer runs a C producer against Volley's consumer (an
// async.Reader behind cabi.Import), counting the C side's allocations.
func TestCProducer(t *testing.T) {
	for _, tc := range []struct{ mode, rules string }{
		{"basic", "O6 S2 S6 N3 T1 T3 E5: data and binary additional metadata intact"},
		{"error", "E2 E3 A5: on_error before on_schema, 35 bytes of error metadata"},
		{"cancel", "N8 T1 X3: consumer cancel, queued tasks discarded"},
		{"cuda-refused", "non-CPU producer refused with ENOTSUP, schema released, release works"},
		{"cuda", "non-CPU producer accepted: device batches released through the C release"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			out := runProgram(t, "producer", tc.mode)
			t.Logf("%s (%s): %s", tc.mode, tc.rules, out)
		})
	}
}
