package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
	"golang.org/x/term"
)

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// progress draws a query's counters on stderr from one goroutine it owns,
// driven by a ticker: on a terminal a line redrawn in place 10 times a
// second, otherwise a plain line once a second (none for a query that ends
// within its first second). stop ends the goroutine, waits for it and
// clears the terminal line; it is idempotent.
type progress struct {
	e      *env
	q      *driver.Query
	device atomic.Pointer[string]
	quit   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	drawn  bool // only touched by the goroutine, then by stop after it ended
}

func startProgress(e *env, q *driver.Query) *progress {
	p := &progress{e: e, q: q, quit: make(chan struct{})}
	every := time.Second
	if e.stderrTTY {
		every = 100 * time.Millisecond
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

func (p *progress) setDevice(d async.Device) {
	s := d.String()
	p.device.Store(&s)
}

func (p *progress) draw() {
	s := p.q.Stats()
	dev := "placing…"
	if d := p.device.Load(); d != nil {
		dev = *d
	}
	el := s.Elapsed()
	line := fmt.Sprintf("%s rows  %s batches  %s  %s  %s  on %s", count(s.Rows), count(s.Batches),
		bytesText(s.Bytes), rate(s.Rows, s.Bytes, el), el.Round(100*time.Millisecond), dev)
	if p.e.stderrTTY {
		fmt.Fprint(p.e.stderr, "\r\x1b[K"+line)
	} else {
		fmt.Fprintln(p.e.stderr, "volley: progress: "+line)
	}
	p.drawn = true
}

func (p *progress) stop() {
	p.once.Do(func() {
		close(p.quit)
		p.wg.Wait()
		if p.drawn && p.e.stderrTTY {
			fmt.Fprint(p.e.stderr, "\r\x1b[K")
		}
	})
}

// count writes n with thousands separators.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := ""
	if n < 0 {
		neg, s = "-", s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return neg + s
}

// bytesText writes n in binary units ("1.2 GiB"), as placement reasons do.
func bytesText(n int64) string { return driver.FormatBytes(n) }

// rate writes rows/s and bytes/s over d.
func rate(rows, bytes int64, d time.Duration) string {
	sec := d.Seconds()
	if sec <= 0 {
		return "- rows/s"
	}
	return fmt.Sprintf("%s rows/s, %s/s", count(int64(float64(rows)/sec)), bytesText(int64(float64(bytes)/sec)))
}

// summary is the end-of-query report; --stats json prints it as is.
type summary struct {
	Driver         string  `json:"driver"`
	DSN            string  `json:"dsn,omitempty"`
	Rows           int64   `json:"rows"`
	Batches        int64   `json:"batches"`
	Bytes          int64   `json:"bytes"`
	WallSeconds    float64 `json:"wall_seconds"`
	RowsPerSecond  float64 `json:"rows_per_second"`
	BytesPerSecond float64 `json:"bytes_per_second"`
	Device         string  `json:"device"`
	Reason         string  `json:"reason"`
	EstimateBytes  *int64  `json:"estimate_bytes,omitempty"`
	Output         string  `json:"output,omitempty"`
}

func summarize(res result) summary {
	s := summary{Driver: res.driver, DSN: res.dsn, Rows: res.stats.Rows, Batches: res.stats.Batches,
		Bytes: res.stats.Bytes, WallSeconds: res.wall.Seconds(), Device: res.placement.Device.String(),
		Reason: res.placement.Reason, Output: res.output}
	if sec := res.wall.Seconds(); sec > 0 {
		s.RowsPerSecond = float64(s.Rows) / sec
		s.BytesPerSecond = float64(s.Bytes) / sec
	}
	if res.placement.EstimateBytes >= 0 {
		est := res.placement.EstimateBytes
		s.EstimateBytes = &est
	}
	return s
}

// printSummary writes the summary: JSON on jsonOut for --stats json, else
// (unless --quiet) text on stderr.
func printSummary(e *env, jsonOut io.Writer, qf queryFlags, res result) error {
	s := summarize(res)
	if qf.stats == "json" {
		enc := json.NewEncoder(jsonOut)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	if qf.quiet {
		return nil
	}
	fmt.Fprintf(e.stderr, "%s rows, %s batches, %s in %s (%s)\n", count(s.Rows), count(s.Batches),
		bytesText(s.Bytes), res.wall.Round(time.Millisecond), rate(s.Rows, s.Bytes, res.wall))
	fmt.Fprintf(e.stderr, "placement: %s\n", placementText(res.placement))
	if s.Output != "" && s.Output != "-" {
		fmt.Fprintf(e.stderr, "written: %s\n", s.Output)
	}
	return nil
}

// placementText is the decision for people, its reason shortened where a
// device's unusability is long-winded (--stats json has all of it).
func placementText(p driver.Placement) string {
	if len(p.Reason) <= 150 {
		return p.String()
	}
	r := []rune(p.Reason)
	if len(r) > 150 {
		r = append(r[:149], '…')
	}
	return p.Device.String() + " (" + string(r) + ")"
}
