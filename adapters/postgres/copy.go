package postgres

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/volleyhq/volley/async"
)

// copySignature starts every COPY binary stream.
var copySignature = []byte("PGCOPY\n\xff\r\n\x00")

// errCopy reports a malformed COPY binary stream; use errors.Is with
// async.ErrProtocol.
var errCopy = fmt.Errorf("%w: postgres: malformed COPY binary stream", async.ErrProtocol)

// copyParser is an io.Writer that parses a COPY ... TO STDOUT (FORMAT
// binary) stream incrementally, as pgconn.CopyTo hands it the CopyData
// payloads, and decodes each tuple straight into a batcher. A tuple that
// arrives whole (PostgreSQL sends one per message) is decoded in place; one
// split across writes is assembled in a small pending buffer. The parser
// keeps no reference to the slices it is given.
type copyParser struct {
	b       *batcher
	ncols   int
	state   uint8 // 0 header, 1 tuples, 2 trailer seen
	pending []byte
	// full is called when the batcher reports a full batch; an error stops
	// the parse (and the COPY).
	full func() error
	// resume, when set, is called before the first tuple after a full
	// batch is decoded (not before the trailer: the end is found without
	// it); an error stops the parse.
	resume func() error
	paused bool
}

// Write implements io.Writer. It returns len(p) or an error, never a short
// write without one.
func (c *copyParser) Write(p []byte) (int, error) {
	if len(c.pending) > 0 {
		c.pending = append(c.pending, p...)
		n, err := c.process(c.pending)
		if err != nil {
			return 0, err
		}
		c.pending = c.pending[:copy(c.pending, c.pending[n:])]
		return len(p), nil
	}
	n, err := c.process(p)
	if err != nil {
		return 0, err
	}
	c.pending = append(c.pending[:0], p[n:]...)
	return len(p), nil
}

// finish reports whether the stream ended properly (trailer seen, nothing
// left over).
func (c *copyParser) finish() error {
	if c.state != 2 || len(c.pending) != 0 {
		return fmt.Errorf("%w: truncated (state %d, %d bytes pending)", errCopy, c.state, len(c.pending))
	}
	return nil
}

// process consumes whole units (the header, tuples, the trailer) from buf
// and returns how many bytes it consumed.
func (c *copyParser) process(buf []byte) (int, error) {
	pos := 0
	for {
		rest := buf[pos:]
		switch c.state {
		case 0:
			if len(rest) < 19 {
				return pos, nil
			}
			if !bytes.Equal(rest[:11], copySignature) {
				return 0, fmt.Errorf("%w: bad signature", errCopy)
			}
			flags := binary.BigEndian.Uint32(rest[11:])
			if flags&(1<<16) != 0 || flags&0xffff0000&^(1<<16) != 0 {
				return 0, fmt.Errorf("%w: unsupported header flags %#x", errCopy, flags)
			}
			ext := binary.BigEndian.Uint32(rest[15:])
			if ext > 1<<20 {
				return 0, fmt.Errorf("%w: header extension too long", errCopy)
			}
			if uint32(len(rest)-19) < ext {
				return pos, nil
			}
			pos += 19 + int(ext)
			c.state = 1
		case 1:
			if len(rest) < 2 {
				return pos, nil
			}
			n := int16(binary.BigEndian.Uint16(rest))
			if n == -1 {
				pos += 2
				c.state = 2
				continue
			}
			if int(n) != c.ncols {
				return 0, fmt.Errorf("%w: tuple has %d fields, want %d", errCopy, n, c.ncols)
			}
			// First pass: is the whole tuple here?
			end := 2
			for i := 0; i < c.ncols; i++ {
				if len(rest)-end < 4 {
					return pos, nil
				}
				l := int32(binary.BigEndian.Uint32(rest[end:]))
				end += 4
				if l < -1 {
					return 0, fmt.Errorf("%w: field length %d", errCopy, l)
				}
				if l > 0 {
					if int64(len(rest)-end) < int64(l) {
						return pos, nil
					}
					end += int(l)
				}
			}
			if c.paused {
				c.paused = false
				if c.resume != nil {
					if err := c.resume(); err != nil {
						return 0, err
					}
				}
			}
			// Second pass: decode (the batcher's add, inlined: the tuple's
			// size is accounted once).
			b := c.b
			if b.room == 0 {
				b.reserve()
			}
			t := rest[:end:end]
			q := 2
			for i, d := range b.decs {
				l := int(int32(binary.BigEndian.Uint32(t[q:])))
				q += 4
				var v []byte
				if l >= 0 {
					v = t[q : q+l : q+l]
					q += l
				}
				if err := d.decode(v); err != nil {
					return 0, b.colErr(i, err)
				}
			}
			b.bytes += int64(end)
			pos += end
			if c.b.endRow() && c.full != nil {
				if err := c.full(); err != nil {
					return 0, err
				}
				c.paused = true
			}
		default:
			if len(rest) != 0 {
				return 0, fmt.Errorf("%w: %d bytes after the trailer", errCopy, len(rest))
			}
			return pos, nil
		}
	}
}
