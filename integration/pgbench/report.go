package pgbench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

func (r Report) find(query, transport string, m Mode) (Result, bool) {
	for _, x := range r.Results {
		if x.Query == query && x.Mode == m && (x.Transport == transport || m == ServerFloor) && x.Err == "" {
			return x, true
		}
	}
	return Result{}, false
}

// ratio is one of the table's Volley/other columns.
type ratio struct {
	title string
	mode  Mode
	of    func(Result) time.Duration
}

func wallOf(r Result) time.Duration { return r.Wall }
func cpuOf(r Result) time.Duration  { return r.CPU() }

var ratios = []ratio{
	{"volley/psql wall", Psql, wallOf},
	{"volley/raw cpu", PgxRaw, cpuOf},
	{"volley/scan cpu", PgxScan, cpuOf},
	{"volley/adbc wall", ADBC, wallOf},
	{"volley/adbc cpu", ADBC, cpuOf},
}

// WriteTable prints one table of all results, with, on each Volley row,
// the ratios of Volley's figures to the other modes' for the same query
// and transport (those of the modes measured): psql wall time, pgx-raw
// CPU, Scan CPU, and the ADBC driver's wall time and CPU. A last line
// gives the row count and the runs each figure is the median of.
func (r Report) WriteTable(w io.Writer) error {
	var cols []ratio
	for _, c := range ratios {
		if slices.ContainsFunc(r.Results, func(x Result) bool { return x.Mode == c.mode }) {
			cols = append(cols, c)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := []string{"query", "transport", "mode", "rows", "wall", "user", "sys", "cpu", "peak RSS"}
	for _, c := range cols {
		header = append(header, c.title)
	}
	fmt.Fprint(tw, strings.Join(header, "\t")+"\t\n")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/1e6) }
	for _, x := range r.Results {
		rows := "-"
		if x.Rows >= 0 {
			rows = fmt.Sprint(x.Rows)
		}
		rss := "-"
		if x.PeakRSS > 0 {
			rss = fmt.Sprintf("%.1f MiB", float64(x.PeakRSS)/(1<<20))
		}
		cpu, user, sys := ms(x.CPU()), ms(x.User), ms(x.Sys)
		if x.Mode == ServerFloor {
			cpu, user, sys = "-", "-", "-"
		}
		cells := []string{x.Query, x.Transport, string(x.Mode), rows, ms(x.Wall), user, sys, cpu, rss}
		for _, c := range cols {
			cell := ""
			if x.Mode == Volley && x.Err == "" {
				cell = "-"
				if o, ok := r.find(x.Query, x.Transport, c.mode); ok && c.of(o) != 0 {
					cell = fmt.Sprintf("%.2fx", float64(c.of(x))/float64(c.of(o)))
				}
			}
			cells = append(cells, cell)
		}
		errs := ""
		if x.Err != "" {
			errs = "  error: " + strings.SplitN(x.Err, "\n", 2)[0]
		}
		fmt.Fprint(tw, strings.Join(cells, "\t")+"\t"+errs+"\n")
	}
	footer := fmt.Sprintf("rows in table: %d", r.Rows)
	if r.Runs > 1 {
		footer += fmt.Sprintf(", each figure the median of %d runs", r.Runs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, footer)
	return err
}
