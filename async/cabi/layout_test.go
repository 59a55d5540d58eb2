package cabi

import (
	"runtime"
	"testing"
)

// TestLayout pins the ABI's struct sizes and field offsets on x86-64
// (SPEC.md, "The ABI").
func TestLayout(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Fatalf("layout is pinned for 64-bit targets; GOARCH=%s", runtime.GOARCH)
	}
	want := map[string]uintptr{
		"ArrowAsyncTask":                             16,
		"ArrowAsyncTask.extract_data":                0,
		"ArrowAsyncTask.private_data":                8,
		"ArrowAsyncProducer":                         40,
		"ArrowAsyncProducer.device_type":             0,
		"ArrowAsyncProducer.request":                 8,
		"ArrowAsyncProducer.cancel":                  16,
		"ArrowAsyncProducer.additional_metadata":     24,
		"ArrowAsyncProducer.private_data":            32,
		"ArrowAsyncDeviceStreamHandler":              48,
		"ArrowAsyncDeviceStreamHandler.on_schema":    0,
		"ArrowAsyncDeviceStreamHandler.on_next_task": 8,
		"ArrowAsyncDeviceStreamHandler.on_error":     16,
		"ArrowAsyncDeviceStreamHandler.release":      24,
		"ArrowAsyncDeviceStreamHandler.producer":     32,
		"ArrowAsyncDeviceStreamHandler.private_data": 40,
		"ArrowDeviceArray":                           128,
		"ArrowDeviceArray.array":                     0,
		"ArrowDeviceArray.device_id":                 80,
		"ArrowDeviceArray.device_type":               88,
		"ArrowDeviceArray.sync_event":                96,
		"ArrowDeviceArray.reserved":                  104,
		"ArrowDeviceArray.reserved.len":              3,
		"ArrowDeviceArray.reserved.elem":             8,
		"ArrowArray":                                 80,
		"ArrowArray.release":                         64,
		"ArrowArray.private_data":                    72,
		"ArrowSchema":                                72,
		"ArrowSchema.release":                        56,
		"ArrowSchema.private_data":                   64,
	}
	got := Layout()
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: not reported", k)
		} else if g != w {
			t.Errorf("%s = %d, want %d", k, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Layout reports %d entries, the test pins %d", len(got), len(want))
	}
}
