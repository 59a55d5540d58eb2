package adbc

import (
	"fmt"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/volleyhq/volley/async"
)

// ParamRecord builds the one-row record that binds args as a statement's
// parameters, one column per argument named "p1", "p2", ... The Go types
// accepted, and the Arrow type each becomes:
//
//	nil                                 null
//	bool                                boolean
//	int, int64 / int8 / int16 / int32   int64 / int8 / int16 / int32
//	uint, uint64 / uint8 / uint16 / uint32  uint64 / uint8 / uint16 / uint32
//	float32 / float64                   float32 / float64
//	string                              utf8
//	[]byte                              binary
//	time.Time                           timestamp[us, UTC]
//	time.Duration                       duration[us]
//	decimal128.Num                      not accepted (no precision); use string
//	an arrow.Array of length 1          its own type (for anything else)
//
// Any other type is an error wrapping async.ErrInvalid. The caller owns
// the record and releases it.
func ParamRecord(mem memory.Allocator, args []any) (arrow.RecordBatch, error) {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	fields := make([]arrow.Field, len(args))
	cols := make([]arrow.Array, len(args))
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, a := range args {
		col, err := paramArray(mem, a)
		if err != nil {
			return nil, fmt.Errorf("%w: adbc: parameter %d: %v", async.ErrInvalid, i+1, err)
		}
		cols[i] = col
		fields[i] = arrow.Field{Name: "p" + strconv.Itoa(i+1), Type: col.DataType(), Nullable: true}
	}
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, 1), nil
}

// paramArray returns a one-element array holding a.
func paramArray(mem memory.Allocator, a any) (arrow.Array, error) {
	switch v := a.(type) {
	case nil:
		return array.NewNull(1), nil
	case arrow.Array:
		if v.Len() != 1 {
			return nil, fmt.Errorf("an arrow.Array parameter must have length 1, not %d", v.Len())
		}
		v.Retain()
		return v, nil
	case bool:
		b := array.NewBooleanBuilder(mem)
		defer b.Release()
		b.Append(v)
		return b.NewArray(), nil
	case int:
		return one(array.NewInt64Builder(mem), int64(v)), nil
	case int64:
		return one(array.NewInt64Builder(mem), v), nil
	case int32:
		return one(array.NewInt32Builder(mem), v), nil
	case int16:
		return one(array.NewInt16Builder(mem), v), nil
	case int8:
		return one(array.NewInt8Builder(mem), v), nil
	case uint:
		return one(array.NewUint64Builder(mem), uint64(v)), nil
	case uint64:
		return one(array.NewUint64Builder(mem), v), nil
	case uint32:
		return one(array.NewUint32Builder(mem), v), nil
	case uint16:
		return one(array.NewUint16Builder(mem), v), nil
	case uint8:
		return one(array.NewUint8Builder(mem), v), nil
	case float64:
		return one(array.NewFloat64Builder(mem), v), nil
	case float32:
		return one(array.NewFloat32Builder(mem), v), nil
	case string:
		return one(array.NewStringBuilder(mem), v), nil
	case []byte:
		b := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
		defer b.Release()
		if v == nil {
			b.AppendNull()
		} else {
			b.Append(v)
		}
		return b.NewArray(), nil
	case time.Time:
		b := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"})
		defer b.Release()
		b.Append(arrow.Timestamp(v.UnixMicro()))
		return b.NewArray(), nil
	case time.Duration:
		b := array.NewDurationBuilder(mem, &arrow.DurationType{Unit: arrow.Microsecond})
		defer b.Release()
		b.Append(arrow.Duration(v.Microseconds()))
		return b.NewArray(), nil
	case decimal128.Num:
		return nil, fmt.Errorf("decimal128.Num has no precision; pass a string or a decimal arrow.Array")
	}
	return nil, fmt.Errorf("unsupported Go type %T", a)
}

// appender is the part of a typed arrow builder one uses.
type appender[T any] interface {
	Append(T)
	NewArray() arrow.Array
	Release()
}

// one builds a one-element array with b and releases b.
func one[T any](b appender[T], v T) arrow.Array {
	defer b.Release()
	b.Append(v)
	return b.NewArray()
}
