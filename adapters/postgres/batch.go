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
	blds []array.Builder
	// width is, for a top-level fixed-width column built on dirty
	// (reused, not zeroed) buffers, its value width in bytes: the slots of
	// its nulls are zeroed when the batch is cut. 0 for other columns.
	width    []int
	decs     []decoder
	names    []string
	pgNames  []string
	rows     int64
	bytes    int64
	maxRows  int64
	maxBytes int64
	// lastRows is a recent batches' row count and lastData their string
	// columns' data sizes, used to reserve builder capacity once per batch
	// instead of growing by doubling (and copying).
	lastRows int
	room     int // rows the fixed-width builders have capacity for
	lastData []int
	binary   []*array.BinaryBuilder // top-level string/binary builders, or nil
	strs     []*strCol              // top-level text/bytea columns built directly, or nil
	schema   *arrow.Schema
}

func newBatcher(mem memory.Allocator, schema *arrow.Schema, types []*pgType, typmods []int32, cfg *Config, maxRows, maxBytes int64) (*batcher, error) {
	nf := schema.NumFields()
	b := &batcher{blds: make([]array.Builder, nf), width: make([]int, nf), maxRows: maxRows, maxBytes: maxBytes,
		lastData: make([]int, nf), strs: make([]*strCol, nf), schema: schema}
	var dmem memory.Allocator
	if r, ok := mem.(*recycler); ok {
		dmem = dirty{r}
	}
	for i, f := range schema.Fields() {
		m := mem
		if w := dirtyWidth(f.Type); w > 0 && dmem != nil {
			// Every value slot is written by an append; a null's is
			// zeroed at the cut, so reused bytes never show.
			m, b.width[i] = dmem, w
		}
		b.blds[i] = array.NewBuilder(m, f.Type)
	}
	for i, f := range schema.Fields() {
		d, err := plan(types[i], typmods[i], b.blds[i], cfg, 0)
		if err != nil {
			b.release()
			return nil, err
		}
		if u, ok := d.(unsafeAppender); ok {
			u.setUnsafe()
		}
		switch d.(type) {
		case *textDec, *binaryDec:
			// Plain utf8/binary columns (not extension types) are built
			// directly; their record-builder field stays empty.
			if dt := f.Type.ID(); dt == arrow.STRING || dt == arrow.BINARY {
				sc := newStrCol(mem, f.Type)
				b.strs[i] = sc
				d = sc
			}
		}
		b.decs = append(b.decs, d)
		var bb *array.BinaryBuilder
		switch x := b.blds[i].(type) {
		case *array.StringBuilder:
			bb = x.BinaryBuilder
		case *array.BinaryBuilder:
			bb = x
		}
		b.binary = append(b.binary, bb)
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
	if b.room == 0 {
		b.reserve()
	}
	if err := b.decs[i].decode(v); err != nil {
		return b.colErr(i, err)
	}
	b.bytes += int64(len(v)) + 4
	return nil
}

// colErr names the column of a decode error.
func (b *batcher) colErr(i int, err error) error {
	return fmt.Errorf("postgres: column %q (%s) row %d of batch: %w", b.names[i], b.pgNames[i], b.rows, err)
}

// reserve guarantees capacity for the next rows: the previous batch's row
// count (and string data) at a batch's start, else as many rows again as
// the batch has (doubling), at least 1024.
func (b *batcher) reserve() {
	n := max(int(b.rows), 1024)
	switch {
	case b.rows == 0 && b.lastRows > 0:
		n = b.lastRows + b.lastRows/16
		for i, bb := range b.binary {
			if b.lastData[i] == 0 {
				continue
			}
			if sc := b.strs[i]; sc != nil {
				sc.reserve(n, b.lastData[i]+b.lastData[i]/16)
			} else if bb != nil {
				bb.ReserveData(b.lastData[i] + b.lastData[i]/16)
			}
		}
	case b.rows > 0 && b.lastRows == 0 && b.bytes > 0:
		// First batch: size it from the rows so far instead of doubling.
		est := b.maxBytes / (b.bytes / b.rows)
		if b.maxRows > 0 {
			est = min(est, b.maxRows)
		}
		if rest := int(est+est/16) - int(b.rows); rest > n {
			n = rest
			for i, bb := range b.binary {
				if sc := b.strs[i]; sc != nil {
					sc.reserve(n, int(int64(sc.dlen)*int64(n)/b.rows))
				} else if bb != nil {
					bb.ReserveData(int(int64(bb.DataLen()) * (int64(n) + b.rows) / b.rows))
				}
			}
		}
	}
	for i, sc := range b.strs {
		if sc != nil {
			sc.reserve(n, 0)
		} else {
			b.blds[i].Reserve(n)
		}
	}
	b.room = n
}

// endRow finishes a row and reports whether the batch is full.
func (b *batcher) endRow() bool {
	b.rows++
	b.room--
	return b.bytes >= b.maxBytes || (b.maxRows > 0 && b.rows >= b.maxRows)
}

// flush returns the rows so far as a batch, or nil when there are none.
func (b *batcher) flush() arrow.RecordBatch {
	if b.rows == 0 {
		return nil
	}
	cols := make([]arrow.Array, len(b.decs))
	for i, bb := range b.binary {
		if sc := b.strs[i]; sc != nil {
			b.lastData[i] = sizeHint(b.lastData[i], sc.dlen)
			cols[i] = sc.finish()
			continue
		}
		if bb != nil {
			b.lastData[i] = sizeHint(b.lastData[i], bb.DataLen())
		}
		cols[i] = b.blds[i].NewArray()
		if w := b.width[i]; w > 0 {
			zeroNullSlots(cols[i], w)
		}
	}
	rec := array.NewRecordBatch(b.schema, cols, b.rows)
	for _, c := range cols {
		c.Release()
	}
	b.lastRows = sizeHint(b.lastRows, int(b.rows))
	b.rows, b.bytes, b.room = 0, 0, 0
	return rec
}

func (b *batcher) release() {
	if b != nil && b.blds != nil {
		for _, bld := range b.blds {
			if bld != nil {
				bld.Release()
			}
		}
		b.blds = nil
		for _, sc := range b.strs {
			if sc != nil {
				sc.release()
			}
		}
	}
}

// sizeHint follows the largest of recent batches' sizes: n, or the
// previous hint less a sixteenth when that is more. Batches cut by bytes
// vary a little in rows and data; sizing the next one from the last alone
// could ask for a little more than the recycled buffers hold (each batch
// reuses the set of the batch before last), and make new ones.
func sizeHint(prev, n int) int { return max(n, prev-prev/16) }

// dirtyWidth is the value width in bytes of a plain fixed-width type whose
// builder writes every value slot it appends (all but nulls' slots), or 0.
func dirtyWidth(dt arrow.DataType) int {
	switch dt.ID() {
	case arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT32, arrow.FLOAT32, arrow.FLOAT64,
		arrow.DATE32, arrow.TIME64, arrow.TIMESTAMP, arrow.DECIMAL128, arrow.DECIMAL256,
		arrow.INTERVAL_MONTH_DAY_NANO:
		return dt.(arrow.FixedWidthDataType).BitWidth() / 8
	}
	return 0
}

// zeroNullSlots zeroes the value slots of arr's nulls (width bytes each):
// a builder's AppendNull leaves them as the buffer held them.
func zeroNullSlots(arr arrow.Array, width int) {
	if arr.NullN() == 0 {
		return
	}
	d := arr.Data()
	buf := d.Buffers()[1].Bytes()
	off := d.Offset()
	for i := 0; i < arr.Len(); i++ {
		if arr.IsNull(i) {
			clear(buf[(off+i)*width : (off+i+1)*width])
		}
	}
}
