package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runPy runs cupy_check.py with args (and extra environment) and returns
// its combined output and exit status.
func runPy(t *testing.T, python string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), python, append([]string{"cupy_check.py"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running %s cupy_check.py: %v", python, err)
	}
	code := 0
	if ee != nil {
		code = ee.ExitCode()
	}
	return out.String(), code
}

// TestCupyCheckWithoutGPU runs step 4's consumer (cupy_check.py, ctypes)
// against a freshly built libvolley.so in the modes that need no GPU: the
// CPU stream (every id read through ctypes: struct layouts, callbacks,
// metadata, release protocol), the simulated GPU (device batches never
// dereferenced), and the real CUDA backend of libvolley over devicebuf's
// fake libcuda with the script's ctypes driver backend (sync event
// dereferenced, pointer attribute, copy back, device memory back to its
// baseline). The CuPy path itself needs a GPU: run.sh runs it there.
func TestCupyCheckWithoutGPU(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed to run integration/gpucheck/cupy_check.py (apt-get install python3): %v", err)
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatalf("gcc is needed to build the fake libcuda.so.1 (apt-get install gcc): %v", err)
	}
	dir := t.TempDir()
	lib := filepath.Join(dir, "libvolley.so")
	build := exec.CommandContext(t.Context(), "go", "build", "-buildmode=c-shared", "-o", lib, "./async/cabi/lib")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildmode=c-shared ./async/cabi/lib: %v\n%s", err, out)
	}
	fakeDir := filepath.Join(dir, "fakecuda")
	if err := os.Mkdir(fakeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(t.Context(), gcc, "-shared", "-fPIC", "-O1", "-Wl,-Bsymbolic", "-o",
		filepath.Join(fakeDir, "libcuda.so.1"), "../../devicebuf/testdata/fakecuda.c", "-lpthread").CombinedOutput(); err != nil {
		t.Fatalf("building the fake libcuda: %v\n%s", err, out)
	}
	fake := []string{"LD_LIBRARY_PATH=" + fakeDir}

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"cpu", nil, []string{"--device", "cpu", "--batches", "20", "--rows", "1000"},
			[]string{"device cpu, 20 batches of 1000 rows", "sum of ids 199990000"}},
		{"cpu-empty-batches", nil, []string{"--device", "cpu", "--batches", "3", "--rows", "0"},
			[]string{"device cpu, 3 batches of 0 rows"}},
		{"simulated-cuda", nil, []string{"--device", "cuda:0", "--simulated", "--batches", "20", "--rows", "1000"},
			[]string{"device cuda:0 (simulated), 20 batches of 1000 rows"}},
		{"simulated-cuda-host", nil, []string{"--device", "cuda_host:0", "--simulated", "--batches", "5", "--rows", "100"},
			[]string{"device cuda_host:0 (simulated), 5 batches of 100 rows"}},
		{"fake-driver-cuda", fake, []string{"--device", "cuda:0", "--backend", "driver", "--batches", "20", "--rows", "1000"},
			[]string{"device cuda:0, 20 batches of 1000 rows", "sum of ids 199990000", "driver backend", "memory types [2]",
				"GPU free memory back to baseline"}},
		{"fake-driver-cuda-host", fake, []string{"--device", "cuda_host:0", "--backend", "driver", "--batches", "5", "--rows", "1000"},
			[]string{"device cuda_host:0, 5 batches of 1000 rows", "sum of ids 12497500"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runPy(t, python, tc.env, append([]string{"--lib", lib, "--timeout", "60"}, tc.args...)...)
			if code != 0 || !strings.Contains(out, "RESULT: PASS") {
				t.Fatalf("cupy_check.py %v: exit status %d, want 0 and PASS\n%s", tc.args, code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			t.Log(strings.TrimSpace(out))
		})
	}

	// A failure must show as FAIL and exit status 2: a device the library
	// refuses (the handler gets its release only, volley_produce_demo_on
	// returns EINVAL) and a CUDA driver that cannot be loaded.
	t.Run("failure", func(t *testing.T) {
		for _, args := range [][]string{
			{"--device", "cuda:7", "--simulated"},                                                    // no such device: the library refuses
			{"--device", "cuda:0", "--backend", "driver", "--cuda-lib", "/nonexistent/libcuda.so.1"}, // no driver
		} {
			out, code := runPy(t, python, nil, append([]string{"--lib", lib, "--timeout", "60", "--batches", "2", "--rows", "10"}, args...)...)
			if code != 2 || !strings.Contains(out, "RESULT: FAIL") {
				t.Errorf("cupy_check.py %v: exit status %d, want 2 and FAIL\n%s", args, code, out)
			}
		}
	})
}
