package async_test

import (
	"errors"
	"testing"

	"github.com/volleyhq/volley/async"
)

func TestParseDevice(t *testing.T) {
	cases := []struct {
		in   string
		want async.Device
		bad  bool
	}{
		{in: "cpu", want: async.CPU},
		{in: "CPU", want: async.CPU},
		{in: "cpu:-1", want: async.CPU},
		{in: "cuda", want: async.Device{Type: async.DeviceCUDA, ID: 0}},
		{in: "cuda:1", want: async.Device{Type: async.DeviceCUDA, ID: 1}},
		{in: "cuda_host:0", want: async.Device{Type: async.DeviceCUDAHost, ID: 0}},
		{in: "cuda-host:2", want: async.Device{Type: async.DeviceCUDAHost, ID: 2}},
		{in: "cuda_managed:0", want: async.Device{Type: async.DeviceCUDAManaged, ID: 0}},
		{in: "cuda:x", bad: true},
		{in: "cuda:-1", bad: true},
		{in: "cuda:+1", bad: true},
		{in: "cuda:", bad: true},
		{in: "cpu:0", bad: true},
		{in: "tpu:0", bad: true},
		{in: "", bad: true},
	}
	for _, c := range cases {
		got, err := async.ParseDevice(c.in)
		if c.bad {
			if !errors.Is(err, async.ErrInvalid) {
				t.Errorf("ParseDevice(%q) = %v, %v; want an error wrapping ErrInvalid", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseDevice(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
		if back, err := async.ParseDevice(got.String()); err != nil || back != got {
			t.Errorf("ParseDevice(%q.String() = %q) = %v, %v", c.in, got.String(), back, err)
		}
	}
	for _, dt := range async.DeviceTypes() {
		if got, err := async.ParseDeviceType(dt.String()); err != nil || got != dt {
			t.Errorf("ParseDeviceType(%q) = %v, %v", dt.String(), got, err)
		}
	}
}
