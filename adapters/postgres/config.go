package postgres

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/volleyhq/volley/async"
)

// NumericMode says how an unconstrained numeric column (numeric without
// precision, e.g. the result of sum(numeric) or a numeric literal) is
// mapped. Constrained numeric(p,s) is always decimal128(p,s), or
// decimal256(p,s) past 38 digits.
type NumericMode uint8

// The numeric modes.
const (
	// NumericString maps unconstrained numeric to utf8, rendered exactly as
	// PostgreSQL's text output (lossless). It is the default.
	NumericString NumericMode = iota
	// NumericFloat64 maps unconstrained numeric to float64 (nearest value).
	NumericFloat64
	// NumericDecimal maps unconstrained numeric to decimal128(38, scale)
	// with Config.NumericScale; values are rounded half away from zero to
	// that scale and a value that does not fit is an error.
	NumericDecimal
)

// SpecialPolicy says what happens to a value Arrow's type cannot hold: a
// numeric NaN or ±Infinity, a date or timestamp of ±infinity, or one out of
// the Arrow type's range.
type SpecialPolicy uint8

// The special-value policies.
const (
	// SpecialNull stores null. It is the default.
	SpecialNull SpecialPolicy = iota
	// SpecialError fails the query with an EOVERFLOW error naming the
	// column.
	SpecialError
	// SpecialClamp stores the type's extreme value (for dates and
	// timestamps: math.MaxInt32/MinInt32 days, MaxInt64/MinInt64
	// microseconds). Numeric NaN/Infinity has no extreme: for numeric,
	// SpecialClamp behaves as SpecialNull, except in NumericFloat64 mode,
	// which stores NaN and ±Inf as they are.
	SpecialClamp
)

// Config holds the adapter's type-mapping policies. The zero value is the
// documented default: unconstrained numeric as string, NaN/Infinity and
// ±infinity dates/timestamps as null.
type Config struct {
	// Numeric is the mapping of unconstrained numeric; default NumericString.
	Numeric NumericMode
	// NumericScale is the scale for NumericDecimal (0..38); default 0.
	NumericScale int32
	// NumericSpecial is the policy for numeric NaN and ±Infinity; default
	// SpecialNull. NumericString does not use it: it renders them as
	// PostgreSQL prints them ("NaN", "Infinity", "-Infinity").
	NumericSpecial SpecialPolicy
	// Infinity is the policy for ±infinity and out-of-range dates and
	// timestamps; default SpecialNull. It is never a silent wrap.
	Infinity SpecialPolicy
	// Allocator allocates the batches' buffers. nil is the adapter's
	// recycling Go allocator, which reuses the large buffers of released
	// batches (up to 128 MiB kept per process) instead of leaving them to
	// the garbage collector, so a stream's memory stays near its live
	// batches.
	Allocator memory.Allocator
}

// Validate reports a setting out of range, wrapping async.ErrInvalid.
func (c Config) Validate() error {
	if c.Numeric > NumericDecimal {
		return fmt.Errorf("%w: postgres: unknown numeric mode %d", async.ErrInvalid, c.Numeric)
	}
	if c.NumericScale < 0 || c.NumericScale > 38 {
		return fmt.Errorf("%w: postgres: numeric scale %d out of 0..38", async.ErrInvalid, c.NumericScale)
	}
	if c.NumericSpecial > SpecialClamp || c.Infinity > SpecialClamp {
		return fmt.Errorf("%w: postgres: unknown special-value policy", async.ErrInvalid)
	}
	return nil
}

// DSN query parameters that set [Config] fields. They are removed from the
// DSN before pgconn parses it, so the server never sees them.
const (
	ParamNumeric        = "volley_numeric"         // string | float64 | decimal
	ParamNumericScale   = "volley_numeric_scale"   // 0..38
	ParamNumericSpecial = "volley_numeric_special" // null | error | clamp
	ParamInfinity       = "volley_infinity"        // null | error | clamp
)

func parsePolicy(v string) (SpecialPolicy, error) {
	switch v {
	case "null":
		return SpecialNull, nil
	case "error":
		return SpecialError, nil
	case "clamp":
		return SpecialClamp, nil
	}
	return 0, fmt.Errorf("%w: postgres: unknown policy %q (want null, error or clamp)", async.ErrInvalid, v)
}

func (c *Config) set(k, v string) error {
	var err error
	switch k {
	case ParamNumeric:
		switch v {
		case "string":
			c.Numeric = NumericString
		case "float64":
			c.Numeric = NumericFloat64
		case "decimal":
			c.Numeric = NumericDecimal
		default:
			return fmt.Errorf("%w: postgres: %s=%q (want string, float64 or decimal)", async.ErrInvalid, k, v)
		}
	case ParamNumericScale:
		n, perr := strconv.ParseInt(v, 10, 32)
		if perr != nil {
			return fmt.Errorf("%w: postgres: %s=%q is not an integer", async.ErrInvalid, k, v)
		}
		c.NumericScale = int32(n)
	case ParamNumericSpecial:
		c.NumericSpecial, err = parsePolicy(v)
	case ParamInfinity:
		c.Infinity, err = parsePolicy(v)
	}
	return err
}

// splitDSN removes the volley_* parameters from dsn (URL or keyword/value
// form) and applies them to a Config.
func splitDSN(dsn string) (string, Config, error) {
	var c Config
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		i := strings.IndexByte(dsn, '?')
		if i < 0 {
			return dsn, c, nil
		}
		q, err := url.ParseQuery(dsn[i+1:])
		if err != nil {
			return "", c, fmt.Errorf("%w: postgres: invalid DSN query string", async.ErrInvalid)
		}
		found := false
		for k, vs := range q {
			if strings.HasPrefix(k, "volley_") {
				found = true
				if err := c.set(k, vs[len(vs)-1]); err != nil {
					return "", c, err
				}
				if !isParam(k) {
					return "", c, fmt.Errorf("%w: postgres: unknown DSN parameter %q", async.ErrInvalid, k)
				}
				q.Del(k)
			}
		}
		if !found {
			return dsn, c, nil
		}
		rest := dsn[:i]
		if enc := q.Encode(); enc != "" {
			rest += "?" + enc
		}
		return rest, c, c.Validate()
	}
	// keyword/value form: volley_ keys never need quoting.
	fields := strings.Fields(dsn)
	kept := fields[:0]
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if ok && strings.HasPrefix(k, "volley_") {
			if !isParam(k) {
				return "", c, fmt.Errorf("%w: postgres: unknown DSN parameter %q", async.ErrInvalid, k)
			}
			if err := c.set(k, v); err != nil {
				return "", c, err
			}
			continue
		}
		kept = append(kept, f)
	}
	if len(kept) == len(strings.Fields(dsn)) {
		return dsn, c, nil
	}
	return strings.Join(kept, " "), c, c.Validate()
}

func isParam(k string) bool {
	switch k {
	case ParamNumeric, ParamNumericScale, ParamNumericSpecial, ParamInfinity:
		return true
	}
	return false
}
