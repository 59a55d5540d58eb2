package capi_test

import (
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"go.uber.org/goleak"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/async/asynctest"
	"github.com/volleyhq/volley/async/cabi"
	"github.com/volleyhq/volley/async/cabi/capi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDevicesJSON(t *testing.T) {
	p := capi.LibDevicesJSON()
	if p == nil {
		t.Fatal("volley_devices_json returned NULL")
	}
	s := unsafe.String((*byte)(p), strlen(p))
	var devs []map[string]any
	err := json.Unmarshal([]byte(s), &devs)
	cabi.Free(p)
	if err != nil {
		t.Fatalf("devices JSON %q: %v", s, err)
	}
	if len(devs) == 0 || devs[0]["device"] != "cpu" || devs[0]["usable"] != true {
		t.Errorf("devices %v, want the usable cpu first", devs)
	}
}

func strlen(p unsafe.Pointer) int {
	n := 0
	for *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	return n
}

func TestOpenUnknownDriver(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b, rc := capi.LibOpen("no-such-driver", "x")
	if b != nil || rc == 0 {
		t.Fatalf("volley_open of an unknown driver = %p, %d", b, rc)
	}
	if msg := cabi.LastErrorString(); !strings.Contains(msg, "forgotten import?") {
		t.Errorf("last error %q, want the registry's unknown-driver message", msg)
	}
}

// TestQueryBadHandle: a query on a NULL database still releases the C
// handler exactly once, after on_error.
func TestQueryBadHandle(t *testing.T) {
	before := cabi.LiveCAllocations()
	h := &asynctest.Handler{}
	q, rc := capi.LibQuery(nil, "SELECT 1", capi.QueryOptions{}, unsafe.Pointer(cabi.Import(h)))
	if q != nil || async.Errno(rc) != async.EINVAL {
		t.Fatalf("volley_query(NULL db) = %p, %d; want NULL, EINVAL", q, rc)
	}
	if h.Count(asynctest.EvRelease) != 1 || h.Count(asynctest.EvError) != 1 {
		t.Errorf("handler saw %v; want one error and one release", h.Events())
	}
	if v := h.Violations(); len(v) > 0 {
		t.Errorf("protocol violations: %v", v)
	}
	if n := cabi.LiveCAllocations(); n != before {
		t.Errorf("%d C allocations left", n-before)
	}
	if !errors.Is(cabi.ErrNilHandle, async.ErrInvalid) {
		t.Error("ErrNilHandle does not wrap ErrInvalid")
	}
}
