package postgres_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/volleyhq/volley/adapters/postgres"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
	"github.com/volleyhq/volley/integration/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// dsn returns the shared server's DSN with the session in UTC.
func dsn(t testing.TB) string {
	return withParam(pgtest.Shared(t).DSN(), "timezone=UTC")
}

func withParam(dsn, kv string) string {
	if strings.Contains(dsn, "?") {
		return dsn + "&" + kv
	}
	return dsn + "?" + kv
}

// connect opens a Conn with cfg whose batches come from a checked
// allocator; cleanup closes it and asserts that no Arrow memory leaked.
func connect(t testing.TB, dsn string, cfg postgres.Config) (*postgres.Conn, *memory.CheckedAllocator) {
	t.Helper()
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	cfg.Allocator = mem
	ctr, err := postgres.NewConnector(pc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ctr.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		mem.AssertSize(t, 0)
	})
	return c.(*postgres.Conn), mem
}

// exec runs sql (no result) on a fresh admin connection.
func exec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql).ReadAll(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// readAll runs req through the Source directly and returns its schema and
// batches (the caller releases them).
func readAll(ctx context.Context, c *postgres.Conn, req *driver.Request) (*arrow.Schema, []arrow.RecordBatch, error) {
	if req.BatchBytes == 0 {
		req.BatchBytes = 1 << 20
	}
	src, err := c.Query(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	defer src.Close()
	schema, err := src.Schema(ctx)
	if err != nil {
		return nil, nil, err
	}
	var recs []arrow.RecordBatch
	for {
		b, err := src.Next(ctx)
		if err == io.EOF {
			return schema, recs, nil
		}
		if err != nil {
			for _, r := range recs {
				r.Release()
			}
			return schema, nil, err
		}
		if !b.Record.Schema().Equal(schema) {
			b.Release()
			return schema, recs, fmt.Errorf("batch schema %s differs from %s", b.Record.Schema(), schema)
		}
		recs = append(recs, b.Record)
	}
}

func release(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

// pgText renders value i of arr as PostgreSQL's text output would (ISO
// DateStyle, UTC), with null reported separately.
func pgText(arr arrow.Array, i int) (string, bool) {
	if arr.IsNull(i) {
		return "", true
	}
	switch a := arr.(type) {
	case *array.Boolean:
		if a.Value(i) {
			return "t", false
		}
		return "f", false
	case *array.Int16:
		return strconv.Itoa(int(a.Value(i))), false
	case *array.Int32:
		return strconv.Itoa(int(a.Value(i))), false
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10), false
	case *array.Uint32:
		return strconv.FormatUint(uint64(a.Value(i)), 10), false
	case *array.Uint8:
		return strconv.Itoa(int(a.Value(i))), false
	case *array.Float32:
		return fmtFloat(float64(a.Value(i)), 32), false
	case *array.Float64:
		return fmtFloat(a.Value(i), 64), false
	case *array.Decimal128:
		return a.Value(i).ToString(a.DataType().(*arrow.Decimal128Type).Scale), false
	case *array.Decimal256:
		return a.Value(i).ToString(a.DataType().(*arrow.Decimal256Type).Scale), false
	case *array.String:
		return a.Value(i), false
	case *array.Binary:
		return `\x` + hex.EncodeToString(a.Value(i)), false
	case *extensions.UUIDArray:
		return a.Value(i).String(), false
	case *extensions.JSONArray:
		return a.Storage().(*array.String).Value(i), false
	case *extensions.OpaqueArray:
		return hex.EncodeToString(a.Storage().(*array.Binary).Value(i)), false
	case *array.Date32:
		return fmtDate(a.Value(i).ToTime()), false
	case *array.Time64:
		return fmtTime(time.Duration(a.Value(i)) * time.Microsecond), false
	case *array.Timestamp:
		tt := a.Value(i).ToTime(arrow.Microsecond)
		s := fmtDate(tt)
		bc := strings.HasSuffix(s, " BC")
		s = strings.TrimSuffix(s, " BC") + " " + fmtTime(time.Duration(tt.Hour())*time.Hour+time.Duration(tt.Minute())*time.Minute+
			time.Duration(tt.Second())*time.Second+time.Duration(tt.Nanosecond()))
		if a.DataType().(*arrow.TimestampType).TimeZone != "" {
			s += "+00"
		}
		if bc {
			s += " BC"
		}
		return s, false
	case *array.MonthDayNanoInterval:
		v := a.Value(i)
		return fmt.Sprintf("%d %d %d", v.Months, v.Days, v.Nanoseconds/1000), false
	case *array.Dictionary:
		return a.Dictionary().(*array.String).Value(a.GetValueIndex(i)), false
	case *array.List:
		lo, hi := a.ValueOffsets(i)
		parts := make([]string, 0, hi-lo)
		for j := lo; j < hi; j++ {
			s, null := pgText(a.ListValues(), int(j))
			switch {
			case null:
				s = "NULL"
			case needQuote(s, `{},"\`, true):
				s = quote(s)
			}
			parts = append(parts, s)
		}
		return "{" + strings.Join(parts, ",") + "}", false
	case *array.Struct:
		st := a.DataType().(*arrow.StructType)
		if st.NumFields() == 3 && st.Field(2).Name == "flags" {
			return rangeText(a, i), false
		}
		if st.NumFields() == 2 && st.Field(1).Name == "offset" {
			tm, _ := pgText(a.Field(0), i)
			off := a.Field(1).(*array.Int32).Value(i)
			sign := "+"
			if off < 0 {
				sign, off = "-", -off
			}
			z := fmt.Sprintf("%s%02d", sign, off/3600)
			if m := off % 3600 / 60; m != 0 || off%60 != 0 {
				z += fmt.Sprintf(":%02d", m)
			}
			if sec := off % 60; sec != 0 {
				z += fmt.Sprintf(":%02d", sec)
			}
			return tm + z, false
		}
		parts := make([]string, st.NumFields())
		for f := range parts {
			s, null := pgText(a.Field(f), i)
			if !null && needQuote(s, `(),"\`, false) {
				s = quote(s)
			}
			parts[f] = s
		}
		return "(" + strings.Join(parts, ",") + ")", false
	}
	return fmt.Sprintf("<unhandled %s>", arr.DataType()), false
}

func rangeText(a *array.Struct, i int) string {
	flags := a.Field(2).(*array.Uint8).Value(i)
	if flags&postgres.RangeEmpty != 0 {
		return "empty"
	}
	var b strings.Builder
	if flags&postgres.RangeLowerInc != 0 {
		b.WriteByte('[')
	} else {
		b.WriteByte('(')
	}
	bound := func(arr arrow.Array) {
		if s, null := pgText(arr, i); !null {
			if needQuote(s, `,()[]"\`, false) {
				s = quote(s)
			}
			b.WriteString(s)
		}
	}
	bound(a.Field(0))
	b.WriteByte(',')
	bound(a.Field(1))
	if flags&postgres.RangeUpperInc != 0 {
		b.WriteByte(']')
	} else {
		b.WriteByte(')')
	}
	return b.String()
}

func needQuote(s, specials string, arrayNull bool) bool {
	if s == "" || strings.ContainsAny(s, specials+" \t\n\r\v\f") {
		return true
	}
	return arrayNull && strings.EqualFold(s, "NULL")
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func fmtFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

func fmtDate(t time.Time) string {
	y := t.Year()
	if y <= 0 {
		return fmt.Sprintf("%04d-%02d-%02d BC", 1-y, t.Month(), t.Day())
	}
	return fmt.Sprintf("%04d-%02d-%02d", y, t.Month(), t.Day())
}

func fmtTime(d time.Duration) string {
	us := d.Microseconds()
	s := fmt.Sprintf("%02d:%02d:%02d", us/3600e6, us/60e6%60, us/1e6%60)
	if f := us % 1e6; f != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%06d", f), "0")
	}
	return s
}

// errCode returns the errno and SQLSTATE of err.
func errCode(err error) (async.Errno, string) {
	var ae *async.Error
	if errors.As(err, &ae) {
		if v, ok := ae.Metadata.GetValue(postgres.MetaSQLState); ok {
			return ae.Code, v
		}
		return ae.Code, ""
	}
	return async.CodeOf(err), ""
}
