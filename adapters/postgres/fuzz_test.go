package postgres

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Every decoder must reject malformed input with an error, never panic, and
// leak nothing; these fuzz targets check that (go test -fuzz=FuzzDecodeX).

func scalar(oid uint32) *pgType {
	b := builtins[oid]
	return &pgType{oid: oid, name: b.name, kind: b.kind}
}

func fuzzDecode(t *testing.T, typ *pgType, typmod int32, cfg Config, data []byte) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := array.NewBuilder(mem, arrowType(typ, typmod, &cfg, 0))
	defer b.Release()
	d, err := plan(typ, typmod, b, &cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.decode(data); err == nil {
		if err := d.decode(nil); err != nil {
			t.Fatalf("NULL after a value: %v", err)
		}
		arr := b.NewArray()
		if arr.Len() != 2 || !arr.IsNull(1) {
			t.Fatalf("array %v", arr)
		}
		arr.Release()
	}
}

func be16(v ...int16) []byte {
	out := make([]byte, 0, 2*len(v))
	for _, x := range v {
		out = binary.BigEndian.AppendUint16(out, uint16(x))
	}
	return out
}

func be32(v ...int32) []byte {
	out := make([]byte, 0, 4*len(v))
	for _, x := range v {
		out = binary.BigEndian.AppendUint32(out, uint32(x))
	}
	return out
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func fuzzScalar(f *testing.F, oid uint32, typmod int32, cfg Config, seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, scalar(oid), typmod, cfg, data) })
}

func FuzzDecodeBool(f *testing.F)   { fuzzScalar(f, 16, -1, Config{}, []byte{1}) }
func FuzzDecodeInt2(f *testing.F)   { fuzzScalar(f, 21, -1, Config{}, be16(-5)) }
func FuzzDecodeInt4(f *testing.F)   { fuzzScalar(f, 23, -1, Config{}, be32(7)) }
func FuzzDecodeInt8(f *testing.F)   { fuzzScalar(f, 20, -1, Config{}, be32(0, 9)) }
func FuzzDecodeOID(f *testing.F)    { fuzzScalar(f, 26, -1, Config{}, be32(-1)) }
func FuzzDecodeFloat4(f *testing.F) { fuzzScalar(f, 700, -1, Config{}, be32(0x3fc00000)) }
func FuzzDecodeFloat8(f *testing.F) { fuzzScalar(f, 701, -1, Config{}, be32(0x3ff80000, 0)) }
func FuzzDecodeMoney(f *testing.F)  { fuzzScalar(f, 790, -1, Config{}, be32(0, 1234)) }
func FuzzDecodeText(f *testing.F)   { fuzzScalar(f, 25, -1, Config{}, []byte("héllo")) }
func FuzzDecodeChar(f *testing.F)   { fuzzScalar(f, 18, -1, Config{}, []byte{0xff}) }
func FuzzDecodeBytea(f *testing.F)  { fuzzScalar(f, 17, -1, Config{}, []byte{0, 1}) }
func FuzzDecodeJSONB(f *testing.F)  { fuzzScalar(f, 3802, -1, Config{}, []byte("\x01{}")) }
func FuzzDecodeUUID(f *testing.F)   { fuzzScalar(f, 2950, -1, Config{}, make([]byte, 16)) }
func FuzzDecodeDate(f *testing.F) {
	fuzzScalar(f, 1082, -1, Config{}, be32(1<<31-1), be32(-1<<31), be32(100))
}
func FuzzDecodeTime(f *testing.F)   { fuzzScalar(f, 1083, -1, Config{}, be32(0, 5)) }
func FuzzDecodeTimeTZ(f *testing.F) { fuzzScalar(f, 1266, -1, Config{}, be32(0, 5, -3600)) }
func FuzzDecodeTimestamp(f *testing.F) {
	fuzzScalar(f, 1114, -1, Config{Infinity: SpecialClamp}, be32(1<<31-1, -1), be32(0, 77))
}
func FuzzDecodeTimestampTZ(f *testing.F) {
	fuzzScalar(f, 1184, -1, Config{Infinity: SpecialError}, be32(-1<<31, 0))
}
func FuzzDecodeInterval(f *testing.F) { fuzzScalar(f, 1186, -1, Config{}, be32(0, 1, 2, 3)) }
func FuzzDecodeInet(f *testing.F) {
	fuzzScalar(f, 869, -1, Config{}, []byte{2, 32, 0, 4, 10, 0, 0, 1}, cat([]byte{3, 64, 1, 16}, make([]byte, 16)))
}
func FuzzDecodeMacaddr(f *testing.F) { fuzzScalar(f, 829, -1, Config{}, []byte{1, 2, 3, 4, 5, 6}) }
func FuzzDecodeBit(f *testing.F)     { fuzzScalar(f, 1562, -1, Config{}, cat(be32(9), []byte{0xff, 0x80})) }

var numericSeeds = [][]byte{
	cat(be16(2, 0, 0, 2), be16(12, 3400)),     // 12.34
	cat(be16(1, 1, 0x4000, 0), be16(1)),       // -10000
	cat(be16(0, 0, -0x4000, 0)),               // NaN
	cat(be16(3, -2, 0, 10), be16(1, 2, 9999)), // small
	cat(be16(5, 9, 0, 0), be16(9999, 9999, 9999, 9999, 9999)),
}

func FuzzDecodeNumeric(f *testing.F) {
	for _, s := range numericSeeds {
		f.Add(s, uint8(0))
	}
	typmods := []int32{-1, (15<<16 | 2) + 4, (50<<16 | 5) + 4, (38<<16 | 10) + 4, (4 << 16) + 4}
	cfgs := []Config{{}, {Numeric: NumericFloat64, NumericSpecial: SpecialClamp}, {Numeric: NumericDecimal, NumericScale: 3}, {NumericSpecial: SpecialError}}
	f.Fuzz(func(t *testing.T, data []byte, sel uint8) {
		tm := typmods[int(sel)%len(typmods)]
		cfg := cfgs[int(sel/8)%len(cfgs)]
		fuzzDecode(t, scalar(1700), tm, cfg, data)
		// The numeric(15,2) fast path agrees with the general path.
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		bld := array.NewDecimal128Builder(mem, &arrow.Decimal128Type{Precision: 15, Scale: 2})
		d := &numeric128Dec{b: bld, prec: 15, scale: 2}
		if err := d.decode(data); err == nil {
			arr := bld.NewDecimal128Array()
			if n, err := parseNumeric(data); err == nil && !n.special() && arr.IsValid(0) {
				if x, _, err := n.unscaled(15, 2); err != nil || x.ToString(2) != arr.Value(0).ToString(2) {
					t.Fatalf("fast path %s, general path %v (%v)", arr.Value(0).ToString(2), x.ToString(2), err)
				}
			}
			arr.Release()
		}
		bld.Release()
		mem.AssertSize(t, 0)
		// Where the value fits, decimal and text agree.
		n, err := parseNumeric(data)
		if err != nil || n.special() || n.dscale != 2 || n.ndigits > 8 ||
			n.ndigits > 0 && (n.digit(0) == 0 || n.digit(n.ndigits-1) == 0) {
			return // PostgreSQL strips leading and trailing zero groups
		}
		// Only canonical values (no nonzero digits past dscale, as
		// PostgreSQL sends them): elsewhere decimal rounds, text truncates.
		full := n
		full.dscale = max(n.dscale, 4*(n.ndigits-n.weight-1))
		ft := string(full.appendText(nil))
		if dot := strings.IndexByte(ft, '.'); dot >= 0 && strings.Trim(ft[min(len(ft), dot+1+n.dscale):], "0") != "" {
			return
		}
		x, _, err := n.unscaled(38, 2)
		if err != nil {
			return
		}
		if got, want := x.ToString(2), string(n.appendText(nil)); got != want && !(want == "-0.00" || got == "0.00" && want == "-0.00") {
			t.Fatalf("decimal %s, text %s", got, want)
		}
	})
}

func arrayOf(elem *pgType) *pgType { return &pgType{name: "_" + elem.name, kind: kArray, elem: elem} }

func FuzzDecodeArray(f *testing.F) {
	f.Add(cat(be32(1, 0, 23, 2, 1), be32(4, 7), be32(-1)), false)
	f.Add(cat(be32(0, 0, 25)), true)
	f.Add(cat(be32(1, 1, 25, 1, 0), be32(1), []byte("x")), true)
	f.Add(cat(be32(2, 0, 23, 1, 1, 1, 1), be32(4, 1)), false)
	f.Fuzz(func(t *testing.T, data []byte, text bool) {
		elem := scalar(23)
		if text {
			elem = scalar(25)
		}
		fuzzDecode(t, arrayOf(elem), -1, Config{}, data)
	})
}

func FuzzDecodeRange(f *testing.F) {
	f.Add(cat([]byte{RangeLowerInc}, be32(4, 1, 4, 5)))
	f.Add([]byte{RangeEmpty})
	f.Add(cat([]byte{RangeLowerInf}, be32(4, 9)))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, &pgType{name: "int4range", kind: kRange, elem: scalar(23)}, -1, Config{}, data)
	})
}

func FuzzDecodeComposite(f *testing.F) {
	f.Add(cat(be32(2, 23, 4, 5, 25, 2), []byte("ab")))
	f.Add(cat(be32(2, 23, -1, 25, -1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		typ := &pgType{name: "pair", kind: kComposite, fields: []pgField{{name: "a", typ: scalar(23), typmod: -1}, {name: "b", typ: scalar(25), typmod: -1}}}
		fuzzDecode(t, typ, -1, Config{}, data)
	})
}

func FuzzDecodeEnum(f *testing.F) {
	f.Add([]byte("happy"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, &pgType{name: "mood", kind: kEnum}, -1, Config{}, data)
	})
}

func FuzzDecodeOpaque(f *testing.F) {
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, &pgType{name: "tsvector", kind: kOpaque}, -1, Config{}, data)
	})
}

// copyStream builds a COPY binary stream of (int4, text, numeric(15,2))
// tuples.
func copyStream(rows int) []byte {
	out := cat(copySignature, be32(0, 0))
	for i := 0; i < rows; i++ {
		out = append(out, be16(3)...)
		out = append(out, cat(be32(4, int32(i)))...)
		if i%3 == 0 {
			out = append(out, be32(-1)...)
		} else {
			out = append(out, cat(be32(3), []byte("abc"))...)
		}
		num := cat(be16(2, 0, 0, 2), be16(int16(i%10000), 1200))
		out = append(out, cat(be32(int32(len(num))), num)...)
	}
	return append(out, be16(-1)...)
}

var copyTypes = []*pgType{scalar(23), scalar(25), scalar(1700)}

func runCopy(t *testing.T, data []byte, splits []int, maxRows int64) (rows int64, err error) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cfg := Config{}
	typmods := []int32{-1, -1, (15<<16 | 2) + 4}
	fs := make([]arrow.Field, len(copyTypes))
	for i, ty := range copyTypes {
		fs[i] = arrow.Field{Name: ty.name, Type: arrowType(ty, typmods[i], &cfg, 0), Nullable: true}
	}
	b, err := newBatcher(mem, arrow.NewSchema(fs, nil), copyTypes, typmods, &cfg, maxRows, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer b.release()
	p := &copyParser{b: b, ncols: 3}
	p.full = func() error {
		rec := b.flush()
		rows += rec.NumRows()
		rec.Release()
		return nil
	}
	prev := 0
	for _, s := range append(splits, len(data)) {
		if s < prev || s > len(data) {
			continue
		}
		chunk := append([]byte(nil), data[prev:s]...) // the parser must not keep it
		if n, err := p.Write(chunk); err != nil {
			return rows, err
		} else if n != len(chunk) {
			t.Fatalf("short write %d of %d without error", n, len(chunk))
		}
		for i := range chunk {
			chunk[i] = 0xAA
		}
		prev = s
	}
	if err := p.finish(); err != nil {
		return rows, err
	}
	if rec := b.flush(); rec != nil {
		rows += rec.NumRows()
		rec.Release()
	}
	return rows, nil
}

func TestCopyParserSplits(t *testing.T) {
	data := copyStream(100)
	for _, step := range []int{1, 2, 3, 7, 19, 64, len(data)} {
		var splits []int
		for i := step; i < len(data); i += step {
			splits = append(splits, i)
		}
		rows, err := runCopy(t, data, splits, 7)
		if err != nil || rows != 100 {
			t.Fatalf("step %d: %d rows, %v", step, rows, err)
		}
	}
	if _, err := runCopy(t, data[:len(data)-1], nil, 0); err == nil {
		t.Fatal("truncated stream accepted")
	}
	if _, err := runCopy(t, append(data, 0), nil, 0); err == nil {
		t.Fatal("trailing bytes accepted")
	}
}

func FuzzCopyParser(f *testing.F) {
	f.Add(copyStream(3), uint16(5), uint16(40))
	f.Add(copyStream(0), uint16(0), uint16(0))
	f.Add(copySignature, uint16(3), uint16(9))
	f.Fuzz(func(t *testing.T, data []byte, a, b uint16) {
		_, _ = runCopy(t, data, []int{int(a) % (len(data) + 1), int(b) % (len(data) + 1)}, 2)
	})
}
