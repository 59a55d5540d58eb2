package driver

import (
	"fmt"
	"strings"
	"time"

	"github.com/volleyhq/volley/async"
)

// DefaultBatchBytes is the batch size bound used when a query sets none.
const DefaultBatchBytes = 16 << 20

// DefaultWindow is the request window of [DB.Stream] readers.
const DefaultWindow = 4

// QueryOptions are the per-query settings. The zero value works: automatic
// placement, 16 MiB batches, no row bound, a window of 4 for pull readers, no
// timeout.
type QueryOptions struct {
	// Device is the placement hint: "" or "auto" lets the policy decide;
	// "cpu", "cuda_host[:N]" or "cuda[:N]" asks for that device strictly
	// (an unusable hinted device fails the query; it never falls back).
	Device string
	// BatchBytes bounds each batch's size in bytes; 0 means
	// DefaultBatchBytes. Negative is invalid.
	BatchBytes int64
	// BatchRows bounds each batch's row count; 0 means no row bound.
	// Negative is invalid.
	BatchRows int64
	// Window is how many tasks a pull reader ([DB.Stream]) keeps requested;
	// 0 means DefaultWindow. Negative is invalid. Push-style queries are
	// paced by their handler instead.
	Window int
	// Timeout ends the query with ETIMEDOUT after this long; 0 means none.
	Timeout time.Duration
	// Accept overrides the device types the consumer accepts; nil means
	// what the handler declares through async.DeviceAcceptor (CPU only
	// when it declares nothing).
	Accept []async.DeviceType

	// err is the first invalid value an option function was given.
	err error
}

// positive records an error in o when an option function is given n <= 0:
// unlike a zero field (which means the default), an explicit zero is a
// mistake worth naming.
func (o *QueryOptions) positive(what string, n int64) {
	if n <= 0 && o.err == nil {
		o.err = fmt.Errorf("%w: %s must be positive, got %d", ErrInvalid, what, n)
	}
}

// QueryOption sets one field of [QueryOptions].
type QueryOption func(*QueryOptions)

// OnDevice sets the placement hint ("auto", "cpu", "cuda_host:0", "cuda:1").
func OnDevice(device string) QueryOption { return func(o *QueryOptions) { o.Device = device } }

// WithBatchBytes bounds batches by size in bytes.
func WithBatchBytes(n int64) QueryOption {
	return func(o *QueryOptions) { o.positive("batch bytes", n); o.BatchBytes = n }
}

// WithBatchRows bounds batches by row count.
func WithBatchRows(n int64) QueryOption {
	return func(o *QueryOptions) { o.positive("batch rows", n); o.BatchRows = n }
}

// WithWindow sets a pull reader's request window.
func WithWindow(n int) QueryOption {
	return func(o *QueryOptions) { o.positive("window", int64(n)); o.Window = n }
}

// WithTimeout bounds the query's duration.
func WithTimeout(d time.Duration) QueryOption {
	return func(o *QueryOptions) { o.positive("timeout", int64(d)); o.Timeout = d }
}

// WithAccept overrides the device types the consumer accepts.
func WithAccept(types ...async.DeviceType) QueryOption {
	return func(o *QueryOptions) { o.Accept = types }
}

// WithOptions replaces all options with o.
func WithOptions(o QueryOptions) QueryOption { return func(dst *QueryOptions) { *dst = o } }

// Validate reports the first invalid setting, naming it. It wraps ErrInvalid.
func (o QueryOptions) Validate() error {
	if o.err != nil {
		return o.err
	}
	if _, _, err := o.hint(); err != nil {
		return err
	}
	switch {
	case o.BatchBytes < 0:
		return fmt.Errorf("%w: batch bytes must be positive, got %d", ErrInvalid, o.BatchBytes)
	case o.BatchRows < 0:
		return fmt.Errorf("%w: batch rows must be positive, got %d", ErrInvalid, o.BatchRows)
	case o.Window < 0:
		return fmt.Errorf("%w: window must be positive, got %d", ErrInvalid, o.Window)
	case o.Timeout < 0:
		return fmt.Errorf("%w: timeout must not be negative, got %s", ErrInvalid, o.Timeout)
	}
	for _, t := range o.Accept {
		if !t.Valid() {
			return fmt.Errorf("%w: accepted device type %d is not an ABI device type", ErrInvalid, int32(t))
		}
	}
	return nil
}

// hint parses Device: ok is false for automatic placement.
func (o QueryOptions) hint() (dev async.Device, ok bool, err error) {
	s := strings.TrimSpace(o.Device)
	if s == "" || strings.EqualFold(s, "auto") {
		return async.Device{}, false, nil
	}
	dev, err = async.ParseDevice(s)
	if err != nil {
		return async.Device{}, false, fmt.Errorf("invalid device hint: %w", err)
	}
	return dev, true, nil
}

// withDefaults fills the zero settings with their defaults.
func (o QueryOptions) withDefaults() QueryOptions {
	if o.BatchBytes == 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	return o
}

// Config configures a [DB]. The zero value works; each field's doc states
// its default.
type Config struct {
	// MaxOpen bounds the open connections; queries beyond it wait for one.
	// Default 8.
	MaxOpen int
	// MaxIdle bounds the idle connections kept for reuse. Default 2;
	// never more than MaxOpen.
	MaxIdle int
	// IdleTimeout closes connections idle for longer (checked when the pool
	// is used). Default 5 minutes.
	IdleTimeout time.Duration
	// HealthCheckAfter pings (driver Pinger) a connection idle for longer
	// before reusing it. Default 30 seconds; negative checks every reuse.
	HealthCheckAfter time.Duration
	// Devices is the device manager placement consults and movers come
	// from. Default: one shared manager over the machine's devices.
	Devices DeviceManager
	// Policy places each query. Default: [DefaultPolicy] with its defaults.
	Policy Policy
	// Query holds default per-query options; per-call options override them.
	Query QueryOptions
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.MaxOpen == 0 {
		c.MaxOpen = 8
	}
	if c.MaxIdle == 0 {
		c.MaxIdle = 2
	}
	c.MaxIdle = min(c.MaxIdle, c.MaxOpen)
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.HealthCheckAfter == 0 {
		c.HealthCheckAfter = 30 * time.Second
	}
	if c.Policy == nil {
		c.Policy = DefaultPolicy{}
	}
}

// Validate reports the first invalid setting, naming it.
func (c Config) Validate() error {
	switch {
	case c.MaxOpen < 0:
		return fmt.Errorf("%w: MaxOpen must be positive, got %d", ErrInvalid, c.MaxOpen)
	case c.MaxIdle < 0:
		return fmt.Errorf("%w: MaxIdle must not be negative, got %d", ErrInvalid, c.MaxIdle)
	case c.IdleTimeout < 0:
		return fmt.Errorf("%w: IdleTimeout must not be negative, got %s", ErrInvalid, c.IdleTimeout)
	}
	return c.Query.Validate()
}
