package driver

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/devicebuf"
)

// The keys of the placement decision in a stream's additional metadata
// (async.Producer.AdditionalMetadata) and in [Placement.Metadata].
const (
	// MetaDevice is the device the batches land on ("cpu", "cuda:0").
	MetaDevice = "volley.device"
	// MetaReason is the policy's human-readable reason.
	MetaReason = "volley.placement.reason"
	// MetaHint is the query's device hint ("auto" when none).
	MetaHint = "volley.placement.hint"
	// MetaEstimateBytes is the result size estimate the policy used, in
	// bytes; absent when none was asked for or available.
	MetaEstimateBytes = "volley.placement.estimate_bytes"
)

// DeviceManager is what placement needs from the device layer; a
// *devicebuf.Manager implements it.
type DeviceManager interface {
	Inventory(ctx context.Context) []devicebuf.Info
	Mover(ctx context.Context, dev async.Device, opts devicebuf.MoverOptions) (async.Mover, error)
}

// PlacementRequest is what a [Policy] decides from.
type PlacementRequest struct {
	// Hint is the query's device hint; HasHint is false for automatic
	// placement.
	Hint    async.Device
	HasHint bool
	// Accept are the device types the consumer takes, best first.
	Accept []async.DeviceType
	// Schema is the result's schema.
	Schema *arrow.Schema
	// Inventory lists the machine's devices, CPU first.
	Inventory []devicebuf.Info
	// Estimate asks the adapter for a result size estimate. It runs the
	// estimate at most once and reports ok=false when the adapter has none.
	Estimate func(ctx context.Context) (est Estimate, ok bool)
}

// Placement is a policy's decision.
type Placement struct {
	// Device is where the query's batches land.
	Device async.Device
	// Reason says why, for people.
	Reason string
	// CPULabelledPinned asks for pinned host memory labelled as CPU, for
	// consumers that take CPU arrays only.
	CPULabelledPinned bool
	// EstimateBytes is the estimate the decision used, or -1.
	EstimateBytes int64
}

// String is "DEVICE (REASON)".
func (p Placement) String() string {
	if p.Reason == "" {
		return p.Device.String()
	}
	return p.Device.String() + " (" + p.Reason + ")"
}

// Metadata returns the decision as additional-metadata pairs.
func (p Placement) metadata(hint string) arrow.Metadata {
	keys := []string{MetaDevice, MetaReason, MetaHint}
	vals := []string{p.Device.String(), p.Reason, hint}
	if p.EstimateBytes >= 0 {
		keys = append(keys, MetaEstimateBytes)
		vals = append(vals, strconv.FormatInt(p.EstimateBytes, 10))
	}
	return arrow.NewMetadata(keys, vals)
}

// Policy decides where one query's batches land. It must be safe for
// concurrent use.
type Policy interface {
	Place(ctx context.Context, req *PlacementRequest) (Placement, error)
}

// PolicyFunc adapts a function to [Policy].
type PolicyFunc func(ctx context.Context, req *PlacementRequest) (Placement, error)

// Place calls f.
func (f PolicyFunc) Place(ctx context.Context, req *PlacementRequest) (Placement, error) {
	return f(ctx, req)
}

// DefaultPolicy is Volley's placement policy:
//
//  1. An explicit hint wins, strictly: a hinted device that does not exist,
//     is unusable, or that the consumer does not accept fails the query with
//     ErrPlacement; it never falls back.
//  2. Otherwise CUDA, when a usable GPU exists, the consumer accepts CUDA, the
//     adapter's estimate is known, fits in the GPU's free memory with
//     Headroom to spare, and is at least MinTransferBytes (smaller results
//     are not worth a transfer). The GPU with the most free memory wins.
//  3. Otherwise pinned host memory (CUDA_HOST) when the consumer accepts it
//     and a usable GPU is present.
//  4. Otherwise the CPU, when the consumer accepts it.
//  5. A consumer that accepts only CUDA gets a usable GPU whatever the
//     estimate; with none, the query fails with ErrPlacement.
//
// The zero value uses the documented defaults.
type DefaultPolicy struct {
	// MinTransferBytes is the smallest estimate worth moving to a GPU.
	// Default 64 MiB.
	MinTransferBytes int64
	// Headroom is the fraction of a GPU's free memory kept spare. Default
	// 0.25 (an estimate must fit in 75% of the free memory).
	Headroom float64
}

func (p DefaultPolicy) defaults() DefaultPolicy {
	if p.MinTransferBytes <= 0 {
		p.MinTransferBytes = 64 << 20
	}
	if p.Headroom <= 0 || p.Headroom >= 1 {
		p.Headroom = 0.25
	}
	return p
}

// Place implements [Policy].
func (p DefaultPolicy) Place(ctx context.Context, req *PlacementRequest) (Placement, error) {
	p = p.defaults()
	accepts := func(t async.DeviceType) bool { return slices.Contains(req.Accept, t) }
	if req.HasHint {
		return placeHint(req, accepts)
	}
	var gpus []devicebuf.Info
	for _, in := range req.Inventory {
		if in.Device.Type == async.DeviceCUDA && in.Usable {
			gpus = append(gpus, in)
		}
	}
	// The GPU with the most free memory.
	var best *devicebuf.Info
	for i := range gpus {
		if best == nil || gpus[i].FreeBytes > best.FreeBytes {
			best = &gpus[i]
		}
	}
	why := "no usable GPU"
	if best == nil {
		why = noGPUReason(req.Inventory)
	}
	estBytes := int64(-1)
	if best != nil && accepts(async.DeviceCUDA) {
		est, ok := req.Estimate(ctx)
		switch {
		case !accepts(async.DeviceCPU) && !accepts(async.DeviceCUDAHost):
			return Placement{Device: best.Device, EstimateBytes: est.orUnknown(ok),
				Reason: "auto: the consumer accepts only cuda; " + best.Device.String() + " is usable"}, nil
		case !ok:
			why = "no size estimate for the result"
		default:
			estBytes = est.Bytes
			fits := float64(best.FreeBytes) * (1 - p.Headroom)
			switch {
			case float64(est.Bytes) > fits:
				why = fmt.Sprintf("%s estimate does not fit in %s of %s free on %s", FormatBytes(est.Bytes),
					FormatBytes(int64(fits)), FormatBytes(best.FreeBytes), best.Device)
			case est.Bytes < p.MinTransferBytes:
				why = fmt.Sprintf("%s estimate is below the %s worth a transfer", FormatBytes(est.Bytes), FormatBytes(p.MinTransferBytes))
			default:
				return Placement{Device: best.Device, EstimateBytes: estBytes, Reason: fmt.Sprintf(
					"auto: %s estimate fits in %s free on %s", FormatBytes(est.Bytes), FormatBytes(best.FreeBytes), best.Device)}, nil
			}
		}
	} else if best != nil {
		why = "the consumer does not accept cuda"
	}
	if best != nil && accepts(async.DeviceCUDAHost) {
		host := async.Device{Type: async.DeviceCUDAHost, ID: best.Device.ID}
		if in, ok := find(req.Inventory, host); ok && in.Usable {
			return Placement{Device: host, EstimateBytes: estBytes, Reason: "auto: pinned host memory; " + why}, nil
		}
	}
	if accepts(async.DeviceCPU) {
		return Placement{Device: async.CPU, EstimateBytes: estBytes, Reason: "auto: cpu; " + why}, nil
	}
	return Placement{}, fmt.Errorf("%w: the consumer accepts %s, and none is usable: %s", ErrPlacement, typesText(req.Accept), why)
}

func (e Estimate) orUnknown(ok bool) int64 {
	if !ok {
		return -1
	}
	return e.Bytes
}

func placeHint(req *PlacementRequest, accepts func(async.DeviceType) bool) (Placement, error) {
	h := req.Hint
	if !accepts(h.Type) {
		return Placement{}, fmt.Errorf("%w: device %s was asked for, but the consumer accepts only %s", ErrPlacement, h, typesText(req.Accept))
	}
	in, ok := find(req.Inventory, h)
	switch {
	case !ok:
		return Placement{}, fmt.Errorf("%w: device %s was asked for and does not exist (devices: %s)", ErrPlacement, h, devicesText(req.Inventory))
	case !in.Usable:
		return Placement{}, fmt.Errorf("%w: device %s was asked for and is unusable: %s", ErrPlacement, h, in.Reason)
	}
	return Placement{Device: h, EstimateBytes: -1, Reason: "hint: " + h.String() + " was asked for"}, nil
}

func find(inv []devicebuf.Info, d async.Device) (devicebuf.Info, bool) {
	for _, in := range inv {
		if in.Device == d {
			return in, true
		}
	}
	return devicebuf.Info{}, false
}

func noGPUReason(inv []devicebuf.Info) string {
	for _, in := range inv {
		if in.Device.Type == async.DeviceCUDA && !in.Usable {
			return "no usable GPU (" + in.Device.String() + ": " + in.Reason + ")"
		}
	}
	for _, in := range inv {
		if in.Device.Type != async.DeviceCPU && !in.Usable && in.Reason != "" {
			return "no usable GPU (" + in.Reason + ")"
		}
	}
	return "no GPU"
}

func devicesText(inv []devicebuf.Info) string {
	s := ""
	for i, in := range inv {
		if i > 0 {
			s += ", "
		}
		s += in.Device.String()
	}
	return s
}

func typesText(ts []async.DeviceType) string {
	s := ""
	for i, t := range ts {
		if i > 0 {
			s += ", "
		}
		s += t.String()
	}
	if s == "" {
		return "nothing"
	}
	return s
}

// FormatBytes writes n in binary units ("1.2 GiB"), as placement reasons
// do.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
