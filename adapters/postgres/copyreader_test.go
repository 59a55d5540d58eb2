package postgres

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// chunkConn is a reader that returns data in the sizes given (cycling),
// then io.EOF.
type chunkConn struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if len(c.sizes) > 0 {
		n = min(n, max(1, c.sizes[c.i%len(c.sizes)]))
		c.i++
	}
	n = copy(p, c.data[:min(n, len(c.data))])
	c.data = c.data[n:]
	return n, nil
}

func msg(typ byte, body []byte) []byte {
	out := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], uint32(len(body)+4))
	return append(out, body...)
}

// backendStream is a COPY TO STDOUT response with n CopyData messages
// among the other messages a backend sends, the stream without the
// CopyData messages, and their payloads.
func backendStream(r *rand.Rand, n int) (all, rest, payloads []byte) {
	add := func(m []byte, data bool) {
		all = append(all, m...)
		if data {
			payloads = append(payloads, m[5:]...)
		} else {
			rest = append(rest, m...)
		}
	}
	add(msg('H', []byte{1, 0, 2, 0, 1, 0, 1}), false)
	for i := 0; i < n; i++ {
		body := make([]byte, r.IntN(300))
		for j := range body {
			body[j] = byte(r.Uint32())
		}
		add(msg('d', body), true)
		if r.IntN(50) == 0 {
			add(msg('N', []byte("SNOTICE\x00Mhello\x00\x00")), false)
		}
	}
	add(msg('d', nil), true) // an empty payload
	add(msg('c', nil), false)
	add(msg('C', []byte("COPY 1\x00")), false)
	add(msg('Z', []byte{'I'}), false)
	return all, rest, payloads
}

// readAll reads c as pgconn would, with reads of the sizes given.
func readAll(t *testing.T, c *copyReader, sizes []int) []byte {
	t.Helper()
	var out []byte
	for i := 0; ; i++ {
		p := make([]byte, max(1, sizes[i%len(sizes)]))
		n, err := c.Read(p)
		out = append(out, p[:n]...)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if i > 1e7 {
			t.Fatal("no progress")
		}
	}
}

// An armed copyReader takes exactly the CopyData messages out and passes
// every other byte through in order, whatever the read sizes on either
// side; a disarmed one passes everything.
func TestCopyReaderSplitsTheStream(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	all, rest, payloads := backendStream(r, 2000)
	for _, tc := range []struct {
		sock, reader []int
		runs         bool
	}{
		{nil, []int{8192}, false},
		{nil, []int{8192}, true},
		{[]int{1}, []int{3}, true},
		{[]int{5, 1, 7000}, []int{1, 2, 5, 8192}, false},
		{[]int{5, 1, 7000}, []int{1, 2, 5, 8192}, true},
		{[]int{4, 6, 100, 1 << 20}, []int{17}, true},
	} {
		var sink bytes.Buffer
		c := &copyReader{src: &chunkConn{data: all, sizes: tc.sock}}
		if tc.runs {
			c.arm(&runSink{&sink})
		} else {
			c.arm(&sink)
		}
		got := readAll(t, c, tc.reader)
		if !bytes.Equal(got, rest) {
			t.Fatalf("%v: pgconn got %d bytes, want the %d non-CopyData ones", tc, len(got), len(rest))
		}
		if !bytes.Equal(sink.Bytes(), payloads) {
			t.Fatalf("%v: sink got %d bytes, want %d of payload", tc, sink.Len(), len(payloads))
		}
		c = &copyReader{src: &chunkConn{data: all, sizes: tc.sock}}
		if got := readAll(t, c, tc.reader); !bytes.Equal(got, all) {
			t.Fatalf("%v: a disarmed copyReader changed the stream", tc)
		}
		if c.nhdr != 0 || c.body != 0 {
			t.Fatalf("%v: framing ends mid-message (%d, %d)", tc, c.nhdr, c.body)
		}
	}
}

// runSink is a runWriter appending payloads to a buffer.
type runSink struct{ *bytes.Buffer }

func (s *runSink) writeRun(b []byte) int {
	return eachCopyData(b, func(p []byte) { s.Write(p) })
}

// A message length below 4 is a protocol error, armed or not.
func TestCopyReaderBadLength(t *testing.T) {
	bad := []byte{'d', 0, 0, 0, 2, 'x'}
	for _, armed := range []bool{false, true} {
		c := &copyReader{src: &chunkConn{data: bad}}
		if armed {
			c.arm(io.Discard)
		}
		_, err := c.Read(make([]byte, 64))
		if !errors.Is(err, errFraming) {
			t.Fatalf("armed %v: %v", armed, err)
		}
	}
}

func FuzzCopyReader(f *testing.F) {
	all, _, _ := backendStream(rand.New(rand.NewPCG(3, 4)), 5)
	f.Add(all, uint16(7), uint16(3), true)
	f.Add([]byte{'d', 0, 0, 0, 2}, uint16(1), uint16(1), false)
	f.Fuzz(func(t *testing.T, data []byte, a, b uint16, armed bool) {
		if len(data) > 16<<10 {
			return // byte-at-a-time reads of large inputs only slow the fuzzer
		}
		var sink bytes.Buffer
		c := &copyReader{src: &chunkConn{data: data, sizes: []int{int(a%512) + 1}}}
		if armed && a%2 == 0 {
			c.arm(&runSink{&sink})
		} else if armed {
			c.arm(&sink)
		}
		var out []byte
		p := make([]byte, int(b%512)+1)
		for i := 0; i < 1e6; i++ {
			n, err := c.Read(p)
			out = append(out, p[:n]...)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, errFraming) {
					t.Fatalf("error %v", err)
				}
				break
			}
		}
		if len(out)+sink.Len() > len(data) {
			t.Fatalf("%d + %d bytes out of %d in", len(out), sink.Len(), len(data))
		}
		if !armed && !bytes.HasPrefix(data, out) {
			t.Fatal("a disarmed copyReader changed the stream")
		}
	})
}
