package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// New returns a private cluster for one test (or the server named by
// VOLLEY_TEST_POSTGRES_DSN), stopped and removed by t.Cleanup. A missing
// PostgreSQL installation fails the test with a message naming the package
// to install; it never skips.
func New(t testing.TB) *Server {
	t.Helper()
	if s := fromEnv(); s != nil {
		return s
	}
	s, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// NewPrivate is like [New] but always starts a cluster of its own, also when
// VOLLEY_TEST_POSTGRES_DSN is set (for tests that stop the server).
func NewPrivate(t testing.TB) *Server {
	t.Helper()
	s, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

var shared struct {
	mu  sync.Mutex
	srv *Server
	err error
}

// Shared returns the test binary's shared cluster, starting it on first
// use (or the server named by VOLLEY_TEST_POSTGRES_DSN). It is stopped by
// [Main]; a package that uses Shared must call Main from TestMain. Tests
// sharing it must not depend on each other's objects (use their own table
// names or temporary tables).
func Shared(t testing.TB) *Server {
	t.Helper()
	s, err := SharedServer()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return s
}

// SharedServer is [Shared] for callers without a testing.TB (benchmarks'
// helpers, examples).
func SharedServer() (*Server, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		if s := fromEnv(); s != nil {
			shared.srv = s
		} else {
			shared.srv, shared.err = Start(context.Background(), Options{})
		}
	}
	return shared.srv, shared.err
}

// Main runs the tests, stops the shared cluster if one was started, checks
// for leaked goroutines (goleak, with opts) when the tests passed, and exits.
// Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	shared.mu.Lock()
	if shared.srv != nil {
		if err := shared.srv.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	shared.mu.Unlock()
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
