package postgres

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// batcher decodes rows into one record builder and cuts byte- and
// row-bounded batches. Byte accounting uses the values' wire sizes plus 4
// bytes per value, which tracks the Arrow buffers' size closely for the
// common types. It is used by one goroutine at a time.
type batcher struct {
	rb       *array.RecordBuilder
	decs     []decoder
	names    []string
	pgNames  []string
	rows     int64
	bytes    int64
	maxRows  int64
	maxBytes int64
	// lastRows is the previous batch's row count, used to reserve builder
	// capacity once instead of growing by doubling.
	lastRows int
}

func newBatcher(mem memory.Allocator, schema *arrow.Schema, types []*pgType, typmods []int32, cfg *Config, maxRows, maxBytes int64) (*batcher, error) {
	b := &batcher{rb: array.NewRecordBuilder(mem, schema), maxRows: maxRows, maxBytes: maxBytes}
	for i, f := range schema.Fields() {
		d, err := plan(types[i], typmods[i], b.rb.Field(i), cfg, 0)
		if err != nil {
			b.rb.Release()
			return nil, err
		}
		b.decs = append(b.decs, d)
		b.names = append(b.names, f.Name)
		name := "unknown"
		if types[i] != nil {
			name = types[i].name
		}
		b.pgNames = append(b.pgNames, name)
	}
	return b, nil
}

// add decodes value v (nil for NULL) of column i of the current row.
func (b *batcher) add(i int, v []byte) error {
	if err := b.decs[i].decode(v); err != nil {
		return fmt.Errorf("postgres: column %q (%s) row %d of batch: %w", b.names[i], b.pgNames[i], b.rows, err)
	}
	b.bytes += int64(len(v)) + 4
	return nil
}

// endRow finishes a row and reports whether the batch is full.
func (b *batcher) endRow() bool {
	b.rows++
	if b.rows == 1 && b.lastRows > 0 {
		// Reserve once for the expected row count (fixed-width buffers).
		b.rb.Reserve(b.lastRows)
	}
	return b.bytes >= b.maxBytes || (b.maxRows > 0 && b.rows >= b.maxRows)
}

// flush returns the rows so far as a batch, or nil when there are none.
func (b *batcher) flush() arrow.RecordBatch {
	if b.rows == 0 {
		return nil
	}
	rec := b.rb.NewRecordBatch()
	b.lastRows = int(b.rows)
	b.rows, b.bytes = 0, 0
	return rec
}

func (b *batcher) release() {
	if b != nil && b.rb != nil {
		b.rb.Release()
		b.rb = nil
	}
}
