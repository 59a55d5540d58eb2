package driver

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/devicebuf"
)

func TestDefaultPolicy(t *testing.T) {
	const GiB = 1 << 30
	cpu := devicebuf.Info{Device: async.CPU, Name: "CPU", Usable: true}
	gpu := func(id int64, free int64) []devicebuf.Info {
		return []devicebuf.Info{
			{Device: async.Device{Type: async.DeviceCUDAHost, ID: id}, Usable: true},
			{Device: async.Device{Type: async.DeviceCUDA, ID: id}, Usable: true, FreeBytes: free, TotalBytes: 2 * free},
		}
	}
	withGPU := append([]devicebuf.Info{cpu}, gpu(0, 100*GiB)...)
	twoGPUs := append(append([]devicebuf.Info{cpu}, gpu(0, 10*GiB)...), gpu(1, 100*GiB)...)
	deadGPU := []devicebuf.Info{cpu,
		{Device: async.Device{Type: async.DeviceCUDA, ID: 0}, Reason: "cuInit: CUDA_ERROR_NO_DEVICE"}}
	noCUDA := []devicebuf.Info{cpu}
	all := []async.DeviceType{async.DeviceCUDA, async.DeviceCUDAHost, async.DeviceCPU}
	cpuOnly := []async.DeviceType{async.DeviceCPU}
	cudaOnly := []async.DeviceType{async.DeviceCUDA}
	cudaHost := []async.DeviceType{async.DeviceCUDAHost, async.DeviceCPU}
	est := func(b int64) *Estimate { return &Estimate{Rows: b / 100, Bytes: b} }

	cases := []struct {
		name    string
		hint    string
		accept  []async.DeviceType
		inv     []devicebuf.Info
		est     *Estimate // nil: the adapter has no estimate
		want    string    // device, or "" for an error
		reason  string    // substring of the reason or the error
		askEst  bool      // whether the estimate must have been asked for
		errWant error
	}{
		{name: "hint cpu", hint: "cpu", accept: all, inv: withGPU, want: "cpu", reason: "hint: cpu"},
		{name: "hint cuda wins over small estimate", hint: "cuda:0", accept: all, inv: withGPU, est: est(1), want: "cuda:0", reason: "hint"},
		{name: "hint unusable is an error", hint: "cuda:0", accept: all, inv: deadGPU, reason: "CUDA_ERROR_NO_DEVICE", errWant: ErrPlacement},
		{name: "hint missing device is an error", hint: "cuda:3", accept: all, inv: withGPU, reason: "does not exist", errWant: ErrPlacement},
		{name: "hint not accepted is an error", hint: "cuda:0", accept: cpuOnly, inv: withGPU, reason: "accepts only cpu", errWant: ErrPlacement},
		{name: "auto cuda when estimate fits", accept: all, inv: withGPU, est: est(GiB), want: "cuda:0", reason: "fits", askEst: true},
		{name: "auto picks the GPU with most free memory", accept: all, inv: twoGPUs, est: est(GiB), want: "cuda:1", reason: "fits", askEst: true},
		{name: "auto too small for a transfer goes pinned", accept: all, inv: withGPU, est: est(1 << 20), want: "cuda_host:0", reason: "below", askEst: true},
		{name: "auto estimate too big for free memory", accept: all, inv: withGPU, est: est(90 * GiB), want: "cuda_host:0", reason: "does not fit", askEst: true},
		{name: "auto without estimate", accept: all, inv: withGPU, want: "cuda_host:0", reason: "no size estimate", askEst: true},
		{name: "auto consumer takes no cuda: pinned host", accept: cudaHost, inv: withGPU, est: est(GiB), want: "cuda_host:0", reason: "does not accept cuda"},
		{name: "auto cpu-only consumer", accept: cpuOnly, inv: withGPU, est: est(GiB), want: "cpu", reason: "does not accept cuda"},
		{name: "auto no GPU", accept: all, inv: noCUDA, want: "cpu", reason: "no GPU"},
		{name: "auto unusable GPU says why", accept: all, inv: deadGPU, want: "cpu", reason: "CUDA_ERROR_NO_DEVICE"},
		{name: "auto cuda-only consumer gets the GPU whatever the size", accept: cudaOnly, inv: withGPU, est: est(1), want: "cuda:0", reason: "only cuda"},
		{name: "auto cuda-only consumer without GPU fails", accept: cudaOnly, inv: deadGPU, reason: "none is usable", errWant: ErrPlacement},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := QueryOptions{Device: tc.hint}
			hint, has, err := o.hint()
			if err != nil {
				t.Fatal(err)
			}
			asked := false
			req := &PlacementRequest{Hint: hint, HasHint: has, Accept: tc.accept, Inventory: tc.inv,
				Estimate: func(context.Context) (Estimate, bool) {
					asked = true
					if tc.est == nil {
						return Estimate{}, false
					}
					return *tc.est, true
				}}
			pl, err := DefaultPolicy{}.Place(context.Background(), req)
			if tc.errWant != nil {
				if !errors.Is(err, tc.errWant) || !strings.Contains(err.Error(), tc.reason) {
					t.Fatalf("Place = %v, %v; want an error wrapping %v that says %q", pl, err, tc.errWant, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("Place: %v", err)
			}
			if pl.Device.String() != tc.want || !strings.Contains(pl.Reason, tc.reason) {
				t.Fatalf("Place = %s; want %s with a reason that says %q", pl, tc.want, tc.reason)
			}
			if tc.askEst && !asked {
				t.Fatalf("the policy decided without asking for the estimate")
			}
			if tc.hint != "" && asked {
				t.Fatalf("a hinted placement asked for an estimate it does not need")
			}
		})
	}
}

func TestQueryOptionsValidate(t *testing.T) {
	cases := []struct {
		name string
		opt  QueryOption
		want string
	}{
		{"bad ordinal", OnDevice("cuda:x"), `ordinal "x"`},
		{"negative ordinal", OnDevice("cuda:-1"), "non-negative"},
		{"unknown device", OnDevice("tpu"), `unknown device type "tpu"`},
		{"zero window", WithWindow(0), "window must be positive, got 0"},
		{"negative window", WithWindow(-3), "window must be positive, got -3"},
		{"zero batch bytes", WithBatchBytes(0), "batch bytes must be positive"},
		{"negative batch rows", WithBatchRows(-1), "batch rows must be positive"},
		{"negative timeout", WithTimeout(-1), "timeout must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var o QueryOptions
			tc.opt(&o)
			err := o.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v; want an ErrInvalid that says %q", err, tc.want)
			}
		})
	}
	var ok QueryOptions
	for _, opt := range []QueryOption{OnDevice("auto"), OnDevice("cuda_host:0"), WithWindow(2), WithBatchRows(10)} {
		opt(&ok)
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
}
