package postgres

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/volleyhq/volley/async"
)

// strCol builds one top-level utf8 or binary column directly: validity
// bits, int32 offsets and data written in place, without the per-value
// checks of array.BinaryBuilder (text columns dominate wide results). It
// is a decoder; finish cuts the column's array for a batch. Used by one
// goroutine.
type strCol struct {
	mem   memory.Allocator
	dmem  memory.Allocator // for offsets and data
	dt    arrow.DataType
	valid *memory.Buffer
	offs  *memory.Buffer
	data  *memory.Buffer

	vb    []byte  // valid's bytes
	ob    []int32 // offs as int32, len = capacity in offsets
	db    []byte  // data's bytes
	n     int     // values so far
	nulls int
	dlen  int // data bytes so far
}

func newStrCol(mem memory.Allocator, dt arrow.DataType) *strCol {
	c := &strCol{mem: mem, dmem: mem, dt: dt}
	if r, ok := mem.(*recycler); ok {
		c.dmem = dirty{r} // offsets and data are written before they are read
	}
	return c
}

// reserve makes room for rows more values and dataBytes more data.
func (c *strCol) reserve(rows, dataBytes int) {
	if c.offs == nil {
		c.valid = memory.NewResizableBuffer(c.mem)
		c.offs = memory.NewResizableBuffer(c.dmem)
		c.data = memory.NewResizableBuffer(c.dmem)
	}
	if need := c.n + rows + 1; need > len(c.ob) {
		c.offs.Reserve(4 * need)
		c.ob = arrow.Int32Traits.CastFromBytes(c.offs.Buf())
		if c.n == 0 {
			c.ob[0] = 0 // the buffer may be a reused, dirty one
		}
		c.valid.Reserve((need + 7) / 8)
		c.vb = c.valid.Buf()
	}
	if need := c.dlen + dataBytes; need > len(c.db) {
		c.data.Reserve(need)
		c.db = c.data.Buf()
	}
}

func (c *strCol) decode(v []byte) error {
	n := c.n
	if n+2 > len(c.ob) || (n+8)/8 > len(c.vb) {
		c.reserve(max(n, 1024), 0)
	}
	if v == nil {
		c.nulls++
	} else {
		end := c.dlen + len(v)
		if end > len(c.db) {
			if end > math.MaxInt32 {
				return fmt.Errorf("%w: postgres: string data of a batch exceeds 2 GiB", async.ErrInvalid)
			}
			c.reserve(0, max(len(v), c.dlen))
		}
		copy(c.db[c.dlen:end], v)
		c.dlen = end
		c.vb[n>>3] |= 1 << (n & 7)
	}
	c.ob[n+1] = int32(c.dlen)
	c.n = n + 1
	return nil
}

// finish returns the column's values so far as an array and starts over.
func (c *strCol) finish() arrow.Array {
	if c.offs == nil {
		c.reserve(0, 0)
	}
	c.offs.ResizeNoShrink(4 * (c.n + 1))
	c.data.ResizeNoShrink(c.dlen)
	valid := c.valid
	if c.nulls == 0 {
		valid = nil
	} else {
		valid.ResizeNoShrink((c.n + 7) / 8)
	}
	d := array.NewData(c.dt, c.n, []*memory.Buffer{valid, c.offs, c.data}, nil, c.nulls, 0)
	arr := array.MakeFromData(d)
	d.Release()
	c.release()
	return arr
}

// release drops the buffers (the arrays made from them keep theirs).
func (c *strCol) release() {
	if c.offs != nil {
		c.valid.Release()
		c.offs.Release()
		c.data.Release()
	}
	*c = strCol{mem: c.mem, dmem: c.dmem, dt: c.dt}
}
