package postgres

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/decimal256"
	"github.com/volleyhq/volley/async"
)

// numeric's binary form: ndigits int16, weight int16, sign uint16, dscale
// int16, then ndigits base-10000 digits (int16), most significant first;
// the value is Σ digit[i] × 10000^(weight-i).
type numericVal struct {
	digits  []byte // 2 bytes per digit, big endian
	ndigits int
	weight  int
	sign    uint16
	dscale  int
}

const (
	numPos  = 0x0000
	numNeg  = 0x4000
	numNaN  = 0xC000
	numPInf = 0xD000
	numNInf = 0xF000
)

func parseNumeric(v []byte) (numericVal, error) {
	if len(v) < 8 {
		return numericVal{}, malformed("numeric", v)
	}
	n := numericVal{
		ndigits: int(int16(binary.BigEndian.Uint16(v))),
		weight:  int(int16(binary.BigEndian.Uint16(v[2:]))),
		sign:    binary.BigEndian.Uint16(v[4:]),
		dscale:  int(int16(binary.BigEndian.Uint16(v[6:]))),
	}
	if n.ndigits < 0 || n.dscale < 0 || len(v) != 8+2*n.ndigits {
		return numericVal{}, malformed("numeric", v)
	}
	switch n.sign {
	case numPos, numNeg, numNaN, numPInf, numNInf:
	default:
		return numericVal{}, malformed("numeric sign", v)
	}
	n.digits = v[8:]
	for i := 0; i < n.ndigits; i++ {
		if n.digit(i) > 9999 {
			return numericVal{}, malformed("numeric digit", v)
		}
	}
	return n, nil
}

func (n *numericVal) digit(i int) uint64 {
	if i < 0 || i >= n.ndigits {
		return 0
	}
	return uint64(binary.BigEndian.Uint16(n.digits[2*i:]))
}

func (n *numericVal) special() bool {
	return n.sign == numNaN || n.sign == numPInf || n.sign == numNInf
}

var pow10u64 = func() (p [20]uint64) {
	p[0] = 1
	for i := 1; i < 20; i++ {
		p[i] = p[i-1] * 10
	}
	return
}()

func decDigits(x uint64) int {
	n := 1
	for x >= 10 {
		x /= 10
		n++
	}
	return n
}

var errNumericOverflow = async.NewError(async.EOVERFLOW, "postgres: numeric value exceeds the column's decimal precision", arrow.Metadata{})

// unscaled returns n × 10^scale as a decimal256 (rounded half away from
// zero), or an error when it needs more than prec digits.
func (n *numericVal) unscaled(prec, scale int32) (decimal256.Num, bool, error) {
	if n.ndigits == 0 {
		return decimal256.Num{}, true, nil
	}
	if n.weight >= 0 {
		intDigits := 4*n.weight + decDigits(n.digit(0))
		if intDigits > int(prec-scale) {
			return decimal256.Num{}, false, errNumericOverflow
		}
	}
	// Only digits that reach the scale matter, plus one group to round.
	m := n.ndigits
	if lim := n.weight + int(scale+3)/4 + 2; lim < m {
		m = lim
	}
	if m <= 0 {
		return decimal256.Num{}, true, nil
	}
	bs := 4 * (m - 1 - n.weight) // acc × 10^-bs is the value
	shift := int(scale) - bs
	neg := n.sign == numNeg
	if m <= 4 {
		var acc uint64
		for i := 0; i < m; i++ {
			acc = acc*10000 + n.digit(i)
		}
		switch {
		case shift >= 0 && shift < 19 && acc <= math.MaxInt64/pow10u64[shift]:
			acc *= pow10u64[shift]
		case shift < 0 && -shift < 20:
			p := pow10u64[-shift]
			q, r := acc/p, acc%p
			if r >= p/2 { // p is a power of ten ≥ 10: half away from zero
				q++
			}
			acc = q
		case shift < 0:
			acc = 0
		default:
			goto slow
		}
		if prec <= 18 && acc >= pow10u64[prec] {
			return decimal256.Num{}, false, errNumericOverflow
		}
		x := decimal256.FromU64(acc)
		if neg {
			x = x.Negate()
		}
		return x, acc <= math.MaxInt64, nil
	}
slow:
	acc := decimal256.Num{}
	k := decimal256.FromU64(10000)
	for i := 0; i < m; i++ {
		acc = acc.Mul(k).Add(decimal256.FromU64(n.digit(i)))
	}
	switch {
	case shift > 0:
		acc = acc.IncreaseScaleBy(int32(shift))
	case shift < 0:
		acc = acc.ReduceScaleBy(int32(-shift), true)
	}
	if !acc.FitsInPrecision(prec) {
		return decimal256.Num{}, false, errNumericOverflow
	}
	if neg {
		acc = acc.Negate()
	}
	return acc, false, nil
}

func specialNull(b array.Builder, p SpecialPolicy) error {
	if p == SpecialError {
		return errSpecial
	}
	b.AppendNull()
	return nil
}

// numericFast returns the unscaled value at scale of a finite numeric of at
// most 4 base-10000 digit groups whose absolute value is below 10^prec
// (prec ≤ 18) and that needs no rounding; ok is false for anything else
// (the general path decides).
func numericFast(v []byte, prec, scale int) (int64, bool) {
	nd := int(int16(binary.BigEndian.Uint16(v)))
	sign := binary.BigEndian.Uint16(v[4:])
	if nd < 0 || nd > 4 || len(v) != 8+2*nd || (sign != numPos && sign != numNeg) {
		return 0, false
	}
	if nd == 0 {
		return 0, true
	}
	weight := int(int16(binary.BigEndian.Uint16(v[2:])))
	var acc, last uint64
	for i := 0; i < nd; i++ {
		dg := uint64(binary.BigEndian.Uint16(v[8+2*i:]))
		if dg > 9999 {
			return 0, false
		}
		acc = acc*10000 + last
		last = dg
	}
	// acc holds the groups before the last; the last's exponent (in
	// decimal digits, relative to the scale) is shift.
	shift := scale - 4*(nd-1-weight)
	switch {
	case shift >= 0:
		acc = acc*10000 + last
		// acc·10^shift < 10^prec ⇔ acc < 10^(prec−shift), for integers.
		if shift > prec || acc >= pow10u64[prec-shift] {
			return 0, false
		}
		acc *= pow10u64[shift]
	case shift >= -3:
		// The last group's low -shift digits are past the scale: they
		// must be zeros (PostgreSQL sends values at their own scale).
		var q uint64
		switch shift {
		case -1:
			q, last = last/10, last%10
		case -2:
			q, last = last/100, last%100
		default:
			q, last = last/1000, last%1000
		}
		if last != 0 {
			return 0, false
		}
		acc = acc*pow10u64[4+shift] + q
		if acc >= pow10u64[prec] {
			return 0, false
		}
	default:
		return 0, false
	}
	x := int64(acc)
	if sign == numNeg {
		x = -x
	}
	return x, true
}

type numeric128Dec struct {
	b           *array.Decimal128Builder
	prec, scale int32
	special     SpecialPolicy
	unsafe      bool
}

func (d *numeric128Dec) setUnsafe() { d.unsafe = true }

func (d *numeric128Dec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	// Fast path: up to 16 significant digits and a result below 10^18 (all
	// of numeric(p ≤ 18, s) such as TPC-H's numeric(15,2)), in uint64 with
	// no division by a variable.
	if len(v) >= 8 && d.prec <= 18 {
		if x, ok := numericFast(v, int(d.prec), int(d.scale)); ok {
			if d.unsafe {
				d.b.UnsafeAppend(decimal128.FromI64(x))
			} else {
				d.b.Append(decimal128.FromI64(x))
			}
			return nil
		}
	}
	n, err := parseNumeric(v)
	if err != nil {
		return err
	}
	if n.special() {
		return specialNull(d.b, d.special)
	}
	x, small, err := n.unscaled(d.prec, d.scale)
	if err != nil {
		return err
	}
	if small {
		lo := x.LowBits()
		if x.Sign() < 0 {
			d.b.Append(decimal128.FromI64(int64(lo)))
		} else {
			d.b.Append(decimal128.FromU64(lo))
		}
		return nil
	}
	a := x.Array()
	d.b.Append(decimal128.New(int64(a[1]), a[0]))
	return nil
}

type numeric256Dec struct {
	b           *array.Decimal256Builder
	prec, scale int32
	special     SpecialPolicy
}

func (d *numeric256Dec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	n, err := parseNumeric(v)
	if err != nil {
		return err
	}
	if n.special() {
		return specialNull(d.b, d.special)
	}
	x, _, err := n.unscaled(d.prec, d.scale)
	if err != nil {
		return err
	}
	d.b.Append(x)
	return nil
}

// appendText renders n exactly as PostgreSQL's numeric_out does.
func (n *numericVal) appendText(b []byte) []byte {
	switch n.sign {
	case numNaN:
		return append(b, "NaN"...)
	case numPInf:
		return append(b, "Infinity"...)
	case numNInf:
		return append(b, "-Infinity"...)
	case numNeg:
		if n.ndigits > 0 {
			b = append(b, '-')
		}
	}
	if n.weight < 0 || n.ndigits == 0 {
		b = append(b, '0')
	} else {
		for i := 0; i <= n.weight; i++ {
			d := n.digit(i)
			if i == 0 {
				b = appendUint(b, d)
				continue
			}
			b = append(b, byte('0'+d/1000), byte('0'+d/100%10), byte('0'+d/10%10), byte('0'+d%10))
		}
	}
	if n.dscale > 0 {
		b = append(b, '.')
		for out, j := 0, 1; out < n.dscale; j++ {
			d := n.digit(n.weight + j)
			for _, c := range [4]byte{byte('0' + d/1000), byte('0' + d/100%10), byte('0' + d/10%10), byte('0' + d%10)} {
				if out == n.dscale {
					break
				}
				b = append(b, c)
				out++
			}
		}
	}
	return b
}

type numericStringDec struct {
	b   *array.StringBuilder
	buf []byte
}

func (d *numericStringDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	n, err := parseNumeric(v)
	if err != nil {
		return err
	}
	if n.dscale > 1<<14 || n.ndigits > 1<<15 {
		return malformed("numeric scale", v)
	}
	d.buf = n.appendText(d.buf[:0])
	d.b.BinaryBuilder.Append(d.buf)
	return nil
}

type numericFloatDec struct {
	b       *array.Float64Builder
	special SpecialPolicy
	buf     []byte
}

func (d *numericFloatDec) decode(v []byte) error {
	if v == nil {
		d.b.AppendNull()
		return nil
	}
	n, err := parseNumeric(v)
	if err != nil {
		return err
	}
	if n.special() {
		if d.special != SpecialClamp {
			return specialNull(d.b, d.special)
		}
		switch n.sign {
		case numNaN:
			d.b.Append(math.NaN())
		case numPInf:
			d.b.Append(math.Inf(1))
		default:
			d.b.Append(math.Inf(-1))
		}
		return nil
	}
	if n.dscale > 1<<14 {
		return malformed("numeric scale", v)
	}
	d.buf = n.appendText(d.buf[:0])
	f, err := strconv.ParseFloat(string(d.buf), 64)
	if err != nil && !isRangeErr(err) {
		return malformed("numeric", v)
	}
	d.b.Append(f) // ±Inf for values beyond float64, as ParseFloat rounds
	return nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}
