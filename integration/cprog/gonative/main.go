// Command gonative is the Go-native twin of the C consumers' benchmark
// modes, built and run by the cprog tests as a separate, race-free process
// so that both sides of each comparison run under the same conditions.
//
//	gonative demo N           N 1-row demo batches into an inline handler
//	gonative pg DSN SQL RUNS  a PostgreSQL query, fastest of RUNS runs
//
// It prints the figures in the C programs' format, then "ok".
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	_ "github.com/volleyhq/volley/adapters/postgres"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/async/cabi"
	"github.com/volleyhq/volley/driver"
)

// inline extracts each task inside OnNextTask, releases the batch and
// requests one more, as the C consumers do.
type inline struct {
	p       async.Producer
	window  int64
	batches int64
	rows    int64
	err     error
}

func (h *inline) OnSchema(p async.Producer, _ *arrow.Schema) error {
	h.p = p
	p.Request(h.window)
	return nil
}

func (h *inline) OnNextTask(t async.Task, _ arrow.Metadata) error {
	if t == nil {
		return nil
	}
	b, err := t.Extract()
	if err != nil {
		h.err = err
		return err
	}
	h.rows += b.NumRows
	b.Release()
	h.batches++
	h.p.Request(1)
	return nil
}

func (h *inline) OnError(err *async.Error) { h.err = err }
func (h *inline) Release()                 {}

func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: gonative demo N | gonative pg DSN SQL RUNS")
	}
	ctx := context.Background()
	switch os.Args[1] {
	case "demo":
		n, _ := strconv.ParseInt(os.Args[2], 10, 64)
		h := &inline{window: 64}
		start, c0 := time.Now(), cpu()
		err := async.Produce(ctx, h, &cabi.DemoSource{Batches: n, Rows: 1}, async.ProduceOptions{})
		el, c := time.Since(start), cpu()-c0
		if err != nil || h.err != nil || h.batches != n {
			fail("demo: %v / %v, %d of %d batches", err, h.err, h.batches, n)
		}
		fmt.Printf("ns_per_batch=%.1f cpu_ns_per_batch=%.1f\n", float64(el.Nanoseconds())/float64(n), float64(c.Nanoseconds())/float64(n))
	case "pg":
		if len(os.Args) != 5 {
			fail("usage: gonative pg DSN SQL RUNS")
		}
		runs, _ := strconv.Atoi(os.Args[4])
		db, err := driver.Open("postgres", os.Args[2])
		if err != nil {
			fail("open: %v", err)
		}
		defer db.Close()
		var best time.Duration
		var rows, batches int64
		for range runs {
			h := &inline{window: 8}
			start := time.Now()
			q, err := db.Query(ctx, h, os.Args[3], nil, driver.OnDevice("cpu"), driver.WithBatchRows(10000))
			if err != nil {
				fail("query: %v", err)
			}
			if err := q.Wait(); err != nil || h.err != nil {
				fail("query: %v / %v", err, h.err)
			}
			if d := time.Since(start); best == 0 || d < best {
				best, rows, batches = d, h.rows, h.batches
			}
		}
		fmt.Printf("rows=%d batches=%d ns=%d\n", rows, batches, best.Nanoseconds())
	default:
		fail("unknown mode %q", os.Args[1])
	}
	fmt.Println("ok")
}
