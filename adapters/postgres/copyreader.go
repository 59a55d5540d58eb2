package postgres

import (
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"sync"
	"weak"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/volleyhq/volley/async"
)

// copyReader is the reader under pgconn's message decoder (pgproto3's
// Frontend) on the connections the adapter opens, and on those of pools
// configured with [Tune]. It passes the backend's bytes through unchanged,
// tracking only the message framing, except while a COPY TO STDOUT of the
// adapter's runs: then it takes the CopyData messages out of the stream
// and hands their payloads straight to the COPY parser, reading in large
// chunks. pgconn sees the rest of the protocol (CopyOutResponse, notices,
// errors, CommandComplete, ReadyForQuery) as usual and never handles a
// data message, which is most of a raw drain's CPU time (one message, one
// Receive, one Write per row). It sits above pgconn's background reader and
// leaves the net.Conn alone (TLS channel binding looks at its type).
//
// Only pgconn's message decoder reads it, on the goroutine that owns the
// connection at the time, so the state needs no lock of its own; arm and
// disarm happen while no read is in flight.
type copyReader struct {
	src io.Reader

	// Framing of the backend's stream: nhdr header bytes of the current
	// message seen (5 = in its body), body bytes of it left.
	hdr  [5]byte
	nhdr int
	body int
	take bool // the current message's payload goes to sink

	sink io.Writer // armed: where CopyData payloads go; nil otherwise
	run  runWriter // sink's runWriter, if it is one
	buf  []byte    // read buffer while armed
	r, w int       // buf[r:w] is read but not yet processed
	err  error     // a read error to return once buf is drained
}

// copyReadBuffer is the size of a copyReader's read buffer while a COPY runs.
const copyReadBuffer = 256 << 10

// errFraming reports a backend message with an impossible length.
var errFraming = fmt.Errorf("%w: postgres: malformed backend message length", async.ErrProtocol)

// runWriter is a sink that also takes a run of whole CopyData messages
// (headers included) at once: writeRun consumes the complete CopyData
// messages at the start of b and returns their total size, 0 when it
// leaves b to the message-at-a-time path (a message not whole, or one it
// will not judge, such as a bad length).
type runWriter interface {
	writeRun(b []byte) int
}

// eachCopyData calls f with the payload of each whole CopyData message at
// the start of b and returns their total size (headers included). It
// stops at anything else: another message, one not whole, a bad length.
func eachCopyData(b []byte, f func(payload []byte)) int {
	n := 0
	for len(b)-n >= 5 && b[n] == 'd' {
		l := int(binary.BigEndian.Uint32(b[n+1:]))
		if l < 4 || len(b)-n-1 < l {
			break
		}
		f(b[n+5 : n+1+l])
		n += 1 + l
	}
	return n
}

// arm sends the payloads of the CopyData messages that follow to sink.
func (c *copyReader) arm(sink io.Writer) {
	if c.buf == nil {
		c.buf = make([]byte, copyReadBuffer)
	}
	c.sink = sink
	c.run, _ = sink.(runWriter)
}

// disarm passes everything through again (after the COPY's ReadyForQuery).
// A copyReader also disarms itself when a read fails (the connection is
// lost then).
func (c *copyReader) disarm() { c.sink, c.run = nil, nil }

// Read implements io.Reader for pgproto3.
func (c *copyReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.sink == nil && c.r == c.w {
		// Pass through: read into pgconn's buffer and follow the framing.
		if c.err != nil {
			err := c.err
			c.err = nil
			return 0, err
		}
		n, err := c.src.Read(p)
		if ferr := c.follow(p[:n]); ferr != nil {
			return n, ferr
		}
		return n, err
	}
	for {
		if c.r < c.w {
			n, err := c.process(p)
			if err != nil {
				c.sink, c.run = nil, nil
				return n, err
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if c.err != nil {
			err := c.err
			c.err, c.sink, c.run = nil, nil, nil
			return 0, err
		}
		if c.sink == nil {
			return c.Read(p)
		}
		c.r, c.w = 0, 0
		n, err := c.src.Read(c.buf)
		c.w, c.err = n, err
	}
}

// follow tracks the framing of bytes passed through untouched.
func (c *copyReader) follow(b []byte) error {
	for len(b) > 0 {
		if c.nhdr < 5 {
			k := copy(c.hdr[c.nhdr:], b)
			c.nhdr += k
			b = b[k:]
			if c.nhdr == 5 {
				if err := c.startBody(); err != nil {
					return err
				}
			}
			continue
		}
		k := min(c.body, len(b))
		c.body -= k
		b = b[k:]
		if c.body == 0 {
			c.nhdr = 0
		}
	}
	return nil
}

// startBody reads the length of the header just completed.
func (c *copyReader) startBody() error {
	l := int32(binary.BigEndian.Uint32(c.hdr[1:]))
	if l < 4 {
		return fmt.Errorf("%w: %d for message %q", errFraming, l, c.hdr[0])
	}
	c.body = int(l) - 4
	if c.body == 0 {
		c.nhdr = 0
	}
	return nil
}

// process consumes buf[r:w]: CopyData payloads go to the sink (when
// armed), everything else is copied to p. It returns the bytes put in p.
func (c *copyReader) process(p []byte) (int, error) {
	out := 0
	for c.r < c.w && out < len(p) {
		in := c.buf[c.r:c.w]
		if c.nhdr == 0 && c.run != nil && len(in) >= 5 && in[0] == 'd' {
			// Whole CopyData messages here: the sink takes them in one
			// call (no per-message round trip through this loop).
			if n := c.run.writeRun(in); n > 0 {
				c.r += n
				continue
			}
		}
		if c.nhdr == 0 && len(in) >= 5 && in[0] == 'd' && c.sink != nil {
			// A CopyData message starting here: skip its header.
			copy(c.hdr[:], in[:5])
			c.nhdr, c.r = 5, c.r+5
			if err := c.startBody(); err != nil {
				return out, err
			}
			c.take = true
			continue
		}
		if c.nhdr < 5 {
			if c.nhdr == 0 {
				c.take = in[0] == 'd' && c.sink != nil
			}
			k := min(5-c.nhdr, len(in))
			if !c.take {
				k = min(k, len(p)-out)
				copy(p[out:], in[:k])
				out += k
			}
			copy(c.hdr[c.nhdr:], in[:k])
			c.nhdr += k
			c.r += k
			if c.nhdr == 5 {
				if err := c.startBody(); err != nil {
					return out, err
				}
			}
			continue
		}
		k := min(c.body, len(in))
		if c.take {
			if _, err := c.sink.Write(in[:k]); err != nil {
				return out, err
			}
		} else {
			k = min(k, len(p)-out)
			copy(p[out:], in[:k])
			out += k
		}
		c.body -= k
		c.r += k
		if c.body == 0 {
			c.nhdr = 0
		}
	}
	return out, nil
}

// Tune makes the connections of pc (a pgconn.Config; for a pool,
// &poolConfig.ConnConfig.Config) read COPY results the fast way: their
// CopyData messages are parsed straight off the wire instead of one pgconn
// message at a time (a raw drain spends most of its CPU time on that).
// Connections Volley opens itself are tuned already; call Tune on a pool's
// configuration before pgxpool.NewWithConfig to get the same with
// [FromPool]. It wraps the reader a BuildFrontend already set is given;
// tuning twice is harmless.
func Tune(pc *pgconn.Config) {
	if pc == nil {
		return
	}
	build := pc.BuildFrontend
	if build == nil {
		build = pgproto3.NewFrontend
	}
	pc.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		cr, ok := r.(*copyReader)
		if !ok {
			cr = &copyReader{src: r}
		}
		f := build(cr, w)
		if !ok {
			key := weak.Make(f)
			readers.Store(key, cr)
			runtime.AddCleanup(f, func(k weak.Pointer[pgproto3.Frontend]) { readers.Delete(k) }, key)
		}
		return f
	}
}

// readers maps the Frontends of tuned connections to their copyReaders;
// an entry goes with its Frontend.
var readers sync.Map // weak.Pointer[pgproto3.Frontend] → *copyReader

// copyReaderOf returns the copyReader of a tuned connection, or nil.
func copyReaderOf(pg *pgconn.PgConn) *copyReader {
	if v, ok := readers.Load(weak.Make(pg.Frontend())); ok {
		return v.(*copyReader)
	}
	return nil
}
