package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/volleyhq/volley/integration/duckdbtest"
	"github.com/volleyhq/volley/integration/pgtest"
	"go.uber.org/goleak"
)

// The tests run the real binary as a user does: TestMain builds it, the
// embedded DuckDB driver it needs, and one PostgreSQL cluster for the tests
// that query PostgreSQL.
var (
	volleyBin string
	duckdbLib string
	pgServer  *pgtest.Server
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "volley-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	volleyBin = filepath.Join(dir, "volley")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	build := exec.Command(gobin, "build", "-o", volleyBin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building volley: %v\n%s", err, out)
		return 1
	}
	ctx := context.Background()
	if duckdbLib, err = duckdbtest.Build(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "the DuckDB ADBC driver is needed (run `make duckdb`): %v\n", err)
		return 1
	}
	if dsn := os.Getenv(pgtest.EnvDSN); dsn != "" {
		pgServer = pgtest.External(dsn)
	} else if pgServer, err = pgtest.Start(ctx, pgtest.Options{}); err != nil {
		fmt.Fprintf(os.Stderr, "PostgreSQL is needed for the cmd/volley tests: %v\n", err)
		return 1
	}
	code := m.Run()
	if err := pgServer.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	return code
}

// run is one finished run of the binary.
type runResult struct {
	code           int
	stdout, stderr string
}

// opts adjust one run.
type runOpts struct {
	dir string   // working directory; "" is a fresh temporary one
	env []string // extra environment
}

// volley runs the binary with args and waits for it (at most 3 minutes).
func volley(t *testing.T, o runOpts, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, volleyBin, args...)
	cmd.Dir = o.dir
	if cmd.Dir == "" {
		cmd.Dir = t.TempDir()
	}
	cmd.Env = append(testEnv(), o.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("volley %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("volley %s: did not finish: %v\nstderr:\n%s", strings.Join(args, " "), ctx.Err(), stderr.String())
	}
	return runResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// testEnv is the environment of the binary: the test's, with the DuckDB
// driver located and no simulated GPUs unless a test asks.
func testEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, envDuckDBDriver+"=") || strings.HasPrefix(kv, envSimulatedGPUs+"=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, envDuckDBDriver+"="+duckdbLib)
}

// mustRun runs the binary and fails unless it exits 0.
func mustRun(t *testing.T, o runOpts, args ...string) runResult {
	t.Helper()
	r := volley(t, o, args...)
	if r.code != 0 {
		t.Fatalf("volley %s: exit %d\nstderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

// dirEntries lists dir's names.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
