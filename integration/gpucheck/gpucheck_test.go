package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// build compiles the check as run.sh expects it: without cgo.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gpucheck")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	return bin
}

func runCheck(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), bin, args...).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	code := 0
	if ee != nil {
		code = ee.ExitCode()
	}
	return string(out), code
}

// TestNoGPUFallback runs the check where no driver can be loaded: it must
// say why, verify the CPU fallback and exit with status 3.
func TestNoGPUFallback(t *testing.T) {
	out, code := runCheck(t, build(t), "-cuda-lib", "/nonexistent/gpucheck-test/libcuda.so.1")
	if code != 3 {
		t.Fatalf("exit status %d, want 3\n%s", code, out)
	}
	for _, want := range []string{"inventory: no usable GPU: libcuda.so.1 not found", "PASS fallback", "streamed to cpu because cuda:0 is unusable", "exit 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestAgainstFakeDriver runs every Go step against the fake libcuda of
// devicebuf's tests (device memory is host memory there), so the steps'
// code is exercised without a GPU.
func TestAgainstFakeDriver(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatalf("gcc is needed to build the fake libcuda.so.1 (apt-get install gcc): %v", err)
	}
	lib := filepath.Join(t.TempDir(), "libcuda.so.1")
	if out, err := exec.CommandContext(t.Context(), gcc, "-shared", "-fPIC", "-O1", "-Wl,-Bsymbolic", "-o", lib,
		"../../devicebuf/testdata/fakecuda.c", "-lpthread").CombinedOutput(); err != nil {
		t.Fatalf("building the fake libcuda: %v\n%s", err, out)
	}
	out, code := runCheck(t, build(t), "-cuda-lib", lib, "-gib", "0.03", "-rows", "8192", "-reps", "1", "-target", "0", "-pool-mib", "32", "-slab-mib", "4")
	if code != 0 {
		t.Fatalf("exit status %d, want 0\n%s", code, out)
	}
	for _, want := range []string{`"Fake CUDA Device"`, "CUDA 13.0", "PASS stream", "device memory confirmed by cuPointerGetAttribute",
		"bandwidth: raw pinned", "of raw pinned", "PASS fallback", "RESULT: PASS"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
