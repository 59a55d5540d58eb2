package async

import (
	"fmt"
	"strconv"
	"strings"
)

// DeviceType is the ArrowDeviceType of the C Device Data Interface: where the
// buffers of an array live. The values are the ABI's and must not change.
type DeviceType int32

// The device types of the C Device Data Interface (shared/SPEC.md, "The ABI").
const (
	DeviceCPU         DeviceType = 1
	DeviceCUDA        DeviceType = 2
	DeviceCUDAHost    DeviceType = 3
	DeviceOpenCL      DeviceType = 4
	DeviceVulkan      DeviceType = 7
	DeviceMetal       DeviceType = 8
	DeviceVPI         DeviceType = 9
	DeviceROCM        DeviceType = 10
	DeviceROCMHost    DeviceType = 11
	DeviceExtDev      DeviceType = 12
	DeviceCUDAManaged DeviceType = 13
	DeviceOneAPI      DeviceType = 14
	DeviceWebGPU      DeviceType = 15
	DeviceHexagon     DeviceType = 16
)

var deviceTypeNames = map[DeviceType]string{
	DeviceCPU:         "cpu",
	DeviceCUDA:        "cuda",
	DeviceCUDAHost:    "cuda_host",
	DeviceOpenCL:      "opencl",
	DeviceVulkan:      "vulkan",
	DeviceMetal:       "metal",
	DeviceVPI:         "vpi",
	DeviceROCM:        "rocm",
	DeviceROCMHost:    "rocm_host",
	DeviceExtDev:      "ext_dev",
	DeviceCUDAManaged: "cuda_managed",
	DeviceOneAPI:      "oneapi",
	DeviceWebGPU:      "webgpu",
	DeviceHexagon:     "hexagon",
}

// DeviceTypes lists every device type the ABI defines, in ABI order.
func DeviceTypes() []DeviceType {
	return []DeviceType{DeviceCPU, DeviceCUDA, DeviceCUDAHost, DeviceOpenCL, DeviceVulkan,
		DeviceMetal, DeviceVPI, DeviceROCM, DeviceROCMHost, DeviceExtDev, DeviceCUDAManaged,
		DeviceOneAPI, DeviceWebGPU, DeviceHexagon}
}

// String returns the lower-case name used in device strings ("cpu",
// "cuda_host", ...), or "device_type(N)" for a value the ABI does not define.
func (t DeviceType) String() string {
	if s, ok := deviceTypeNames[t]; ok {
		return s
	}
	return "device_type(" + strconv.Itoa(int(t)) + ")"
}

// Valid reports whether t is one of the ABI's device types.
func (t DeviceType) Valid() bool {
	_, ok := deviceTypeNames[t]
	return ok
}

// HostAccessible reports whether buffers of this device type can be read
// directly by host code (CPU, pinned host and managed memory).
func (t DeviceType) HostAccessible() bool {
	switch t {
	case DeviceCPU, DeviceCUDAHost, DeviceROCMHost, DeviceCUDAManaged:
		return true
	}
	return false
}

// hasOrdinal reports whether devices of this type are numbered (a GPU ordinal).
func (t DeviceType) hasOrdinal() bool { return t != DeviceCPU }

// ParseDeviceType parses a device type name as [DeviceType.String] writes it
// (case-insensitive; "-" is accepted for "_").
func ParseDeviceType(s string) (DeviceType, error) {
	name := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_")
	for t, n := range deviceTypeNames {
		if n == name {
			return t, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown device type %q (known: %s)", ErrInvalid, s, knownDeviceTypes())
}

func knownDeviceTypes() string {
	names := make([]string, 0, len(deviceTypeNames))
	for _, t := range DeviceTypes() {
		names = append(names, t.String())
	}
	return strings.Join(names, ", ")
}

// Device names one device: a type and, for numbered devices, an ordinal.
// The CPU has ID -1 (SPEC.md D5); CUDA and CUDA_HOST carry the CUDA ordinal.
// The zero value is not a valid device; use [CPU] for the host.
type Device struct {
	Type DeviceType
	ID   int64
}

// CPU is the host device.
var CPU = Device{Type: DeviceCPU, ID: -1}

// String writes the device as "cpu" or "TYPE:ID" ("cuda:0", "cuda_host:0"),
// the form [ParseDevice] reads.
func (d Device) String() string {
	if d.Type == DeviceCPU {
		return "cpu"
	}
	return d.Type.String() + ":" + strconv.FormatInt(d.ID, 10)
}

// ParseDevice parses "cpu", "TYPE" (ordinal 0) or "TYPE:N" with a
// non-negative decimal ordinal. "cuda:x", a negative ordinal or an unknown
// type is an error wrapping [ErrInvalid] that names the problem.
func ParseDevice(s string) (Device, error) {
	typ, ord, hasOrd := strings.Cut(strings.TrimSpace(s), ":")
	t, err := ParseDeviceType(typ)
	if err != nil {
		return Device{}, fmt.Errorf("device %q: %w", s, err)
	}
	if !t.hasOrdinal() {
		if hasOrd && ord != "-1" {
			return Device{}, fmt.Errorf("%w: device %q: the cpu has no ordinal", ErrInvalid, s)
		}
		return CPU, nil
	}
	if !hasOrd {
		return Device{Type: t, ID: 0}, nil
	}
	id, err := strconv.ParseInt(ord, 10, 32)
	if err != nil || id < 0 || strings.HasPrefix(ord, "+") {
		return Device{}, fmt.Errorf("%w: device %q: ordinal %q is not a non-negative integer", ErrInvalid, s, ord)
	}
	return Device{Type: t, ID: id}, nil
}
