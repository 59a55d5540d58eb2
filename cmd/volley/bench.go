package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/volleyhq/volley/adapters/adbc"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
	"github.com/volleyhq/volley/integration/pgtest"
)

const benchHelp = `Usage: volley bench [flags]

Compares ways of reading one PostgreSQL result on this machine, measured in one
run, each method in its own child process so that its client CPU time and peak
RSS are its own:

  server floor   SELECT count(*) over the query: the server's work without the transfer
  psql           psql -c 'SELECT ...' -o /dev/null (text protocol, whole result buffered)
  pgx raw        pgconn: rows read off the wire, values left undecoded
  pgx scan       pgx: every value decoded into a Go value (rows.Values)
  volley         Volley's postgres adapter: Arrow record batches on the CPU
  adbc C driver  with --adbc-driver: that ADBC C driver through Volley's adbc adapter
                 (its "uri" option is set to the DSN, as the PostgreSQL ADBC driver wants)

The data is a lineitem-shaped table of --rows rows (16 columns: integers,
numeric(15,2), char, date, varchar), generated in SQL in an ephemeral PostgreSQL
cluster started from the local binaries, or at --dsn (where a table
volley_bench_lineitem is created, filled and dropped). The table shows the
median of --runs runs of each method: wall time, client CPU (user+system) and
peak RSS, with wall and CPU as ratios to volley's.

Flags:
  --rows N              rows in the table (default 1000000)
  --dsn DSN             an existing server instead of an ephemeral cluster
  --transport tcp|unix  how clients reach the ephemeral cluster (default tcp; ignored with --dsn)
  --runs N              runs of each method; the median is shown (default 3)
  --batch-bytes N       Volley's batch size bound (default 16MiB)
  --adbc-driver PATH    also measure this ADBC C driver library
  --adbc-entrypoint S   its entry point (default: the driver manager's guess)
  --stats text|json     the table as text (default) or the measurements as JSON on stdout

Examples:
  volley bench
  volley bench --rows 5000000 --transport unix --runs 5
  volley bench --dsn postgres://postgres@localhost:5432/postgres --rows 200000
  volley bench --adbc-driver /usr/lib/libadbc_driver_postgresql.so --adbc-entrypoint AdbcDriverPostgresqlInit

` + exitCodesHelp

// envBenchChild tells a re-executed volley which method to measure.
const envBenchChild = "VOLLEY_BENCH_CHILD"

// benchJob is what a child measures; the parent passes it as JSON in
// $VOLLEY_BENCH_CHILD.
type benchJob struct {
	Method     string `json:"method"`
	DSN        string `json:"dsn"`
	SQL        string `json:"sql"`
	BatchBytes int64  `json:"batch_bytes,omitempty"`
	ADBCDriver string `json:"adbc_driver,omitempty"`
	ADBCEntry  string `json:"adbc_entrypoint,omitempty"`
}

// benchChildResult is what a child prints on stdout.
type benchChildResult struct {
	Rows        int64   `json:"rows"`
	WallSeconds float64 `json:"wall_seconds"`
}

// runBenchChild runs a benchmark child when this process is one (it
// exits), and otherwise reports false.
func runBenchChild() bool {
	spec := os.Getenv(envBenchChild)
	if spec == "" {
		return false
	}
	var job benchJob
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		fmt.Fprintln(os.Stderr, "volley bench child:", err)
		os.Exit(exitError)
	}
	ctx := context.Background()
	start := time.Now()
	rows, err := benchMethod(ctx, job)
	if err != nil {
		fmt.Fprintln(os.Stderr, "volley bench child: "+oneLine(scrub(err, job.DSN).Error()))
		os.Exit(exitError)
	}
	json.NewEncoder(os.Stdout).Encode(benchChildResult{Rows: rows, WallSeconds: time.Since(start).Seconds()})
	os.Exit(exitOK)
	return true
}

// benchMethod reads the job's result the job's way and returns the rows.
func benchMethod(ctx context.Context, job benchJob) (int64, error) {
	switch job.Method {
	case "server floor":
		conn, err := pgx.Connect(ctx, job.DSN)
		if err != nil {
			return 0, err
		}
		defer conn.Close(ctx)
		var n int64
		err = conn.QueryRow(ctx, "SELECT count(*) FROM ("+job.SQL+") AS t").Scan(&n)
		return n, err
	case "pgx raw":
		conn, err := pgconn.Connect(ctx, job.DSN)
		if err != nil {
			return 0, err
		}
		defer conn.Close(ctx)
		rr := conn.ExecParams(ctx, job.SQL, nil, nil, nil, nil)
		var n int64
		for rr.NextRow() {
			n++
		}
		_, err = rr.Close()
		return n, err
	case "pgx scan":
		conn, err := pgx.Connect(ctx, job.DSN)
		if err != nil {
			return 0, err
		}
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, job.SQL)
		if err != nil {
			return 0, err
		}
		var n int64
		for rows.Next() {
			if _, err := rows.Values(); err != nil {
				rows.Close()
				return n, err
			}
			n++
		}
		rows.Close()
		return n, rows.Err()
	case "volley", "adbc":
		name, dsn := "postgres", job.DSN
		if job.Method == "adbc" {
			name = "adbc"
			dsn = adbc.FormatDSN(adbc.Config{Library: job.ADBCDriver, EntryPoint: job.ADBCEntry,
				Options: map[string]string{"uri": job.DSN}})
		}
		db, closeDB, err := openDB(name, dsn)
		if err != nil {
			return 0, err
		}
		defer closeDB()
		opts := []driver.QueryOption{driver.OnDevice("cpu"), driver.WithAccept(async.DeviceCPU)}
		if job.BatchBytes > 0 {
			opts = append(opts, driver.WithBatchBytes(job.BatchBytes))
		}
		rows, err := db.Stream(ctx, job.SQL, nil, opts...)
		if err != nil {
			return 0, err
		}
		var n int64
		for b, err := range rows.All(ctx) {
			if err != nil {
				rows.Close()
				return n, err
			}
			n += b.NumRows
			b.Release()
		}
		return n, rows.Close()
	}
	return 0, fmt.Errorf("unknown bench method %q", job.Method)
}

// benchRun is one measured run of one method.
type benchRun struct {
	Method        string  `json:"method"`
	Rows          int64   `json:"rows"`
	WallSeconds   float64 `json:"wall_seconds"`
	CPUSeconds    float64 `json:"client_cpu_seconds"`
	PeakRSSBytes  int64   `json:"peak_rss_bytes"`
	WallVsVolley  float64 `json:"wall_vs_volley,omitempty"`
	CPUVsVolley   float64 `json:"cpu_vs_volley,omitempty"`
	ProcessWallS  float64 `json:"process_wall_seconds"`
	ChildFailures string  `json:"error,omitempty"`
}

func runBench(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	rows := fs.Int64("rows", 1_000_000, "rows")
	dsn := fs.String("dsn", "", "existing server")
	transport := fs.String("transport", "tcp", "tcp or unix")
	runs := fs.Int("runs", 3, "runs per method")
	var batchBytes sizeFlag
	fs.Var(&batchBytes, "batch-bytes", "Volley batch size bound")
	adbcDriver := fs.String("adbc-driver", "", "ADBC C driver library")
	adbcEntry := fs.String("adbc-entrypoint", "", "its entry point")
	stats := fs.String("stats", "text", "text or json")
	if err := parseFlags(e, fs, benchHelp, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 0:
		return usagef("bench takes no arguments, got %q", fs.Arg(0))
	case *rows <= 0:
		return usagef("--rows %d: must be positive", *rows)
	case *runs <= 0:
		return usagef("--runs %d: must be positive", *runs)
	case *transport != "tcp" && *transport != "unix":
		return usagef("--transport %q: want tcp or unix", *transport)
	case *stats != "text" && *stats != "json":
		return usagef("--stats %q: want text or json", *stats)
	case *adbcDriver != "" && !regular(*adbcDriver):
		return withHint(exitConnect, fmt.Errorf("--adbc-driver %s: no such file", *adbcDriver), "")
	}
	say := func(format string, args ...any) { fmt.Fprintf(e.stderr, "volley bench: "+format+"\n", args...) }
	target, table := *dsn, "volley_bench_lineitem"
	if target == "" {
		say("starting an ephemeral PostgreSQL cluster…")
		srv, err := pgtest.Start(ctx, pgtest.Options{})
		if err != nil {
			if errors.Is(err, pgtest.ErrNoPostgres) {
				return withHint(exitConnect, err, "install postgresql (apt-get install postgresql), or pass --dsn")
			}
			return withHint(exitConnect, err, "")
		}
		defer srv.Close()
		target = srv.DSN()
		if *transport == "unix" {
			target = srv.UnixDSN()
		}
	}
	if err := loadTable(ctx, say, target, table, *rows); err != nil {
		return scrub(err, target)
	}
	defer dropTable(target, table)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	sql := "SELECT * FROM " + table
	methods := []string{"server floor", "psql", "pgx raw", "pgx scan", "volley"}
	if *adbcDriver != "" {
		methods = append(methods, "adbc")
	}
	var results []benchRun
	for _, m := range methods {
		var rs []benchRun
		for i := 0; i < *runs; i++ {
			say("%s, run %d of %d…", m, i+1, *runs)
			job := benchJob{Method: m, DSN: target, SQL: sql, BatchBytes: int64(batchBytes),
				ADBCDriver: *adbcDriver, ADBCEntry: *adbcEntry}
			r, err := benchChild(ctx, exe, job)
			if err != nil {
				return scrub(err, target)
			}
			if m != "server floor" && r.Rows != *rows && m != "psql" {
				return fmt.Errorf("bench %s read %d rows, want %d", m, r.Rows, *rows)
			}
			rs = append(rs, r)
		}
		slices.SortFunc(rs, func(a, b benchRun) int { return cmpFloat(a.WallSeconds, b.WallSeconds) })
		results = append(results, rs[len(rs)/2])
	}
	var vol benchRun
	for _, r := range results {
		if r.Method == "volley" {
			vol = r
		}
	}
	for i := range results {
		if vol.WallSeconds > 0 {
			results[i].WallVsVolley = results[i].WallSeconds / vol.WallSeconds
		}
		if vol.CPUSeconds > 0 {
			results[i].CPUVsVolley = results[i].CPUSeconds / vol.CPUSeconds
		}
	}
	if *stats == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"rows": *rows, "runs": *runs, "transport": transportOf(*dsn, *transport), "results": results})
	}
	fmt.Fprintf(e.stdout, "%s rows of lineitem over %s, median of %d runs\n", count(*rows), transportOf(*dsn, *transport), *runs)
	fmt.Fprint(e.stdout, benchTable(results))
	return nil
}

func transportOf(dsn, transport string) string {
	if dsn != "" {
		return "--dsn"
	}
	return transport
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// benchChild measures one job in a child process: its own wall time (or
// the process's, for psql), and the process's CPU time and peak RSS.
func benchChild(ctx context.Context, exe string, job benchJob) (benchRun, error) {
	var cmd *exec.Cmd
	if job.Method == "psql" {
		psql, err := exec.LookPath("psql")
		if err != nil {
			return benchRun{}, withHint(exitError, errors.New("psql not found"), "install postgresql-client (apt-get install postgresql-client)")
		}
		cmd = exec.CommandContext(ctx, psql, "-X", "-q", "-A", "-t", "-o", "/dev/null", "-v", "ON_ERROR_STOP=1",
			"-c", job.SQL, job.DSN)
	} else {
		spec, _ := json.Marshal(job)
		cmd = exec.CommandContext(ctx, exe)
		cmd.Env = append(os.Environ(), envBenchChild+"="+string(spec))
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			return benchRun{}, context.Cause(ctx)
		}
		return benchRun{}, fmt.Errorf("bench %s: %v: %s", job.Method, err, oneLine(stderr.String()))
	}
	r := benchRun{Method: job.Method, WallSeconds: wall.Seconds(), ProcessWallS: wall.Seconds()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		r.PeakRSSBytes = ru.Maxrss * 1024 // KiB on Linux
	}
	if job.Method != "psql" {
		var cr benchChildResult
		if err := json.NewDecoder(io.LimitReader(&stdout, 1<<20)).Decode(&cr); err != nil {
			return benchRun{}, fmt.Errorf("bench %s: bad child output: %v", job.Method, err)
		}
		r.Rows, r.WallSeconds = cr.Rows, cr.WallSeconds
	}
	return r, nil
}

// benchTable renders the results.
func benchTable(rs []benchRun) string {
	rows := [][]string{{"METHOD", "WALL", "CLIENT CPU", "PEAK RSS", "WALL/VOLLEY", "CPU/VOLLEY"}}
	for _, r := range rs {
		ratio := func(x float64) string {
			if x == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2fx", x)
		}
		name := r.Method
		if name == "adbc" {
			name = "adbc C driver"
		}
		rows = append(rows, []string{name, fmt.Sprintf("%.3fs", r.WallSeconds), fmt.Sprintf("%.3fs", r.CPUSeconds),
			bytesText(r.PeakRSSBytes), ratio(r.WallVsVolley), ratio(r.CPUVsVolley)})
	}
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// loadTable creates and fills a lineitem-shaped table of n rows.
func loadTable(ctx context.Context, say func(string, ...any), dsn, table string, n int64) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	say("generating %s rows in %s…", count(n), table)
	start := time.Now()
	if err := createLineitem(ctx, conn, table, n); err != nil {
		return err
	}
	say("generated in %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// dropTable removes the bench table (best effort, also after Ctrl-C).
func dropTable(dsn, table string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	conn.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{table}.Sanitize())
}
