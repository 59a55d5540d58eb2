package driver

import (
	"context"
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/devicebuf"
)

// The placement stage (pool, describe, policy, metadata) against the bare
// runtime, on the same in-memory source: one query of 64 batches of 16k
// rows per iteration. Compare the two ns/op figures (and rows/s):
//
//	go test -run '^$' -bench 'Stream(Direct|ThroughDB)' -count 6 ./driver/
func benchStream(b *testing.B, viaDB bool) { benchRows(b, viaDB, 64*16384) }

// The fixed cost per query of the placement stage, on one-row queries:
//
//	go test -run '^$' -bench 'Query(Direct|ThroughDB)' ./driver/
func BenchmarkQueryDirect(b *testing.B)    { benchRows(b, false, 1) }
func BenchmarkQueryThroughDB(b *testing.B) { benchRows(b, true, 1) }

func benchRows(b *testing.B, viaDB bool, rows int64) {
	d := &fakeDriver{mem: memory.NewGoAllocator()}
	c, err := d.OpenConnector(fmt.Sprintf("fake://?rows=%d&batch=16384", rows))
	if err != nil {
		b.Fatal(err)
	}
	db, err := OpenDB(c, Config{Devices: devicebuf.NewManager(devicebuf.Options{CUDALibraryPath: "/nonexistent"})})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var n int64
		if viaDB {
			rs, err := db.Stream(ctx, "q", nil)
			if err != nil {
				b.Fatal(err)
			}
			for bt, err := range rs.All(ctx) {
				if err != nil {
					b.Fatal(err)
				}
				n += bt.NumRows
				bt.Release()
			}
			rs.Close()
		} else {
			conn, _ := c.Connect(ctx)
			src, _ := conn.Query(ctx, &Request{BatchBytes: DefaultBatchBytes})
			r := async.NewReader(async.ReaderOptions{})
			st := async.Start(ctx, r, src, async.ProduceOptions{})
			for bt, err := range r.All(ctx) {
				if err != nil {
					b.Fatal(err)
				}
				n += bt.NumRows
				bt.Release()
			}
			r.Close()
			st.Wait()
			conn.Close()
		}
		if n != rows {
			b.Fatalf("rows = %d", n)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkStreamDirect(b *testing.B)    { benchStream(b, false) }
func BenchmarkStreamThroughDB(b *testing.B) { benchStream(b, true) }
