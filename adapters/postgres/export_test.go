// Test-only access to internals.
package postgres

import (
	"fmt"

	"github.com/volleyhq/volley/async"
)

func (c *Conn) DebugState() string {
	return fmt.Sprintf("closed=%v broken=%v pgclosed=%v busy=%v tx=%c", c.closed, c.broken.Load(), c.pg.IsClosed(), c.pg.IsBusy(), c.pg.TxStatus())
}

// ParseCopyMessages decodes the CopyData payloads msgs of src's query (its
// Schema called, not started) on the default allocator, as the COPY path
// does, releasing each batch: the decode work without the network.
func ParseCopyMessages(src async.Source, msgs [][]byte, batchBytes int64) (int64, error) {
	s := src.(*source)
	b, err := newBatcher(defaultAllocator, s.schema, s.types, s.typmods, &s.c.cfg, 0, batchBytes)
	if err != nil {
		return 0, err
	}
	defer b.release()
	var rows int64
	cut := func() {
		if rec := b.flush(); rec != nil {
			rows += rec.NumRows()
			rec.Release()
		}
	}
	p := &copyParser{b: b, ncols: len(s.fields), full: func() error { cut(); return nil }}
	for _, m := range msgs {
		if _, err := p.Write(m); err != nil {
			return rows, err
		}
	}
	cut()
	return rows, p.finish()
}

// FastCopy reports whether COPY data is parsed off the socket (Tune).
func (c *Conn) FastCopy() bool { return c.cc != nil }
