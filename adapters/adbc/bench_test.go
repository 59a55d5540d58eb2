package adbc_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/volleyhq/volley/adapters/adbc"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
)

// BenchmarkLineitem streams TPC-H lineitem from DuckDB's C driver, once
// consuming the driver's RecordReader directly and once through Volley
// (Source -> async.Produce -> async.Reader). The scale factor is
// $VOLLEY_TPCH_SF (default 0.1; the figures in the report are SF 1). It
// reports rows/s and the process's peak RSS during the run (VmHWM, reset
// before each sub-benchmark through /proc/self/clear_refs).
func BenchmarkLineitem(b *testing.B) {
	sf := os.Getenv("VOLLEY_TPCH_SF")
	if sf == "" {
		sf = "0.1"
	}
	c := duck(b)
	setup := connect(b, c) // holds the in-memory database open
	if res := query(b, setup, "CALL dbgen(sf="+sf+")"); res.prodErr != nil {
		b.Fatalf("dbgen: %v", res.prodErr)
	}
	conn := connect(b, c)
	const sql = "SELECT * FROM lineitem"

	b.Run("direct", func(b *testing.B) {
		resetPeak(b)
		var rows, bytes int64
		for b.Loop() {
			rows, bytes = 0, 0
			cn := conn.(*adbc.Conn).ADBC()
			st, err := cn.NewStatement()
			if err != nil {
				b.Fatal(err)
			}
			if err := st.SetSqlQuery(sql); err != nil {
				b.Fatal(err)
			}
			rdr, _, err := st.ExecuteQuery(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			for rdr.Next() {
				rec := rdr.RecordBatch()
				rows += rec.NumRows()
				bytes += batchBytes(rec)
			}
			if err := rdr.Err(); err != nil {
				b.Fatal(err)
			}
			rdr.Release()
			st.Close()
		}
		report(b, rows, bytes)
	})
	b.Run("volley", func(b *testing.B) {
		resetPeak(b)
		var rows, bytes int64
		for b.Loop() {
			rows, bytes = 0, 0
			src, err := conn.Query(context.Background(), &driver.Request{SQL: sql, BatchBytes: 64 << 20})
			if err != nil {
				b.Fatal(err)
			}
			r := async.NewReader(async.ReaderOptions{Window: 4})
			var wg sync.WaitGroup
			var perr error
			wg.Go(func() { perr = async.Produce(context.Background(), r, src, async.ProduceOptions{}) })
			for {
				batch, err := r.Next(context.Background())
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				rows += batch.NumRows
				bytes += batchBytes(batch.Record)
				batch.Release()
			}
			r.Close()
			wg.Wait()
			if perr != nil {
				b.Fatal(perr)
			}
		}
		report(b, rows, bytes)
	})
}

func report(b *testing.B, rows, bytes int64) {
	b.SetBytes(bytes)
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(rows)/sec, "rows/s")
	b.ReportMetric(float64(rows), "rows")
	if kb := peakKB(); kb > 0 {
		b.ReportMetric(float64(kb)/1024, "peakRSS-MB")
	}
}

// batchBytes is the length of a batch's buffers.
func batchBytes(rec arrow.RecordBatch) int64 {
	var n int64
	var walk func(d arrow.ArrayData)
	walk = func(d arrow.ArrayData) {
		for _, buf := range d.Buffers() {
			if buf != nil {
				n += int64(buf.Len())
			}
		}
		for _, c := range d.Children() {
			walk(c)
		}
	}
	for _, c := range rec.Columns() {
		walk(c.Data())
	}
	return n
}

// resetPeak resets the kernel's peak RSS counter for this process.
func resetPeak(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset peak RSS: %v", err)
	}
}

// peakKB reads VmHWM from /proc/self/status.
func peakKB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
