package driver_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/devicebuf"
	"github.com/volleyhq/volley/driver"
)

// wordsDriver is a toy adapter: every query returns the words of its SQL
// text as one utf8 column, in one batch.
type wordsDriver struct{}

func (wordsDriver) Open(ctx context.Context, dsn string) (driver.Conn, error) {
	return wordsConn{}, nil
}

type wordsConn struct{}

func (wordsConn) Close() error { return nil }
func (wordsConn) Query(ctx context.Context, req *driver.Request) (async.Source, error) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "word", Type: arrow.BinaryTypes.String}}, nil)
	b := array.NewStringBuilder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(strings.Fields(req.SQL), nil)
	col := b.NewArray()
	defer col.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(col.Len()))
	defer rec.Release()
	rr, err := array.NewRecordReader(schema, []arrow.RecordBatch{rec})
	if err != nil {
		return nil, err
	}
	return async.SourceFromRecordReader(rr), nil
}

// Adapters register themselves from init, as this one does.
func init() { driver.Register("words", wordsDriver{}) }

// Open a registered driver by name and stream a query's result as Arrow
// record batches, with the placement decision the policy took.
func Example() {
	// A machine without GPUs, so that the example prints the same
	// everywhere: the CUDA library is pointed at a path that does not exist.
	devices := devicebuf.NewManager(devicebuf.Options{CUDALibraryPath: "/nonexistent/libcuda.so.1"})
	defer devices.Close()
	db, err := driver.OpenConfig("words", "", driver.Config{Devices: devices})
	if err != nil {
		panic(err)
	}
	defer db.Close()

	ctx := context.Background()
	rows, err := db.Stream(ctx, "volley streams query results", nil)
	if err != nil {
		panic(err)
	}
	defer rows.Close()
	for batch, err := range rows.All(ctx) {
		if err != nil {
			panic(err)
		}
		fmt.Println(batch.Device, batch.Record.Column(0))
		batch.Release()
	}
	fmt.Println(rows.Query().Placement().Device)
	// Output:
	// cpu ["volley" "streams" "query" "results"]
	// cpu
}
