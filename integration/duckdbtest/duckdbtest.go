// Package duckdbtest gives tests the DuckDB ADBC C driver: [DriverPath]
// returns the path of the shared object, building it on demand into the
// cache directory ($VOLLEY_CACHE/duckdb, else <repo>/.cache/duckdb) when it
// is missing or out of date. A file lock in the cache directory keeps
// parallel test binaries from building it twice or reading it half-written.
//
// Building needs a C compiler (Debian: apt-get install gcc g++) and the
// go.duckdb.org/libduckdb module in the module cache (`go mod download`
// fetches it); a missing prerequisite fails the test with a message that
// says what to install.
package duckdbtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/apache/arrow-adbc/go/adbc"
	"github.com/apache/arrow-adbc/go/adbc/drivermgr"
	"github.com/volleyhq/volley/integration/duckdbbuild/build"
)

// EntryPoint is the driver's ADBC entry point (duckdb_adbc_init).
const EntryPoint = build.EntryPoint

var (
	once     sync.Mutex
	built    string
	buildErr error
)

// DriverPath returns the path of the DuckDB ADBC driver, building it if
// needed; any failure fails tb at once.
func DriverPath(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	if t, ok := tb.(interface{ Context() context.Context }); ok {
		ctx = t.Context()
	}
	p, err := Build(ctx)
	if err != nil {
		tb.Fatalf("duckdbtest: the DuckDB ADBC driver is not available: %v", err)
	}
	return p
}

// Build returns the driver's path, building it under the cache lock when
// it is missing or out of date. A success is remembered for the life of
// the process; a failure is retried on the next call.
func Build(ctx context.Context) (string, error) {
	once.Lock()
	defer once.Unlock()
	if built != "" {
		return built, nil
	}
	built, buildErr = buildLocked(ctx)
	if buildErr != nil {
		built = ""
	}
	return built, buildErr
}

// CacheDir returns the directory the driver is built into:
// $VOLLEY_CACHE/duckdb, else <repo>/.cache/duckdb where <repo> is the
// nearest directory above the working directory that holds go.mod.
func CacheDir() (string, error) {
	if c := os.Getenv("VOLLEY_CACHE"); c != "" {
		return filepath.Join(c, "duckdb"), nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".cache", "duckdb"), nil
}

func buildLocked(ctx context.Context) (string, error) {
	out, err := CacheDir()
	if err != nil {
		return "", err
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", fmt.Errorf("duckdbtest: %w", err)
	}
	mod, err := build.ModuleDir(ctx, root)
	if err != nil {
		return "", err
	}
	if build.Current(out, mod) {
		return build.Path(out), nil
	}
	unlock, err := lock(filepath.Join(out, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	return build.Build(ctx, build.Options{Out: out, ModuleDir: mod})
}

// lock takes an exclusive flock on path, blocking until it is free.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("duckdbtest: lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("duckdbtest: lock: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// repoRoot finds the nearest directory at or above the working directory
// with a go.mod file.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("duckdbtest: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("duckdbtest: no go.mod above the working directory; set VOLLEY_CACHE")
		}
		dir = parent
	}
}

// Statement opens a database on file (":memory:" for none), a connection
// and a statement through the driver manager; they are closed when tb
// ends. Any failure fails tb at once.
func Statement(tb testing.TB, file string) adbc.Statement {
	tb.Helper()
	st, closeAll := open(tb, file)
	tb.Cleanup(closeAll)
	return st
}

// Exec runs sql (no result) against the DuckDB database file through the
// driver, and closes the file again; any failure fails tb at once.
func Exec(tb testing.TB, file, sql string) {
	tb.Helper()
	st, closeAll := open(tb, file)
	defer closeAll()
	if err := st.SetSqlQuery(sql); err != nil {
		tb.Fatal(err)
	}
	if _, err := st.ExecuteUpdate(context.Background()); err != nil {
		tb.Fatal(err)
	}
}

// open opens the database, a connection and a statement; closeAll closes
// them (also after a failure has been reported, through tb.Cleanup).
func open(tb testing.TB, file string) (st adbc.Statement, closeAll func()) {
	tb.Helper()
	var closers []func() error
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
		closers = nil
	}
	tb.Cleanup(closeAll) // in case a Fatal below skips the caller's close
	db, err := drivermgr.Driver{}.NewDatabase(map[string]string{"driver": DriverPath(tb), "entrypoint": EntryPoint, "path": file})
	if err != nil {
		tb.Fatal(err)
	}
	closers = append(closers, db.Close)
	cn, err := db.Open(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	closers = append(closers, cn.Close)
	if st, err = cn.NewStatement(); err != nil {
		tb.Fatal(err)
	}
	closers = append(closers, st.Close)
	return st, closeAll
}
