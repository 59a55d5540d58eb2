package adbc

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	goadbc "github.com/apache/arrow-adbc/go/adbc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/volleyhq/volley/async"
)

// DSN keys that Volley reads itself; see the package documentation.
const (
	KeyDriver     = "driver"
	KeyEntryPoint = "entrypoint"
	KeyPartitions = "volley.partitions"
	KeyUnordered  = "volley.unordered"
	// StatementPrefix starts DSN keys that are statement options.
	StatementPrefix = "statement."
)

// Config describes one ADBC database. The zero value is not usable: set
// Driver or Library. Config values are copied by the connectors made from
// them; later changes have no effect on those.
type Config struct {
	// Driver is a Go ADBC driver. When nil, Library is loaded through the
	// ADBC driver manager.
	Driver goadbc.Driver
	// Library is the path of a C driver's shared object (the DSN's
	// "driver"), used when Driver is nil.
	Library string
	// EntryPoint is the C driver's init function; empty lets the driver
	// manager pick its default.
	EntryPoint string
	// Options are the ADBC database options, handed to the driver as they
	// are. Secrets among them are redacted everywhere Volley prints them.
	Options map[string]string
	// StatementOptions are set on every statement before its query.
	StatementOptions map[string]string
	// Partitions, when positive, runs queries with ExecutePartitions where
	// the driver supports it and reads up to this many partitions at once,
	// each on its own connection, merged into one stream; at most that many
	// batches are held in memory by the merge. Zero (the default) runs
	// queries with ExecuteQuery as one stream.
	Partitions int
	// Unordered merges partitions first come, first served; the default
	// keeps partition order (all of partition 0's batches, then 1's, ...).
	Unordered bool
	// Allocator allocates the parameter records Volley builds; nil means
	// memory.DefaultAllocator. Result batches are the driver's.
	Allocator memory.Allocator
}

// Validate reports an unusable Config with an error wrapping
// async.ErrInvalid.
func (c *Config) Validate() error {
	if c.Driver == nil && c.Library == "" {
		return fmt.Errorf("%w: adbc: config needs a Go driver or a C driver library path", async.ErrInvalid)
	}
	if c.Partitions < 0 {
		return fmt.Errorf("%w: adbc: negative partitions %d", async.ErrInvalid, c.Partitions)
	}
	for k := range c.Options {
		if k == "" {
			return fmt.Errorf("%w: adbc: empty option key", async.ErrInvalid)
		}
		if c.Driver == nil && (k == KeyDriver || k == KeyEntryPoint) {
			return fmt.Errorf("%w: adbc: option %q: set Config.Library and Config.EntryPoint instead", async.ErrInvalid, k)
		}
	}
	return nil
}

// clone returns a deep copy of c.
func (c Config) clone() Config {
	c.Options = maps.Clone(c.Options)
	c.StatementOptions = maps.Clone(c.StatementOptions)
	return c
}

// databaseOptions are the options handed to NewDatabase: Options plus, for
// C drivers, the driver manager's "driver" and "entrypoint".
func (c *Config) databaseOptions() map[string]string {
	opts := maps.Clone(c.Options)
	if opts == nil {
		opts = map[string]string{}
	}
	if c.Driver == nil {
		opts[KeyDriver] = c.Library
		if c.EntryPoint != "" {
			opts[KeyEntryPoint] = c.EntryPoint
		}
	}
	return opts
}

// String describes c with its secrets redacted, in DSN syntax.
func (c Config) String() string {
	r := c.clone()
	for k, v := range r.Options {
		r.Options[k] = redactValue(k, v)
	}
	for k, v := range r.StatementOptions {
		r.StatementOptions[k] = redactValue(k, v)
	}
	s := FormatDSN(r)
	if c.Driver != nil {
		s = fmt.Sprintf("go-driver=%T;", c.Driver) + s
	}
	return s
}

// redacted is what a secret is replaced with.
const redacted = "REDACTED"

// IsSecret reports whether an option key names a secret: it contains
// "password", "token", "secret" or "auth", in any case.
func IsSecret(key string) bool {
	k := strings.ToLower(key)
	for _, w := range []string{"password", "token", "secret", "auth"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// redactValue hides the value of a secret option, and the password of a
// URI value.
func redactValue(key, value string) string {
	if IsSecret(key) {
		return redacted
	}
	if u, err := url.Parse(value); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), redacted)
			return u.String()
		}
	}
	return value
}

// secrets returns the secret values in c, longest first, for scrubbing
// driver messages.
func (c *Config) secrets() []string {
	var out []string
	add := func(m map[string]string) {
		for k, v := range m {
			if v == "" {
				continue
			}
			if IsSecret(k) {
				out = append(out, v)
			} else if u, err := url.Parse(v); err == nil && u.User != nil {
				if p, has := u.User.Password(); has && p != "" {
					out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
				}
			}
		}
	}
	add(c.Options)
	add(c.StatementOptions)
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out)
}

// ParseDSN parses a DSN (syntax in the package documentation) into a
// Config. Errors wrap async.ErrInvalid and never contain option values.
func ParseDSN(dsn string) (Config, error) {
	pairs, err := splitDSN(dsn)
	if err != nil {
		return Config{}, err
	}
	var c Config
	for _, p := range pairs {
		k, v := p[0], p[1]
		switch {
		case k == KeyDriver:
			c.Library = v
		case k == KeyEntryPoint:
			c.EntryPoint = v
		case k == KeyPartitions:
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return Config{}, fmt.Errorf("%w: adbc: DSN key %s needs a non-negative integer", async.ErrInvalid, KeyPartitions)
			}
			c.Partitions = n
		case k == KeyUnordered:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Config{}, fmt.Errorf("%w: adbc: DSN key %s needs true or false", async.ErrInvalid, KeyUnordered)
			}
			c.Unordered = b
		case strings.HasPrefix(k, StatementPrefix) && len(k) > len(StatementPrefix):
			if c.StatementOptions == nil {
				c.StatementOptions = map[string]string{}
			}
			c.StatementOptions[k[len(StatementPrefix):]] = v
		default:
			if c.Options == nil {
				c.Options = map[string]string{}
			}
			c.Options[k] = v
		}
	}
	if c.Library == "" {
		return Config{}, fmt.Errorf("%w: adbc: DSN lacks %s=<path of the C driver library>", async.ErrInvalid, KeyDriver)
	}
	return c, nil
}

// errDSN is the base of DSN syntax errors.
var errDSN = errors.New("adbc: bad DSN")

// splitDSN splits a DSN into unescaped key/value pairs, refusing repeated
// keys.
func splitDSN(dsn string) ([][2]string, error) {
	var (
		pairs [][2]string
		seen  = map[string]bool{}
		cur   strings.Builder
		key   string
		inVal bool
		n     int // pair number, for messages
	)
	flush := func() error {
		n++
		if !inVal {
			if cur.Len() == 0 {
				return nil // empty pair
			}
			return fmt.Errorf("%w: %w: pair %d has no '='", async.ErrInvalid, errDSN, n)
		}
		if key == "" {
			return fmt.Errorf("%w: %w: pair %d has an empty key", async.ErrInvalid, errDSN, n)
		}
		if seen[key] {
			return fmt.Errorf("%w: %w: key %q repeated", async.ErrInvalid, errDSN, safeKey(key))
		}
		seen[key] = true
		pairs = append(pairs, [2]string{key, cur.String()})
		return nil
	}
	for i := 0; i < len(dsn); i++ {
		ch := dsn[i]
		switch {
		case ch == '\\':
			if i+1 == len(dsn) {
				return nil, fmt.Errorf("%w: %w: trailing backslash", async.ErrInvalid, errDSN)
			}
			i++
			cur.WriteByte(dsn[i])
		case ch == ';':
			if err := flush(); err != nil {
				return nil, err
			}
			cur.Reset()
			key, inVal = "", false
		case ch == '=' && !inVal:
			key, inVal = cur.String(), true
			cur.Reset()
		default:
			cur.WriteByte(ch)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return pairs, nil
}

// safeKey shortens a key for an error message; keys are not secrets, but
// a value mistakenly written as a key might be, so only a prefix is shown.
func safeKey(k string) string {
	if len(k) > 32 {
		return k[:32] + "..."
	}
	return k
}

// escapeDSN escapes the DSN's special characters.
func escapeDSN(s string) string {
	if !strings.ContainsAny(s, `\;=`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\', ';', '=':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// FormatDSN writes c as a DSN that [ParseDSN] reads back to an equal
// Config (Driver and Allocator, which a DSN cannot carry, are left out).
// Keys come in a fixed order: driver, entrypoint, Volley's keys, then the
// options sorted. It does not redact: use [Config.String] for display.
func FormatDSN(c Config) string {
	var parts []string
	add := func(k, v string) { parts = append(parts, escapeDSN(k)+"="+escapeDSN(v)) }
	if c.Library != "" {
		add(KeyDriver, c.Library)
	}
	if c.EntryPoint != "" {
		add(KeyEntryPoint, c.EntryPoint)
	}
	if c.Partitions != 0 {
		add(KeyPartitions, strconv.Itoa(c.Partitions))
	}
	if c.Unordered {
		add(KeyUnordered, "true")
	}
	for _, k := range slices.Sorted(maps.Keys(c.Options)) {
		add(k, c.Options[k])
	}
	for _, k := range slices.Sorted(maps.Keys(c.StatementOptions)) {
		add(StatementPrefix+k, c.StatementOptions[k])
	}
	return strings.Join(parts, ";")
}
