package postgres_test

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/volleyhq/volley/adapters/postgres"
	"github.com/volleyhq/volley/driver"
)

// typeCase is one type round trip: from is a query with a column v; text
// is the expression (over v) whose text PostgreSQL renders for comparison
// (default v::text).
type typeCase struct {
	name string
	from string
	text string
	want arrow.DataType // nil: only compared through text
	cfg  postgres.Config
}

const typesSetup = `
DROP TYPE IF EXISTS rt_mood CASCADE;
DROP TYPE IF EXISTS rt_pair CASCADE;
DROP DOMAIN IF EXISTS rt_posint CASCADE;
CREATE TYPE rt_mood AS ENUM ('sad', 'ok', 'happy', 'with space');
CREATE TYPE rt_pair AS (a int4, b text, c numeric(6,2));
CREATE DOMAIN rt_posint AS int4 CHECK (VALUE > 0);
`

func values(typ string, vals ...string) string {
	rows := make([]string, len(vals))
	for i, v := range vals {
		rows[i] = "(" + v + "::" + typ + ")"
	}
	// The outer cast keeps the typmod, which VALUES lists may drop.
	return "SELECT v::" + typ + " AS v FROM (VALUES " + strings.Join(rows, ",") + ") t(v)"
}

func typeCases() []typeCase {
	return []typeCase{
		{name: "bool", from: values("bool", "true", "false", "NULL"), want: arrow.FixedWidthTypes.Boolean},
		{name: "int2", from: values("int2", "0", "'-32768'", "32767", "NULL") + " UNION ALL SELECT g::int2 FROM generate_series(-300, 300, 7) g", want: arrow.PrimitiveTypes.Int16},
		{name: "int4", from: values("int4", "'-2147483648'", "2147483647", "NULL") + " UNION ALL SELECT g FROM generate_series(-100000, 100000, 997) g", want: arrow.PrimitiveTypes.Int32},
		{name: "int8", from: values("int8", "'-9223372036854775808'", "9223372036854775807", "NULL") + " UNION ALL SELECT g * 1000003 FROM generate_series(-1000, 1000, 3) g", want: arrow.PrimitiveTypes.Int64},
		{name: "oid", from: values("oid", "0", "4294967295", "NULL"), want: arrow.PrimitiveTypes.Uint32},
		{name: "float4", from: values("float4", "0", "-1.5", "3.4028235e38", "1e-45", "'NaN'", "'Infinity'", "'-Infinity'", "NULL"), want: arrow.PrimitiveTypes.Float32},
		{name: "float8", from: values("float8", "0", "-0.1", "1.7976931348623157e308", "5e-324", "'NaN'", "'-Infinity'", "NULL") + " UNION ALL SELECT g / 7.0::float8 FROM generate_series(1, 500) g", want: arrow.PrimitiveTypes.Float64},
		{name: "numeric(15,2)", from: values("numeric(15,2)", "0", "-0.01", "9999999999999.99", "-9999999999999.99", "1.5", "NULL") + " UNION ALL SELECT (g * 1.37)::numeric(15,2) FROM generate_series(-2000, 2000, 3) g", want: &arrow.Decimal128Type{Precision: 15, Scale: 2}},
		{name: "numeric(38,10)", from: values("numeric(38,10)", "0", "1234567890123456789012345678.0123456789", "-0.0000000001", "NULL"), want: &arrow.Decimal128Type{Precision: 38, Scale: 10}},
		{name: "numeric(50,5)", from: values("numeric(50,5)", "0", "123456789012345678901234567890123456789012345.12345", "-1.00001", "NULL"), want: &arrow.Decimal256Type{Precision: 50, Scale: 5}},
		{name: "numeric(4,0)", from: values("numeric(4,0)", "9999", "-9999", "10", "0", "NULL"), want: &arrow.Decimal128Type{Precision: 4, Scale: 0}},
		{name: "numeric", from: values("numeric", "0", "0.000", "-1.5", "123456789012345678901234567890.000000000000000000001", "1e-30", "1e30", "'NaN'", "'Infinity'", "'-Infinity'", "NULL") + " UNION ALL SELECT g::numeric / 7 FROM generate_series(-50, 50) g", want: arrow.BinaryTypes.String},
		{name: "numeric-decimal", from: values("numeric", "0", "-1.5", "2.345", "1e20", "NULL"), text: "round(v, 2)", want: &arrow.Decimal128Type{Precision: 38, Scale: 2}, cfg: postgres.Config{Numeric: postgres.NumericDecimal, NumericScale: 2}},
		{name: "money", from: values("money", "0", "'-12.34'", "'92233720368547758.07'", "'-92233720368547758.08'", "NULL"), text: "v::numeric", want: &arrow.Decimal128Type{Precision: 19, Scale: 2}},
		{name: "text", from: values("text", "''", "'a'", "'héllo wörld ☃'", "'with \"quote\" and \\ back'", "repeat('x', 10000)", "NULL"), want: arrow.BinaryTypes.String},
		{name: "varchar(5)", from: values("varchar(5)", "''", "'abcde'", "NULL"), want: arrow.BinaryTypes.String},
		{name: "bpchar(4)", from: values("char(4)", "''", "'ab'", "'abcd'", "NULL"), want: arrow.BinaryTypes.String},
		{name: "name", from: values("name", "'pg_class'", "''", "NULL"), want: arrow.BinaryTypes.String},
		{name: "char", from: values(`"char"`, "'a'", "''", "'Z'", "NULL"), want: arrow.BinaryTypes.String},
		{name: "bytea", from: values("bytea", `'\x'`, `'\x00ff10'`, "NULL") + ` UNION ALL SELECT decode(repeat('ab', g), 'hex') FROM generate_series(0, 40) g`, want: arrow.BinaryTypes.Binary},
		{name: "uuid", from: values("uuid", "'00000000-0000-0000-0000-000000000000'", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'", "NULL"), want: extensions.NewUUIDType()},
		{name: "json", from: values("json", `'{"a": [1, 2]}'`, `'[]'`, `'"s"'`, `'null'`, "NULL"), want: mustJSON()},
		{name: "jsonb", from: values("jsonb", `'{"b": 1, "a": [1, 2.50]}'`, `'[]'`, `'{}'`, "NULL"), want: mustJSON()},
		{name: "xml", from: values("xml", "'<a>b</a>'", "NULL"), want: arrow.BinaryTypes.String},
		{name: "date", from: values("date", "'2000-01-01'", "'1970-01-01'", "'0044-03-15 BC'", "'4713-01-01 BC'", "'5874897-12-31'", "'1999-12-31'", "NULL") + " UNION ALL SELECT '2024-02-27'::date + g FROM generate_series(-400, 400, 9) g", want: arrow.FixedWidthTypes.Date32},
		{name: "date-infinity", from: values("date", "'infinity'", "'-infinity'", "'2000-01-01'"), text: "CASE WHEN isfinite(v) THEN v::text END", want: arrow.FixedWidthTypes.Date32},
		{name: "time", from: values("time", "'00:00:00'", "'23:59:59.999999'", "'12:34:56.5'", "'24:00:00'", "NULL"), want: arrow.FixedWidthTypes.Time64us},
		{name: "timetz", from: values("timetz", "'00:00:00+00'", "'12:34:56.789+05:30'", "'23:59:59-08'", "'01:02:03+01:02:03'", "NULL"), want: nil},
		{name: "timestamp", from: values("timestamp", "'2000-01-01 00:00:00'", "'1970-01-01 00:00:00.000001'", "'0044-03-15 12:00:00 BC'", "'294000-12-31 23:59:59.999999'", "NULL") + " UNION ALL SELECT '2024-01-01'::timestamp + g * interval '37 minutes 1.25 seconds' FROM generate_series(-500, 500, 7) g", want: &arrow.TimestampType{Unit: arrow.Microsecond}},
		{name: "timestamp-infinity", from: values("timestamp", "'infinity'", "'-infinity'", "'2001-02-03 04:05:06'", "'294276-12-31 23:59:59.999999'"), text: "CASE WHEN v < '294247-01-01' AND isfinite(v) THEN v::text END", want: &arrow.TimestampType{Unit: arrow.Microsecond}},
		{name: "timestamptz", from: values("timestamptz", "'2000-01-01 00:00:00+00'", "'2024-06-01 12:00:00.123+02'", "NULL"), want: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{name: "interval", from: values("interval", "'0'", "'1 year 2 months 3 days 04:05:06.789'", "'-1 day -00:00:00.000001'", "'178000000 years'", "'-3 mons 30 days 100 hours'", "NULL"),
			text: "(extract(year from v)*12 + extract(month from v))::int || ' ' || extract(day from v)::int || ' ' || ((extract(hour from v)*3600 + extract(minute from v)*60)*1000000 + extract(microseconds from v))::bigint",
			want: arrow.FixedWidthTypes.MonthDayNanoInterval},
		{name: "inet", from: values("inet", "'192.168.0.1'", "'10.0.0.0/8'", "'::1'", "'2001:db8::1/64'", "'::ffff:1.2.3.4'", "NULL"), want: arrow.BinaryTypes.String},
		{name: "cidr", from: values("cidr", "'10.0.0.0/8'", "'192.168.1.1/32'", "'2001:db8::/32'", "NULL"), want: arrow.BinaryTypes.String},
		{name: "macaddr", from: values("macaddr", "'08:00:2b:01:02:03'", "NULL"), want: arrow.BinaryTypes.String},
		{name: "macaddr8", from: values("macaddr8", "'08:00:2b:01:02:03:04:05'", "NULL"), want: arrow.BinaryTypes.String},
		{name: "bit", from: values("bit(10)", "B'1010101010'", "NULL"), want: arrow.BinaryTypes.String},
		{name: "varbit", from: values("varbit", "B''", "B'1'", "B'111000111000111'", "NULL"), want: arrow.BinaryTypes.String},
		{name: "int4[]", from: values("int4[]", "'{}'", "'{1,2,3}'", "'{NULL,5}'", "'[0:2]={7,8,9}'", "NULL"), text: "regexp_replace(v::text, '^\\[[^=]*\\]=', '')", want: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
		{name: "text[]", from: values("text[]", "'{}'", `'{"a b","",NULL,"NULL","x\"y","back\\\\slash",plain}'`, "NULL"), want: arrow.ListOf(arrow.BinaryTypes.String)},
		{name: "numeric(10,3)[]", from: values("numeric(10,3)[]", "'{1.5,-2.25,NULL}'", "NULL"), want: nil},
		{name: "date[]", from: values("date[]", "'{2020-01-01,1999-12-31}'"), want: arrow.ListOf(arrow.FixedWidthTypes.Date32)},
		{name: "uuid[]", from: values("uuid[]", "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'"), want: nil},
		{name: "enum", from: values("rt_mood", "'sad'", "'happy'", "'sad'", "'with space'", "NULL"), want: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}},
		{name: "enum[]", from: values("rt_mood[]", "'{sad,ok}'", "'{}'"), want: nil},
		{name: "composite", from: values("rt_pair", "ROW(1, 'x', 1.5)", "ROW(NULL, 'a b', NULL)", "ROW(2, '', -3)", "NULL"), want: nil},
		{name: "domain", from: values("rt_posint", "1", "2147483647", "NULL"), want: arrow.PrimitiveTypes.Int32},
		{name: "int4range", from: values("int4range", "'[1,5)'", "'empty'", "'(,10]'", "'[3,)'", "'(,)'", "NULL"), want: nil},
		{name: "numrange", from: values("numrange", "'[1.5,2.25]'", "NULL"), want: nil},
		{name: "tsrange", from: values("tsrange", `'["2024-01-01 00:00:00","2024-01-02 00:00:00")'`), want: nil},
		{name: "daterange", from: values("daterange", "'[2020-01-01,2020-02-01)'"), want: nil},
		{name: "tsvector", from: values("tsvector", "'a fat cat'", "''", "NULL"), text: "encode(tsvectorsend(v), 'hex')", want: extensions.NewOpaqueType(arrow.BinaryTypes.Binary, "tsvector", postgres.VendorName)},
		{name: "point", from: values("point", "'(1,2)'", "NULL"), text: "encode(point_send(v), 'hex')", want: extensions.NewOpaqueType(arrow.BinaryTypes.Binary, "point", postgres.VendorName)},
	}
}

func mustJSON() arrow.DataType {
	t, err := extensions.NewJSONType(arrow.BinaryTypes.String)
	if err != nil {
		panic(err)
	}
	return t
}

func TestTypeRoundTrip(t *testing.T) {
	d := dsn(t)
	exec(t, d, typesSetup)
	for _, tc := range typeCases() {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := connect(t, d, tc.cfg)
			text := tc.text
			if text == "" {
				text = "CASE WHEN v::text IS NOT NULL THEN format('%s', v) END" // the output function's text
			}
			q := "SELECT v, " + text + " AS t FROM (" + tc.from + ") s"
			for _, path := range []struct {
				name string
				req  driver.Request
			}{
				{"copy", driver.Request{SQL: q, BatchRows: 100}},
				{"extended", driver.Request{SQL: "SELECT * FROM (" + q + ") x WHERE $1::int = 1", Args: []any{1}, BatchRows: 100}},
			} {
				schema, recs, err := readAll(context.Background(), c, &path.req)
				if err != nil {
					t.Fatalf("%s: %v", path.name, err)
				}
				f := schema.Field(0)
				if tc.want != nil && !arrow.TypeEqual(f.Type, tc.want) {
					t.Errorf("%s: type %s, want %s", path.name, f.Type, tc.want)
				}
				if _, ok := f.Metadata.GetValue(postgres.MetaType); !ok {
					t.Errorf("%s: no %s metadata", path.name, postgres.MetaType)
				}
				rows := 0
				for _, rec := range recs {
					for i := 0; i < int(rec.NumRows()); i++ {
						rows++
						got, gnull := pgText(rec.Column(0), i)
						want, wnull := pgText(rec.Column(1), i)
						if gnull != wnull || (!gnull && !textEqual(rec.Column(0), i, got, want)) {
							t.Errorf("%s row %d: got %q (null %v), PostgreSQL says %q (null %v)", path.name, rows, got, gnull, want, wnull)
						}
					}
				}
				release(recs)
				if rows == 0 {
					t.Fatalf("%s: no rows", path.name)
				}
			}
		})
	}
}

// textEqual compares a decoded value's rendering with PostgreSQL's text;
// floats compare by value (PostgreSQL's shortest form picks exponents
// differently from Go's).
func textEqual(arr arrow.Array, i int, got, want string) bool {
	switch a := arr.(type) {
	case *array.Float32:
		w, err := strconv.ParseFloat(want, 32)
		v := float64(a.Value(i))
		return err == nil && (w == v || math.IsNaN(w) && math.IsNaN(v)) || want == fmtFloat(v, 32)
	case *array.Float64:
		w, err := strconv.ParseFloat(want, 64)
		v := a.Value(i)
		return err == nil && (w == v || math.IsNaN(w) && math.IsNaN(v)) || want == fmtFloat(v, 64)
	}
	return got == want
}
