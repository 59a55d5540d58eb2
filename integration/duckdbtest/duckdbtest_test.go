package duckdbtest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDriverPath(t *testing.T) {
	p := DriverPath(t)
	if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
		t.Fatalf("DriverPath = %s: %v", p, err)
	}
	if again := DriverPath(t); again != p {
		t.Errorf("second DriverPath = %s, first %s", again, p)
	}
}

// TestLockExcludes: a second holder of the cache lock (as another test
// binary would be) waits until the first lets go.
func TestLockExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".lock")
	unlock, err := lock(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func())
	go func() {
		u, err := lock(path)
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- u
	}()
	select {
	case <-got:
		t.Fatal("the lock was taken twice")
	case <-time.After(200 * time.Millisecond): // negative check: nothing to wait for
	}
	unlock()
	select {
	case u := <-got:
		if u != nil {
			u()
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second locker never got the lock")
	}
}
