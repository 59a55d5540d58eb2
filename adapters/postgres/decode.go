package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/volleyhq/volley/async"
)

// decoder appends one wire value (binary format) to its builder. b is nil
// for NULL. b is borrowed: a decoder copies what it keeps (the builders copy)
// and retains nothing. Decoders are planned once per column from the
// statement's description and are used by one goroutine.
type decoder interface {
	decode(b []byte) error
}

// unsafeAppender is a decoder of a top-level fixed-width column whose
// builder's capacity the batcher guarantees, so that it may append without
// a capacity check (UnsafeAppend).
type unsafeAppender interface {
	setUnsafe()
}

var (
	errMalformed = fmt.Errorf("%w: postgres: malformed binary value", async.ErrProtocol)
	errSpecial   = async.NewError(async.EOVERFLOW, "postgres: value not representable in the column's Arrow type", arrow.Metadata{})
)

func malformed(what string, b []byte) error {
	return fmt.Errorf("%w: %s (%d bytes)", errMalformed, what, len(b))
}

// PostgreSQL epochs are 2000-01-01; Arrow's are 1970-01-01.
const (
	pgEpochDays   = 10957
	pgEpochMicros = pgEpochDays * 86400 * 1000000
)

// plan returns the decoder for type t (typmod) appending to bld, which must
// have been made for arrowType(t, typmod, cfg).
func plan(t *pgType, typmod int32, bld array.Builder, cfg *Config, depth int) (decoder, error) {
	if eb, ok := bld.(*array.ExtensionBuilder); ok {
		bld = eb.Builder
	} else if eb, ok := bld.(interface{ StorageBuilder() array.Builder }); ok {
		bld = eb.StorageBuilder()
	}
	if t == nil || depth > 16 {
		return &binaryDec{bld.(*array.BinaryBuilder)}, nil
	}
	switch t.kind {
	case kBool:
		return &boolDec{b: bld.(*array.BooleanBuilder)}, nil
	case kInt2:
		return &int16Dec{b: bld.(*array.Int16Builder)}, nil
	case kInt4:
		return &int32Dec{b: bld.(*array.Int32Builder)}, nil
	case kInt8:
		return &int64Dec{b: bld.(*array.Int64Builder)}, nil
	case kOID:
		return &uint32Dec{b: bld.(*array.Uint32Builder)}, nil
	case kFloat4:
		return &float32Dec{b: bld.(*array.Float32Builder)}, nil
	case kFloat8:
		return &float64Dec{b: bld.(*array.Float64Builder)}, nil
	case kNumeric:
		switch b := bld.(type) {
		case *array.Decimal128Builder:
			dt := b.Type().(*arrow.Decimal128Type)
			return &numeric128Dec{b: b, prec: dt.Precision, scale: dt.Scale, special: cfg.NumericSpecial}, nil
		case *array.Decimal256Builder:
			dt := b.Type().(*arrow.Decimal256Type)
			return &numeric256Dec{b: b, prec: dt.Precision, scale: dt.Scale, special: cfg.NumericSpecial}, nil
		case *array.Float64Builder:
			return &numericFloatDec{b: b, special: cfg.NumericSpecial}, nil
		case *array.StringBuilder:
			return &numericStringDec{b: b}, nil
		}
	case kMoney:
		return &moneyDec{b: bld.(*array.Decimal128Builder)}, nil
	case kText, kJSON:
		return &textDec{bldString(bld)}, nil
	case kJSONB:
		return &jsonbDec{bldString(bld)}, nil
	case kChar:
		return &charDec{bldString(bld)}, nil
	case kEnum:
		return &enumDec{bld.(*array.BinaryDictionaryBuilder)}, nil
	case kBytea:
		return &binaryDec{bld.(*array.BinaryBuilder)}, nil
	case kUUID:
		return &uuidDec{bld.(*array.FixedSizeBinaryBuilder)}, nil
	case kDate:
		return &dateDec{b: bld.(*array.Date32Builder), policy: cfg.Infinity}, nil
	case kTime:
		return &timeDec{b: bld.(*array.Time64Builder)}, nil
	case kTimeTZ:
		sb := bld.(*array.StructBuilder)
		return &timetzDec{sb, sb.FieldBuilder(0).(*array.Time64Builder), sb.FieldBuilder(1).(*array.Int32Builder)}, nil
	case kTimestamp, kTimestampTZ:
		return &timestampDec{b: bld.(*array.TimestampBuilder), policy: cfg.Infinity}, nil
	case kInterval:
		return &intervalDec{bld.(*array.MonthDayNanoIntervalBuilder)}, nil
	case kInet:
		return &inetDec{b: bldString(bld)}, nil
	case kMacaddr:
		return &macDec{b: bldString(bld)}, nil
	case kBit:
		return &bitDec{b: bldString(bld)}, nil
	case kDomain:
		return plan(t.elem, t.typmod, bld, cfg, depth+1)
	case kArray:
		lb := bld.(*array.ListBuilder)
		ed, err := plan(t.elem, typmod, lb.ValueBuilder(), cfg, depth+1)
		if err != nil {
			return nil, err
		}
		return &arrayDec{b: lb, elem: ed}, nil
	case kRange:
		sb := bld.(*array.StructBuilder)
		lo, err := plan(t.elem, -1, sb.FieldBuilder(0), cfg, depth+1)
		if err != nil {
			return nil, err
		}
		hi, err := plan(t.elem, -1, sb.FieldBuilder(1), cfg, depth+1)
		if err != nil {
			return nil, err
		}
		return &rangeDec{b: sb, lower: lo, upper: hi, lb: sb.FieldBuilder(0), ub: sb.FieldBuilder(1),
			flags: sb.FieldBuilder(2).(*array.Uint8Builder)}, nil
	case kComposite:
		sb := bld.(*array.StructBuilder)
		cd := &compositeDec{b: sb, fields: make([]decoder, len(t.fields)), name: t.name}
		for i, f := range t.fields {
			d, err := plan(f.typ, f.typmod, sb.FieldBuilder(i), cfg, depth+1)
			if err != nil {
				return nil, err
			}
			cd.fields[i] = d
		}
		return cd, nil
	}
	if b, ok := bld.(*array.BinaryBuilder); ok {
		return &binaryDec{b}, nil
	}
	return nil, fmt.Errorf("%w: postgres: no decoder for %s into %s", async.ErrInvalid, t.name, bld.Type())
}

func bldString(b array.Builder) *array.BinaryBuilder {
	if s, ok := b.(*array.StringBuilder); ok {
		return s.BinaryBuilder
	}
	return b.(*array.BinaryBuilder)
}

type boolDec struct {
	b      *array.BooleanBuilder
	unsafe bool // capacity is guaranteed by the batcher
}

func (d *boolDec) setUnsafe() { d.unsafe = true }

func (d *boolDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) != 1 {
		return malformed("bool", v)
	}
	if d.unsafe {
		d.b.UnsafeAppend(v[0] != 0)
	} else {
		d.b.Append(v[0] != 0)
	}
	return nil
}

type int16Dec struct {
	b      *array.Int16Builder
	unsafe bool // capacity is guaranteed by the batcher
}

func (d *int16Dec) setUnsafe() { d.unsafe = true }

func (d *int16Dec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) != 2 {
		return malformed("int2", v)
	}
	x := int16(binary.BigEndian.Uint16(v))
	if d.unsafe {
		d.b.UnsafeAppend(x)
	} else {
		d.b.Append(x)
	}
	return nil
}

type int32Dec struct {
	b      *array.Int32Builder
	unsafe bool // capacity is guaranteed by the batcher
}

func (d *int32Dec) setUnsafe() { d.unsafe = true }

func (d *int32Dec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) != 4 {
		return malformed("int4", v)
	}
	x := int32(binary.BigEndian.Uint32(v))
	if d.unsafe {
		d.b.UnsafeAppend(x)
	} else {
		d.b.Append(x)
	}
	return nil
}

type int64Dec struct {
	b      *array.Int64Builder
	unsafe bool // capacity is guaranteed by the batcher
}

func (d *int64Dec) setUnsafe() { d.unsafe = true }

func (d *int64Dec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) != 8 {
		return malformed("int8", v)
	}
	x := int64(binary.BigEndian.Uint64(v))
	if d.unsafe {
		d.b.UnsafeAppend(x)
	} else {
		d.b.Append(x)
	}
	return nil
}

type uint32Dec struct {
	b      *array.Uint32Builder
	unsafe bool // capacity is guaranteed by the batcher
}

func (d *uint32Dec) setUnsafe() { d.unsafe = true }

func (d *uint32Dec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) != 4 {
		return malformed("oid", v)
	}
	x := binary.BigEndian.Uint32(v)
	if d.unsafe {
		d.b.UnsafeAppend(x)
	} else {
		d.b.Append(x)
	}
	return nil
}

type float32Dec struct {
	b      *array.Float32Builder
	unsafe bool // capacity is guaranteed by the batcher
}

func (d *float32Dec) setUnsafe() { d.unsafe = true }

func (d *float32Dec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) != 4 {
		return malformed("float4", v)
	}
	x := math.Float32frombits(binary.BigEndian.Uint32(v))
	if d.unsafe {
		d.b.UnsafeAppend(x)
	} else {
		d.b.Append(x)
	}
	return nil
}

type float64Dec struct {
	b      *array.Float64Builder
	unsafe bool // capacity is guaranteed by the batcher
}

func (d *float64Dec) setUnsafe() { d.unsafe = true }

func (d *float64Dec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) != 8 {
		return malformed("float8", v)
	}
	x := math.Float64frombits(binary.BigEndian.Uint64(v))
	if d.unsafe {
		d.b.UnsafeAppend(x)
	} else {
		d.b.Append(x)
	}
	return nil
}

type moneyDec struct {
	b      *array.Decimal128Builder
	unsafe bool // capacity is guaranteed by the batcher
}

func (d *moneyDec) setUnsafe() { d.unsafe = true }

func (d *moneyDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) != 8 {
		return malformed("money", v)
	}
	x := decimal128.FromI64(int64(binary.BigEndian.Uint64(v)))
	if d.unsafe {
		d.b.UnsafeAppend(x)
	} else {
		d.b.Append(x)
	}
	return nil
}

type textDec struct{ b *array.BinaryBuilder }

func (d *textDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	d.b.Append(v)
	return nil
}

type jsonbDec struct{ b *array.BinaryBuilder }

func (d *jsonbDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) < 1 || v[0] != 1 {
		return malformed("jsonb (version 1)", v)
	}
	d.b.Append(v[1:])
	return nil
}

type charDec struct{ b *array.BinaryBuilder }

func (d *charDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) > 1 {
		return malformed(`"char"`, v)
	}
	if len(v) == 1 && v[0] == 0 {
		d.b.Append(v[:0]) // '\0' prints as the empty string
		return nil
	}
	if len(v) == 1 && v[0] >= 0x80 {
		// PostgreSQL renders high "char" bytes as a backslash and three
		// octal digits; keep the text valid UTF-8 the same way.
		c := v[0]
		d.b.Append([]byte{'\\', '0' + c>>6, '0' + (c>>3)&7, '0' + c&7})
		return nil
	}
	d.b.Append(v)
	return nil
}

type enumDec struct {
	b *array.BinaryDictionaryBuilder
}

func (d *enumDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	return d.b.Append(v)
}

type binaryDec struct{ b *array.BinaryBuilder }

func (d *binaryDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	d.b.Append(v)
	return nil
}

type uuidDec struct{ b *array.FixedSizeBinaryBuilder }

func (d *uuidDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) != 16 {
		return malformed("uuid", v)
	}
	d.b.Append(v)
	return nil
}

type dateDec struct {
	b      *array.Date32Builder
	policy SpecialPolicy
	unsafe bool
}

func (d *dateDec) setUnsafe() { d.unsafe = true }

func (d *dateDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) != 4 {
		return malformed("date", v)
	}
	x := int32(binary.BigEndian.Uint32(v))
	switch {
	case x == math.MaxInt32 || x == math.MinInt32 || x > math.MaxInt32-pgEpochDays:
		return d.special(x > 0)
	}
	if d.unsafe {
		d.b.UnsafeAppend(arrow.Date32(x + pgEpochDays))
	} else {
		d.b.Append(arrow.Date32(x + pgEpochDays))
	}
	return nil
}

func (d *dateDec) special(pos bool) error {
	switch d.policy {
	case SpecialError:
		return errSpecial
	case SpecialClamp:
		if pos {
			d.b.Append(math.MaxInt32)
		} else {
			d.b.Append(math.MinInt32)
		}
	default:
		d.b.AppendNull()
	}
	return nil
}

type timeDec struct {
	b      *array.Time64Builder
	unsafe bool // capacity is guaranteed by the batcher
}

func (d *timeDec) setUnsafe() { d.unsafe = true }

func (d *timeDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) != 8 {
		return malformed("time", v)
	}
	x := arrow.Time64(binary.BigEndian.Uint64(v))
	if d.unsafe {
		d.b.UnsafeAppend(x)
	} else {
		d.b.Append(x)
	}
	return nil
}

type timetzDec struct {
	b   *array.StructBuilder
	t   *array.Time64Builder
	off *array.Int32Builder
}

func (d *timetzDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) != 12 {
		return malformed("timetz", v)
	}
	d.b.Append(true)
	d.t.Append(arrow.Time64(binary.BigEndian.Uint64(v)))
	d.off.Append(-int32(binary.BigEndian.Uint32(v[8:])))
	return nil
}

type timestampDec struct {
	b      *array.TimestampBuilder
	policy SpecialPolicy
	unsafe bool
}

func (d *timestampDec) setUnsafe() { d.unsafe = true }

func (d *timestampDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) != 8 {
		return malformed("timestamp", v)
	}
	x := int64(binary.BigEndian.Uint64(v))
	if x == math.MaxInt64 || x == math.MinInt64 || x > math.MaxInt64-pgEpochMicros {
		switch d.policy {
		case SpecialError:
			return errSpecial
		case SpecialClamp:
			if x > 0 {
				d.b.Append(math.MaxInt64)
			} else {
				d.b.Append(math.MinInt64)
			}
		default:
			d.b.AppendNull()
		}
		return nil
	}
	if d.unsafe {
		d.b.UnsafeAppend(arrow.Timestamp(x + pgEpochMicros))
	} else {
		d.b.Append(arrow.Timestamp(x + pgEpochMicros))
	}
	return nil
}

type intervalDec struct {
	b *array.MonthDayNanoIntervalBuilder
}

func (d *intervalDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) != 16 {
		return malformed("interval", v)
	}
	us := int64(binary.BigEndian.Uint64(v))
	if us > math.MaxInt64/1000 || us < math.MinInt64/1000 {
		return errSpecial
	}
	d.b.Append(arrow.MonthDayNanoInterval{
		Months:      int32(binary.BigEndian.Uint32(v[12:])),
		Days:        int32(binary.BigEndian.Uint32(v[8:])),
		Nanoseconds: us * 1000,
	})
	return nil
}

type inetDec struct {
	b   *array.BinaryBuilder
	buf []byte
}

func (d *inetDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	// family, bits, is_cidr, nb, address
	if len(v) < 4 || int(v[3]) != len(v)-4 {
		return malformed("inet", v)
	}
	var addr netip.Addr
	var max byte
	switch {
	case v[0] == 2 && v[3] == 4:
		addr, max = netip.AddrFrom4([4]byte(v[4:8])), 32
	case v[0] == 3 && v[3] == 16:
		addr, max = netip.AddrFrom16([16]byte(v[4:20])), 128
	default:
		return malformed("inet family", v)
	}
	if v[1] > max {
		return malformed("inet bits", v)
	}
	d.buf = addr.AppendTo(d.buf[:0])
	if v[2] != 0 || v[1] != max {
		d.buf = append(d.buf, '/')
		d.buf = appendUint(d.buf, uint64(v[1]))
	}
	d.b.Append(d.buf)
	return nil
}

func appendUint(b []byte, x uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + x%10)
		x /= 10
		if x == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

type macDec struct {
	b   *array.BinaryBuilder
	buf []byte
}

func (d *macDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) != 6 && len(v) != 8 {
		return malformed("macaddr", v)
	}
	const hex = "0123456789abcdef"
	d.buf = d.buf[:0]
	for i, c := range v {
		if i > 0 {
			d.buf = append(d.buf, ':')
		}
		d.buf = append(d.buf, hex[c>>4], hex[c&15])
	}
	d.b.Append(d.buf)
	return nil
}

type bitDec struct {
	b   *array.BinaryBuilder
	buf []byte
}

func (d *bitDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) < 4 {
		return malformed("bit", v)
	}
	n := int64(int32(binary.BigEndian.Uint32(v)))
	if n < 0 || (n+7)/8 != int64(len(v)-4) {
		return malformed("bit length", v)
	}
	d.buf = d.buf[:0]
	for i := int64(0); i < n; i++ {
		d.buf = append(d.buf, '0'+(v[4+i/8]>>(7-i%8))&1)
	}
	d.b.Append(d.buf)
	return nil
}

// ErrMultiDimArray reports a multi-dimensional array value: Volley maps
// PostgreSQL arrays to 1-D lists (the column's dimensionality is not part
// of its type). Use errors.Is; unnest or array_to_json the value instead.
var ErrMultiDimArray = fmt.Errorf("%w: postgres: multi-dimensional array value (only 1-D arrays map to Arrow lists; use unnest or to_json)", errors.ErrUnsupported)

type arrayDec struct {
	b    *array.ListBuilder
	elem decoder
}

func (d *arrayDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) < 12 {
		return malformed("array header", v)
	}
	ndim := int32(binary.BigEndian.Uint32(v))
	switch {
	case ndim == 0:
		d.b.Append(true)
		return nil
	case ndim < 0:
		return malformed("array dimensions", v)
	case ndim > 1:
		return ErrMultiDimArray
	}
	if len(v) < 20 {
		return malformed("array header", v)
	}
	n := int32(binary.BigEndian.Uint32(v[12:]))
	if n < 0 {
		return malformed("array length", v)
	}
	p := v[20:]
	d.b.Append(true)
	for i := int32(0); i < n; i++ {
		if len(p) < 4 {
			return malformed("array element", v)
		}
		l := int32(binary.BigEndian.Uint32(p))
		p = p[4:]
		if l < 0 {
			if err := d.elem.decode(nil); err != nil {
				return err
			}
			continue
		}
		if int64(l) > int64(len(p)) {
			return malformed("array element", v)
		}
		if err := d.elem.decode(p[:l:l]); err != nil {
			return err
		}
		p = p[l:]
	}
	if len(p) != 0 {
		return malformed("array trailing bytes", v)
	}
	return nil
}

type rangeDec struct {
	b            *array.StructBuilder
	lower, upper decoder
	lb, ub       array.Builder
	flags        *array.Uint8Builder
}

func (d *rangeDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) < 1 {
		return malformed("range", v)
	}
	f := v[0]
	p := v[1:]
	d.b.Append(true)
	d.flags.Append(f)
	bound := func(has bool, dec decoder, bld array.Builder) error {
		if !has {
			bld.AppendNull()
			return nil
		}
		if len(p) < 4 {
			return malformed("range bound", v)
		}
		l := int32(binary.BigEndian.Uint32(p))
		p = p[4:]
		if l < 0 || int64(l) > int64(len(p)) {
			return malformed("range bound", v)
		}
		err := dec.decode(p[:l:l])
		p = p[l:]
		return err
	}
	empty := f&RangeEmpty != 0
	if err := bound(!empty && f&(RangeLowerInf|0x20) == 0, d.lower, d.lb); err != nil {
		return err
	}
	if err := bound(!empty && f&(RangeUpperInf|0x40) == 0, d.upper, d.ub); err != nil {
		return err
	}
	if len(p) != 0 {
		return malformed("range trailing bytes", v)
	}
	return nil
}

// errCompositeShape reports a composite value whose fields do not match
// the type resolved for the column (the type was altered meanwhile).
var errCompositeShape = errors.New("postgres: composite value does not match its type (altered meanwhile?)")

type compositeDec struct {
	b      *array.StructBuilder
	fields []decoder
	name   string
}

func (d *compositeDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	if len(v) < 4 {
		return malformed("composite", v)
	}
	n := int32(binary.BigEndian.Uint32(v))
	if int(n) != len(d.fields) {
		return fmt.Errorf("%w: %s has %d fields, value has %d", errCompositeShape, d.name, len(d.fields), n)
	}
	p := v[4:]
	d.b.Append(true)
	for _, fd := range d.fields {
		if len(p) < 8 {
			return malformed("composite field", v)
		}
		l := int32(binary.BigEndian.Uint32(p[4:]))
		p = p[8:]
		if l < 0 {
			if err := fd.decode(nil); err != nil {
				return err
			}
			continue
		}
		if int64(l) > int64(len(p)) {
			return malformed("composite field", v)
		}
		if err := fd.decode(p[:l:l]); err != nil {
			return err
		}
		p = p[l:]
	}
	if len(p) != 0 {
		return malformed("composite trailing bytes", v)
	}
	return nil
}
