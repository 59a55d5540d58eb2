package pgbench

import (
	"fmt"
	"io"
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

// WriteTable prints one table of all results, then, per query and
// transport, the ratios Volley/psql wall time, Volley/pgx-raw CPU and
// Volley/Scan CPU.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "query\ttransport\tmode\trows\twall\tuser\tsys\tcpu\tpeak RSS\tvolley/psql wall\tvolley/raw cpu\tvolley/scan cpu\t\n")
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
		ratios := "\t\t"
		if x.Mode == Volley && x.Err == "" {
			ratio := func(m Mode, f func(Result) time.Duration) string {
				o, ok := r.find(x.Query, x.Transport, m)
				if !ok || f(o) == 0 {
					return "-"
				}
				return fmt.Sprintf("%.2fx", float64(f(x))/float64(f(o)))
			}
			wall := func(r Result) time.Duration { return r.Wall }
			cpu := func(r Result) time.Duration { return r.CPU() }
			ratios = ratio(Psql, wall) + "\t" + ratio(PgxRaw, cpu) + "\t" + ratio(PgxScan, cpu)
		}
		cpu, user, sys := ms(x.CPU()), ms(x.User), ms(x.Sys)
		if x.Mode == ServerFloor {
			cpu, user, sys = "-", "-", "-"
		}
		errs := ""
		if x.Err != "" {
			errs = "  error: " + strings.SplitN(x.Err, "\n", 2)[0]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.Query, x.Transport, x.Mode, rows,
			ms(x.Wall), user, sys, cpu, rss, ratios, errs)
	}
	fmt.Fprintf(tw, "rows in table: %d\t\t\t\t\t\t\t\t\t\t\t\t\n", r.Rows)
	return tw.Flush()
}
