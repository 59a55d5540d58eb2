package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/jackc/pgx/v5/pgconn"
)

// kind is how a PostgreSQL type is decoded.
type kind uint8

const (
	kOpaque kind = iota // raw send bytes, arrow.opaque
	kBool
	kInt2
	kInt4
	kInt8
	kOID
	kFloat4
	kFloat8
	kNumeric
	kMoney
	kText // text, varchar, bpchar, name, xml: send format is the text
	kChar // "char": one byte
	kBytea
	kUUID
	kJSON
	kJSONB
	kDate
	kTime
	kTimeTZ
	kTimestamp
	kTimestampTZ
	kInterval
	kInet
	kMacaddr
	kBit
	kArray
	kEnum
	kComposite
	kDomain
	kRange
)

// pgType is one resolved PostgreSQL type.
type pgType struct {
	oid    uint32
	name   string
	kind   kind
	elem   *pgType // array element, range subtype, domain base
	typmod int32   // domain's base typmod
	fields []pgField
}

type pgField struct {
	name   string
	typ    *pgType
	typmod int32
}

type builtin struct {
	name string
	kind kind
}

// builtins are the scalar types decoded natively; their OIDs are fixed in
// every PostgreSQL release (they are below FirstNormalObjectId).
var builtins = map[uint32]builtin{
	16: {"bool", kBool}, 17: {"bytea", kBytea}, 18: {"char", kChar}, 19: {"name", kText},
	20: {"int8", kInt8}, 21: {"int2", kInt2}, 23: {"int4", kInt4}, 25: {"text", kText},
	26: {"oid", kOID}, 114: {"json", kJSON}, 142: {"xml", kText}, 650: {"cidr", kInet},
	700: {"float4", kFloat4}, 701: {"float8", kFloat8}, 705: {"unknown", kText}, 774: {"macaddr8", kMacaddr},
	790: {"money", kMoney}, 829: {"macaddr", kMacaddr}, 869: {"inet", kInet},
	1042: {"bpchar", kText}, 1043: {"varchar", kText}, 1082: {"date", kDate},
	1083: {"time", kTime}, 1114: {"timestamp", kTimestamp}, 1184: {"timestamptz", kTimestampTZ},
	1186: {"interval", kInterval}, 1266: {"timetz", kTimeTZ}, 1560: {"bit", kBit},
	1562: {"varbit", kBit}, 1700: {"numeric", kNumeric}, 2950: {"uuid", kUUID},
	3802: {"jsonb", kJSONB},
}

// builtinArrays maps builtin array OIDs to their element OIDs.
var builtinArrays = map[uint32]uint32{
	1000: 16, 1001: 17, 1002: 18, 1003: 19, 1016: 20, 1005: 21, 1007: 23, 1009: 25,
	1028: 26, 199: 114, 143: 142, 651: 650, 1021: 700, 1022: 701, 775: 774, 791: 790,
	1040: 829, 1041: 869, 1014: 1042, 1015: 1043, 1182: 1082, 1183: 1083, 1115: 1114,
	1185: 1184, 1187: 1186, 1270: 1266, 1561: 1560, 1563: 1562, 1231: 1700, 2951: 2950,
	3807: 3802,
	3905: 3904, 3907: 3906, 3909: 3908, 3911: 3910, 3913: 3912, 3927: 3926,
}

// builtinRanges maps builtin range OIDs to their name and subtype OIDs.
var builtinRanges = map[uint32]struct {
	name string
	sub  uint32
}{
	3904: {"int4range", 23}, 3906: {"numrange", 1700}, 3908: {"tsrange", 1114},
	3910: {"tstzrange", 1184}, 3912: {"daterange", 1082}, 3926: {"int8range", 20},
}

// catalog resolves and caches the types of one connection. User-defined
// types are looked up in pg_type on first use; the cache is invalidated when
// the connection runs DDL (an ALTER TYPE can change a composite in place)
// and by ResetSession. It is used by the connection's one goroutine.
type catalog struct {
	types map[uint32]*pgType
}

func newCatalog() *catalog { return &catalog{types: make(map[uint32]*pgType)} }

func (c *catalog) invalidate() { clear(c.types) }

// lookup returns the cached or builtin type for oid, or nil.
func (c *catalog) lookup(oid uint32) *pgType {
	if t, ok := c.types[oid]; ok {
		return t
	}
	if b, ok := builtins[oid]; ok {
		t := &pgType{oid: oid, name: b.name, kind: b.kind}
		c.types[oid] = t
		return t
	}
	if e, ok := builtinArrays[oid]; ok {
		et := c.lookup(e)
		if et == nil {
			return nil
		}
		t := &pgType{oid: oid, name: "_" + et.name, kind: kArray, elem: et}
		c.types[oid] = t
		return t
	}
	if r, ok := builtinRanges[oid]; ok {
		t := &pgType{oid: oid, name: r.name, kind: kRange, elem: c.lookup(r.sub)}
		c.types[oid] = t
		return t
	}
	return nil
}

// resolve makes sure every OID in oids (and every type they refer to) is in
// the cache, querying pg_type for the unknown ones.
func (c *catalog) resolve(ctx context.Context, conn *pgconn.PgConn, oids []uint32) error {
	pending := map[uint32]bool{}
	for _, o := range oids {
		if c.lookup(o) == nil {
			pending[o] = true
		}
	}
	type row struct {
		oid, elem, base, relid, rngsub uint32
		name                           string
		typtype                        byte
		typmod                         int32
		fields                         []pgField
		fieldOIDs                      []uint32
	}
	rows := map[uint32]*row{}
	for len(pending) > 0 {
		list := make([]string, 0, len(pending))
		for o := range pending {
			list = append(list, strconv.FormatUint(uint64(o), 10))
		}
		clear(pending)
		res := conn.ExecParams(ctx, `SELECT t.oid, t.typname, t.typtype, t.typelem, t.typbasetype, t.typtypmod, t.typrelid, coalesce(r.rngsubtype, 0), t.typlen
FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid
WHERE t.oid = ANY($1::oid[])`, [][]byte{[]byte("{" + strings.Join(list, ",") + "}")}, nil, nil, nil).Read()
		if res.Err != nil {
			return fmt.Errorf("resolve types: %w", res.Err)
		}
		var rels []string
		relRow := map[uint32]*row{}
		for _, v := range res.Rows {
			r := &row{name: string(v[1]), typtype: v[2][0], oid: atou(v[0]), elem: atou(v[3]),
				base: atou(v[4]), typmod: int32(atoi(v[5])), relid: atou(v[6]), rngsub: atou(v[7])}
			typlen := atoi(v[8])
			if r.typtype == 'b' && r.elem != 0 && typlen == -1 {
				r.typtype = 'A' // array
			} else if r.typtype == 'b' {
				r.elem = 0 // fixed-length "arrays" such as point are opaque
			}
			rows[r.oid] = r
			var refs []uint32
			switch r.typtype {
			case 'A':
				refs = append(refs, r.elem)
			case 'd':
				refs = append(refs, r.base)
			case 'r':
				refs = append(refs, r.rngsub)
			case 'c':
				rels = append(rels, strconv.FormatUint(uint64(r.relid), 10))
				relRow[r.relid] = r
			}
			for _, o := range refs {
				if c.lookup(o) == nil && rows[o] == nil {
					pending[o] = true
				}
			}
		}
		if len(rels) > 0 {
			res := conn.ExecParams(ctx, `SELECT attrelid, attname, atttypid, atttypmod FROM pg_catalog.pg_attribute
WHERE attrelid = ANY($1::oid[]) AND attnum > 0 AND NOT attisdropped ORDER BY attrelid, attnum`,
				[][]byte{[]byte("{" + strings.Join(rels, ",") + "}")}, nil, nil, nil).Read()
			if res.Err != nil {
				return fmt.Errorf("resolve composite types: %w", res.Err)
			}
			for _, v := range res.Rows {
				r := relRow[atou(v[0])]
				o := atou(v[2])
				r.fields = append(r.fields, pgField{name: string(v[1]), typmod: int32(atoi(v[3]))})
				r.fieldOIDs = append(r.fieldOIDs, o)
				if c.lookup(o) == nil && rows[o] == nil {
					pending[o] = true
				}
			}
		}
	}
	// Link: create all, then connect references (composites may nest).
	for o, r := range rows {
		t := &pgType{oid: o, name: r.name}
		switch r.typtype {
		case 'A':
			t.kind = kArray
		case 'e':
			t.kind = kEnum
		case 'c':
			t.kind = kComposite
		case 'd':
			t.kind, t.typmod = kDomain, r.typmod
		case 'r':
			t.kind = kRange
		default:
			t.kind = kOpaque
		}
		c.types[o] = t
	}
	for o, r := range rows {
		t := c.types[o]
		switch t.kind {
		case kArray:
			t.elem = c.lookup(r.elem)
		case kDomain:
			t.elem = c.lookup(r.base)
		case kRange:
			t.elem = c.lookup(r.rngsub)
		case kComposite:
			t.fields = r.fields
			for i := range t.fields {
				t.fields[i].typ = c.lookup(r.fieldOIDs[i])
			}
		}
	}
	for _, o := range oids {
		if c.lookup(o) == nil {
			// Not in pg_type (e.g. dropped meanwhile): keep it opaque.
			c.types[o] = &pgType{oid: o, name: "oid" + strconv.FormatUint(uint64(o), 10), kind: kOpaque}
		}
	}
	return nil
}

func atou(b []byte) uint32 { v, _ := strconv.ParseUint(string(b), 10, 32); return uint32(v) }
func atoi(b []byte) int64  { v, _ := strconv.ParseInt(string(b), 10, 64); return v }

// Field metadata keys every Arrow field of a result carries.
const (
	MetaType   = "pg.type"   // the PostgreSQL type name (pg_type.typname)
	MetaTypmod = "pg.typmod" // the type modifier, -1 when none
)

// VendorName is the vendor of arrow.opaque fields this adapter makes.
const VendorName = "PostgreSQL"

// numericTypmod splits a numeric typmod into precision and scale; ok is
// false for unconstrained numeric.
func numericTypmod(typmod int32) (p, s int32, ok bool) {
	if typmod < 4 {
		return 0, 0, false
	}
	v := typmod - 4
	p = (v >> 16) & 0xffff
	s = v & 0x7ff
	if s&0x400 != 0 { // PostgreSQL 15 allows negative scales (11-bit signed)
		s -= 0x800
	}
	return p, s, true
}

// timetzType is how timetz is mapped: the local time of day and the zone's
// offset in seconds east of UTC (PostgreSQL's wire value is west-positive;
// Volley flips it so that time - offset is UTC).
var timetzType = arrow.StructOf(
	arrow.Field{Name: "time", Type: arrow.FixedWidthTypes.Time64us, Nullable: false},
	arrow.Field{Name: "offset", Type: arrow.PrimitiveTypes.Int32, Nullable: false},
)

// arrowType maps a PostgreSQL type and typmod to its Arrow type.
func arrowType(t *pgType, typmod int32, cfg *Config, depth int) arrow.DataType {
	if t == nil || depth > 16 {
		return extensions.NewOpaqueType(arrow.BinaryTypes.Binary, "unknown", VendorName)
	}
	switch t.kind {
	case kBool:
		return arrow.FixedWidthTypes.Boolean
	case kInt2:
		return arrow.PrimitiveTypes.Int16
	case kInt4:
		return arrow.PrimitiveTypes.Int32
	case kInt8:
		return arrow.PrimitiveTypes.Int64
	case kOID:
		return arrow.PrimitiveTypes.Uint32
	case kFloat4:
		return arrow.PrimitiveTypes.Float32
	case kFloat8:
		return arrow.PrimitiveTypes.Float64
	case kNumeric:
		if p, s, ok := numericTypmod(typmod); ok && s >= 0 && s <= p && p <= 76 {
			if p <= 38 {
				return &arrow.Decimal128Type{Precision: p, Scale: s}
			}
			return &arrow.Decimal256Type{Precision: p, Scale: s}
		}
		switch cfg.Numeric {
		case NumericFloat64:
			return arrow.PrimitiveTypes.Float64
		case NumericDecimal:
			return &arrow.Decimal128Type{Precision: 38, Scale: cfg.NumericScale}
		}
		return arrow.BinaryTypes.String
	case kMoney:
		return &arrow.Decimal128Type{Precision: 19, Scale: 2}
	case kText, kChar, kInet, kMacaddr, kBit, kEnum:
		if t.kind == kEnum {
			return &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
		}
		return arrow.BinaryTypes.String
	case kBytea:
		return arrow.BinaryTypes.Binary
	case kUUID:
		return extensions.NewUUIDType()
	case kJSON, kJSONB:
		jt, _ := extensions.NewJSONType(arrow.BinaryTypes.String)
		return jt
	case kDate:
		return arrow.FixedWidthTypes.Date32
	case kTime:
		return arrow.FixedWidthTypes.Time64us
	case kTimeTZ:
		return timetzType
	case kTimestamp:
		return &arrow.TimestampType{Unit: arrow.Microsecond}
	case kTimestampTZ:
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	case kInterval:
		return arrow.FixedWidthTypes.MonthDayNanoInterval
	case kArray:
		return arrow.ListOfField(arrow.Field{Name: "item", Type: arrowType(t.elem, typmod, cfg, depth+1), Nullable: true})
	case kDomain:
		return arrowType(t.elem, t.typmod, cfg, depth+1)
	case kRange:
		et := arrowType(t.elem, -1, cfg, depth+1)
		return arrow.StructOf(
			arrow.Field{Name: "lower", Type: et, Nullable: true},
			arrow.Field{Name: "upper", Type: et, Nullable: true},
			arrow.Field{Name: "flags", Type: arrow.PrimitiveTypes.Uint8},
		)
	case kComposite:
		fs := make([]arrow.Field, len(t.fields))
		for i, f := range t.fields {
			fs[i] = arrow.Field{Name: f.name, Type: arrowType(f.typ, f.typmod, cfg, depth+1), Nullable: true,
				Metadata: fieldMeta(f.typ, f.typmod)}
		}
		return arrow.StructOf(fs...)
	}
	return extensions.NewOpaqueType(arrow.BinaryTypes.Binary, t.name, VendorName)
}

func fieldMeta(t *pgType, typmod int32) arrow.Metadata {
	name := "unknown"
	if t != nil {
		name = t.name
	}
	return arrow.NewMetadata([]string{MetaType, MetaTypmod}, []string{name, strconv.Itoa(int(typmod))})
}

// Range flags as PostgreSQL sends them (the "flags" child of a range).
const (
	RangeEmpty    = 0x01
	RangeLowerInc = 0x02
	RangeUpperInc = 0x04
	RangeLowerInf = 0x08
	RangeUpperInf = 0x10
)
