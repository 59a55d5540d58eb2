package devicebuf

import (
	"encoding/binary"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/volleyhq/volley/async"
)

// bufAlign is the alignment of every buffer inside a batch's block, the
// Arrow recommendation (and enough for any CUDA load).
const bufAlign = 64

// plan is the packed layout of one record batch: every buffer of every
// array in C data interface order, each at an aligned offset of one block.
type plan struct {
	bufs  []planBuf
	size  int64 // total bytes of the block, aligned
	root  *planNode
	bytes int64 // sum of the buffers' lengths
}

// planBuf is one buffer: its host bytes (nil for an absent buffer) and its
// offset in the block.
type planBuf struct {
	data []byte
	off  int64
}

// planNode mirrors one array: its fields, its buffers (indices into
// plan.bufs, C order) and how they map back to arrow-go's buffer order.
type planNode struct {
	dt                    arrow.DataType
	length, nulls, offset int64
	bufs                  []int
	skipValidity          bool // arrow-go keeps a nil slot the C interface drops
	sizesBuffer           bool // the C interface adds variadic buffer sizes at the end
	children              []*planNode
	dict                  *planNode
}

func alignUp(n int64) int64 { return (n + bufAlign - 1) &^ (bufAlign - 1) }

// hasValidity reports whether the C data interface gives type id a validity
// buffer.
func hasValidity(id arrow.Type) bool {
	switch id {
	case arrow.NULL, arrow.SPARSE_UNION, arrow.DENSE_UNION, arrow.RUN_END_ENCODED:
		return false
	}
	return true
}

func storageID(dt arrow.DataType) arrow.Type {
	for {
		ext, ok := dt.(arrow.ExtensionType)
		if !ok {
			return dt.ID()
		}
		dt = ext.StorageType()
	}
}

// planRecord lays out rec's buffers. The plan borrows rec's memory: it is
// valid while rec is.
func planRecord(rec arrow.RecordBatch) (*plan, error) {
	p := &plan{}
	root := &planNode{dt: arrow.StructOf(rec.Schema().Fields()...), length: rec.NumRows(),
		bufs: []int{p.add(nil)}}
	for i := 0; i < int(rec.NumCols()); i++ {
		n, err := p.node(rec.Column(i).Data())
		if err != nil {
			return nil, fmt.Errorf("devicebuf: column %d (%s): %w", i, rec.Schema().Field(i).Name, err)
		}
		root.children = append(root.children, n)
	}
	p.root = root
	if p.size == 0 {
		p.size = bufAlign // never allocate zero bytes
	}
	return p, nil
}

func (p *plan) add(b []byte) int {
	off := int64(-1)
	if b != nil {
		off = p.size
		p.size = alignUp(p.size + int64(len(b)))
		p.bytes += int64(len(b))
	}
	p.bufs = append(p.bufs, planBuf{data: b, off: off})
	return len(p.bufs) - 1
}

func (p *plan) node(d arrow.ArrayData) (*planNode, error) {
	id := storageID(d.DataType())
	n := &planNode{dt: d.DataType(), length: int64(d.Len()), nulls: int64(d.NullN()), offset: int64(d.Offset())}
	bufs := d.Buffers()
	if !hasValidity(id) && len(bufs) > 0 {
		if bufs[0] != nil && bufs[0].Len() > 0 {
			return nil, fmt.Errorf("%w: %s array has a validity buffer the C data interface cannot carry", async.ErrInvalid, d.DataType())
		}
		bufs = bufs[1:]
		n.skipValidity = true
	}
	for _, b := range bufs {
		n.bufs = append(n.bufs, p.add(bytesOf(b)))
	}
	if id == arrow.BINARY_VIEW || id == arrow.STRING_VIEW {
		var sizes []byte
		if len(bufs) > 2 {
			sizes = make([]byte, 8*(len(bufs)-2))
			for i, b := range bufs[2:] {
				binary.LittleEndian.PutUint64(sizes[8*i:], uint64(b.Len()))
			}
		} else {
			sizes = []byte{}
		}
		n.bufs = append(n.bufs, p.add(sizes))
		n.sizesBuffer = true
	}
	for _, c := range d.Children() {
		cn, err := p.node(c)
		if err != nil {
			return nil, err
		}
		n.children = append(n.children, cn)
	}
	if dict := dictionaryOf(d); dict != nil {
		dn, err := p.node(dict)
		if err != nil {
			return nil, err
		}
		n.dict = dn
	}
	return n, nil
}

func bytesOf(b *memory.Buffer) []byte {
	if b == nil {
		return nil
	}
	if bs := b.Bytes(); bs != nil {
		return bs
	}
	return []byte{}
}

// deviceArray builds the DeviceArray tree for a block at base.
func (p *plan) deviceArray(base uintptr) *async.DeviceArray {
	return p.deviceNode(p.root, base)
}

func (p *plan) deviceNode(n *planNode, base uintptr) *async.DeviceArray {
	a := &async.DeviceArray{Length: n.length, NullCount: n.nulls, Offset: n.offset,
		Buffers: make([]async.DeviceBuffer, len(n.bufs))}
	for i, bi := range n.bufs {
		b := p.bufs[bi]
		if b.data != nil {
			a.Buffers[i] = async.DeviceBuffer{Addr: base + uintptr(b.off), Len: int64(len(b.data))}
		}
	}
	for _, c := range n.children {
		a.Children = append(a.Children, p.deviceNode(c, base))
	}
	if n.dict != nil {
		a.Dictionary = p.deviceNode(n.dict, base)
	}
	return a
}

// copyInto copies every buffer into block, which is host memory of at
// least p.size bytes.
func (p *plan) copyInto(block []byte, workers int) {
	var jobs []copyJob
	for _, b := range p.bufs {
		if len(b.data) > 0 {
			jobs = append(jobs, copyJob{dst: block[b.off : b.off+int64(len(b.data))], src: b.data})
		}
	}
	parallelCopy(jobs, workers)
}

// hostRecord rebuilds the batch as arrow-go arrays over block (host
// accessible memory). Every buffer is created with newBuf, which ties its
// lifetime to the block.
func (p *plan) hostRecord(schema *arrow.Schema, block []byte, newBuf func([]byte) *memory.Buffer) arrow.RecordBatch {
	cols := make([]arrow.Array, len(p.root.children))
	for i, c := range p.root.children {
		d := p.hostData(c, block, newBuf)
		cols[i] = array.MakeFromData(d)
		d.Release()
	}
	rec := array.NewRecordBatch(schema, cols, p.root.length)
	for _, c := range cols {
		c.Release()
	}
	return rec
}

func (p *plan) hostData(n *planNode, block []byte, newBuf func([]byte) *memory.Buffer) arrow.ArrayData {
	cb := n.bufs
	if n.sizesBuffer {
		cb = cb[:len(cb)-1]
	}
	var bufs []*memory.Buffer
	if n.skipValidity {
		bufs = append(bufs, nil)
	}
	for _, bi := range cb {
		b := p.bufs[bi]
		if b.data == nil {
			bufs = append(bufs, nil)
			continue
		}
		end := b.off + int64(len(b.data))
		bufs = append(bufs, newBuf(block[b.off:end:end]))
	}
	children := make([]arrow.ArrayData, len(n.children))
	for i, c := range n.children {
		children[i] = p.hostData(c, block, newBuf)
	}
	var d arrow.ArrayData
	if n.dict != nil {
		dict := p.hostData(n.dict, block, newBuf)
		d = array.NewDataWithDictionary(n.dt, int(n.length), bufs, int(n.nulls), int(n.offset), dict.(*array.Data))
		dict.Release()
	} else {
		d = array.NewData(n.dt, int(n.length), bufs, children, int(n.nulls), int(n.offset))
	}
	for _, b := range bufs {
		if b != nil {
			b.Release()
		}
	}
	for _, c := range children {
		c.Release()
	}
	return d
}

// dictionaryOf returns d's dictionary, or nil (arrow-go hands out a typed
// nil for arrays without one).
func dictionaryOf(d arrow.ArrayData) arrow.ArrayData {
	if storageID(d.DataType()) != arrow.DICTIONARY {
		return nil
	}
	dict := d.Dictionary()
	if dd, ok := dict.(*array.Data); ok && dd == nil {
		return nil
	}
	return dict
}
