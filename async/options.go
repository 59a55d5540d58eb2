package async

import (
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// ProduceOptions configure [Produce]. The zero value produces CPU batches as
// the Source yields them, with no additional metadata.
type ProduceOptions struct {
	// Mover moves each CPU batch onto its device. nil keeps batches on the
	// CPU (a Source's native device batches pass through either way).
	Mover Mover
	// AdditionalMetadata becomes the producer's additional_metadata (S6).
	AdditionalMetadata arrow.Metadata
	// Stats, when non-nil, is updated as the stream runs; it may be read
	// from any goroutine.
	Stats *Stats
}

// Stats counts what a stream delivered. All fields are updated atomically
// by the producer and may be read at any time, from any goroutine, through
// Snapshot.
type Stats struct {
	rows, batches, bytes atomic.Int64
	start, firstBatch    atomic.Int64 // unix nanos, 0 until set
	end                  atomic.Int64
}

// StatsSnapshot is a consistent-enough copy of [Stats] at one moment.
type StatsSnapshot struct {
	Rows, Batches, Bytes int64
	// Start is when the producer started; FirstBatch when the first task
	// was handed over; End when Release returned (zero until then).
	Start, FirstBatch, End time.Time
}

// Elapsed is End-Start, or the time since Start for a running stream.
func (s StatsSnapshot) Elapsed() time.Duration {
	if s.Start.IsZero() {
		return 0
	}
	if s.End.IsZero() {
		return time.Since(s.Start)
	}
	return s.End.Sub(s.Start)
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	t := func(v int64) time.Time {
		if v == 0 {
			return time.Time{}
		}
		return time.Unix(0, v)
	}
	return StatsSnapshot{Rows: s.rows.Load(), Batches: s.batches.Load(), Bytes: s.bytes.Load(),
		Start: t(s.start.Load()), FirstBatch: t(s.firstBatch.Load()), End: t(s.end.Load())}
}

// MarkStart records the start time (once).
func (s *Stats) MarkStart() { s.start.CompareAndSwap(0, time.Now().UnixNano()) }

// MarkEnd records the end time (once).
func (s *Stats) MarkEnd() { s.end.CompareAndSwap(0, time.Now().UnixNano()) }

// AddBatch counts one delivered batch of rows rows and bytes bytes.
func (s *Stats) AddBatch(rows, bytes int64) {
	s.firstBatch.CompareAndSwap(0, time.Now().UnixNano())
	s.batches.Add(1)
	s.rows.Add(rows)
	s.bytes.Add(bytes)
}
