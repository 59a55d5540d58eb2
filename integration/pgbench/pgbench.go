// Package pgbench compares Volley's PostgreSQL reads with the usual ways of
// draining a result: the server's own floor (COPY to /dev/null on the
// server), psql's binary COPY to /dev/null, pgx's raw CopyTo into a byte
// counter, pgx Query+Scan into Go values, Volley (Source → async.Produce →
// Reader, releasing each batch) and, optionally, any ADBC C driver through
// Volley's adbc adapter.
//
// Each client runs in its own child process, so that its wall time, CPU
// (user+sys) and peak RSS are its own: [Run] re-executes a binary (by
// default os.Args[0]) with environment variables that select the mode, and
// that binary must call [RunChildIfRequested] first thing in main (or in
// TestMain). The table is lineitem-shaped (TPC-H's 16 columns and types),
// generated in SQL with generate_series. `volley bench` is a command-line
// front end to [Run].
package pgbench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/volleyhq/volley/adapters/adbc"
)

// Mode is one way of draining a query.
type Mode string

// The modes, in the order they run.
const (
	// ServerFloor runs COPY (q) TO '/dev/null' (FORMAT binary) on the server
	// (superuser or pg_write_server_files): no client at all. Only wall
	// time is measured.
	ServerFloor Mode = "server-floor"
	// Psql runs psql -c "COPY (q) TO STDOUT (FORMAT binary)" > /dev/null.
	Psql Mode = "psql"
	// PgxRaw runs pgconn.CopyTo into a byte counter.
	PgxRaw Mode = "pgx-raw"
	// PgxScan runs pgx Query and Scans every row into typed Go values.
	PgxScan Mode = "pgx-scan"
	// Volley runs the postgres adapter's Source through async.Produce and
	// an async.Reader, releasing each batch.
	Volley Mode = "volley"
	// ADBC runs an ADBC C driver library ([Config.ADBCDriver]) through
	// Volley's adbc adapter (driver.OpenDB, DB.Stream onto the CPU),
	// releasing each batch. It runs only when Config.ADBCDriver is set.
	ADBC Mode = "adbc"
)

// AllModes lists every mode that needs no configuration beyond a DSN; the
// default of [Config.Modes] is these, then [ADBC] when Config.ADBCDriver
// is set.
var AllModes = []Mode{ServerFloor, Psql, PgxRaw, PgxScan, Volley}

// Query is one measured statement; %s in SQL is the quoted table name.
type Query struct{ Name, SQL string }

// Queries are the measured statements, the default of [Config.Queries].
var Queries = []Query{
	{"select-*", "SELECT * FROM %s"},
	{"project-4", "SELECT l_orderkey, l_quantity, l_extendedprice, l_shipdate FROM %s"},
}

// Transport is one way clients reach the server: a name for the table
// (tcp, unix, ...) and the DSN client modes use.
type Transport struct{ Name, DSN string }

// Config configures [Run]. Only DSN is required.
type Config struct {
	// DSN is a superuser connection; it is used to create the table and
	// for the server floor, and by default by the clients ("tcp").
	DSN string
	// UnixDSN, when set and Transports is not, repeats the client
	// measurements over the unix socket.
	UnixDSN string
	// Transports are the client transports; default "tcp" over DSN, then
	// "unix" over UnixDSN when set.
	Transports []Transport
	// Rows is the table's row count; default 100,000 (SF1 is 6,001,215).
	// An existing table with this many rows is reused.
	Rows int64
	// Table is the table name; default "lineitem".
	Table string
	// Drop drops the table when Run returns.
	Drop bool
	// Queries selects the statements; default [Queries].
	Queries []Query
	// Modes selects modes; default [AllModes] (and [ADBC] when ADBCDriver
	// is set).
	Modes []Mode
	// Runs is how often each measurement is taken; the run with the median
	// wall time is reported. Default 1.
	Runs int
	// Binary is the executable re-run for child modes; default os.Args[0].
	// It must call RunChildIfRequested at start.
	Binary string
	// Psql is the psql executable; default from PATH.
	Psql string
	// BatchBytes is Volley's batch size bound; default 16 MiB.
	BatchBytes int64
	// Window is Volley's Reader window (tasks queued plus requested);
	// default 1: the consumer holds one batch, one is queued, and the
	// adapter decodes the next.
	Window int
	// ADBCDriver is the ADBC C driver library the ADBC mode loads.
	ADBCDriver string
	// ADBCEntryPoint is its init function; empty lets the driver manager
	// pick its default.
	ADBCEntryPoint string
	// ADBCOptions are extra ADBC database options.
	ADBCOptions map[string]string
	// ADBCURIOption is the database option set to the transport's DSN;
	// default "uri" (what the PostgreSQL ADBC driver reads); "-" sets
	// none, leaving ADBCOptions to say where the data is.
	ADBCURIOption string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Result is one measurement.
type Result struct {
	Query     string        `json:"query"`
	Transport string        `json:"transport"` // a Transport's name, or server
	Mode      Mode          `json:"mode"`
	Wall      time.Duration `json:"wall_ns"`
	User      time.Duration `json:"user_ns"`
	Sys       time.Duration `json:"sys_ns"`
	PeakRSS   int64         `json:"peak_rss_bytes"` // 0 when not measured
	Rows      int64         `json:"rows"`           // -1 when the mode cannot count
	Bytes     int64         `json:"bytes"`
	Runs      int           `json:"runs"` // runs taken; this is the median one
	Err       string        `json:"error,omitempty"`
}

// CPU is user + sys.
func (r Result) CPU() time.Duration { return r.User + r.Sys }

// Report is the outcome of [Run].
type Report struct {
	Rows    int64    `json:"rows"`
	Runs    int      `json:"runs"`
	Results []Result `json:"results"`
}

// Failed returns the results that carry an error.
func (r Report) Failed() []Result {
	var out []Result
	for _, x := range r.Results {
		if x.Err != "" {
			out = append(out, x)
		}
	}
	return out
}

// ErrNoADBCDriver is returned by [Run] when the ADBC mode is selected
// without Config.ADBCDriver.
var ErrNoADBCDriver = errors.New("pgbench: the adbc mode needs Config.ADBCDriver")

// Run creates the table when needed and measures every mode for every
// query and transport, Runs times each. Failures of one measurement are
// in its Result.Err; Run returns an error only when the table cannot be
// made, the configuration is unusable, or ctx ends (its cause).
func Run(ctx context.Context, cfg Config) (Report, error) {
	if cfg.DSN == "" {
		return Report{}, errors.New("pgbench: Config.DSN is required")
	}
	if cfg.Rows <= 0 {
		cfg.Rows = 100_000
	}
	if cfg.Table == "" {
		cfg.Table = "lineitem"
	}
	if len(cfg.Queries) == 0 {
		cfg.Queries = Queries
	}
	if len(cfg.Modes) == 0 {
		cfg.Modes = AllModes
		if cfg.ADBCDriver != "" {
			cfg.Modes = append(slices.Clip(cfg.Modes), ADBC)
		}
	}
	if slices.Contains(cfg.Modes, ADBC) && cfg.ADBCDriver == "" {
		return Report{}, ErrNoADBCDriver
	}
	if len(cfg.Transports) == 0 {
		cfg.Transports = []Transport{{"tcp", cfg.DSN}}
		if cfg.UnixDSN != "" {
			cfg.Transports = append(cfg.Transports, Transport{"unix", cfg.UnixDSN})
		}
	}
	if cfg.Runs <= 0 {
		cfg.Runs = 1
	}
	if cfg.Binary == "" {
		cfg.Binary = os.Args[0]
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 16 << 20
	}
	if cfg.Window <= 0 {
		cfg.Window = 1
	}
	if cfg.ADBCURIOption == "" {
		cfg.ADBCURIOption = "uri"
	}
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	if err := ensureTable(ctx, cfg.DSN, cfg.Table, cfg.Rows, logf); err != nil {
		return Report{}, err
	}
	if cfg.Drop {
		defer dropTable(cfg.DSN, cfg.Table)
	}
	rep := Report{Rows: cfg.Rows, Runs: cfg.Runs}
	for _, q := range cfg.Queries {
		sql := fmt.Sprintf(q.SQL, quoteIdent(cfg.Table))
		for _, m := range cfg.Modes {
			transports := cfg.Transports
			if m == ServerFloor {
				transports = []Transport{{"server", cfg.DSN}}
			}
			for _, tr := range transports {
				runs := make([]Result, 0, cfg.Runs)
				for i := range cfg.Runs {
					r := measure(ctx, cfg, m, tr.DSN, sql)
					if err := ctx.Err(); err != nil {
						return rep, context.Cause(ctx)
					}
					r.Query, r.Transport, r.Mode = q.Name, tr.Name, m
					if r.Err == "" && r.Rows >= 0 && r.Rows != cfg.Rows {
						r.Err = fmt.Sprintf("read %d rows, want %d", r.Rows, cfg.Rows)
					}
					logf("%-9s %-6s %-12s run %d/%d: wall %v cpu %v rss %.1f MiB %s", q.Name, tr.Name, m, i+1, cfg.Runs,
						r.Wall.Round(time.Millisecond), r.CPU().Round(time.Millisecond), float64(r.PeakRSS)/(1<<20), r.Err)
					runs = append(runs, r)
				}
				rep.Results = append(rep.Results, median(runs))
			}
		}
	}
	return rep, nil
}

// measure takes one run of mode m.
func measure(ctx context.Context, cfg Config, m Mode, dsn, sql string) Result {
	switch m {
	case ServerFloor:
		return serverFloor(ctx, cfg.DSN, sql)
	case Psql:
		return runPsql(ctx, cfg.Psql, dsn, sql)
	case ADBC:
		opts := maps.Clone(cfg.ADBCOptions)
		if cfg.ADBCURIOption != "-" {
			if opts == nil {
				opts = map[string]string{}
			}
			opts[cfg.ADBCURIOption] = dsn
		}
		dsn = adbc.FormatDSN(adbc.Config{Library: cfg.ADBCDriver, EntryPoint: cfg.ADBCEntryPoint, Options: opts})
	}
	return runChild(ctx, cfg, m, dsn, sql)
}

// median returns the run with the median wall time, with Runs set; the
// first failed run when any failed.
func median(runs []Result) Result {
	for _, r := range runs {
		if r.Err != "" {
			r.Runs = len(runs)
			return r
		}
	}
	slices.SortStableFunc(runs, func(a, b Result) int { return cmp.Compare(a.Wall, b.Wall) })
	r := runs[len(runs)/2]
	r.Runs = len(runs)
	return r
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// LineitemDDL creates the table; %s is the quoted name.
const LineitemDDL = `CREATE UNLOGGED TABLE %s (
	l_orderkey int8 NOT NULL, l_partkey int8 NOT NULL, l_suppkey int8 NOT NULL, l_linenumber int4 NOT NULL,
	l_quantity numeric(15,2) NOT NULL, l_extendedprice numeric(15,2) NOT NULL,
	l_discount numeric(15,2) NOT NULL, l_tax numeric(15,2) NOT NULL,
	l_returnflag char(1) NOT NULL, l_linestatus char(1) NOT NULL,
	l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL,
	l_shipinstruct char(25) NOT NULL, l_shipmode char(10) NOT NULL, l_comment varchar(44) NOT NULL)`

// LineitemInsert fills the table with $1 deterministic rows shaped like
// TPC-H's (value ranges and string lengths, not its exact distribution).
const LineitemInsert = `INSERT INTO %s
SELECT g / 4 + 1, (g * 7919) %% 200000 + 1, (g * 104729) %% 10000 + 1, g %% 7 + 1,
	(g %% 50 + 1)::numeric(15,2),
	((g * 7919) %% 10490000 + 90000) / 100.0,
	(g %% 11) / 100.0, (g %% 9) / 100.0,
	(ARRAY['R','A','N'])[g %% 3 + 1]::char(1), (ARRAY['O','F'])[g %% 2 + 1]::char(1),
	DATE '1992-01-02' + (g %% 2526)::int, DATE '1992-01-31' + (g %% 2466)::int, DATE '1992-01-03' + (g %% 2557)::int,
	(ARRAY['DELIVER IN PERSON','COLLECT COD','NONE','TAKE BACK RETURN'])[g %% 4 + 1],
	(ARRAY['REG AIR','AIR','RAIL','SHIP','TRUCK','MAIL','FOB'])[g %% 7 + 1],
	substr(md5(g::text) || md5((g + 1)::text), 1, (10 + g %% 34)::int)
FROM generate_series(0, $1::int8 - 1) g`

func ensureTable(ctx context.Context, dsn, table string, rows int64, logf func(string, ...any)) error {
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("pgbench: connect: %w", err)
	}
	defer c.Close(context.Background())
	q := quoteIdent(table)
	res := c.ExecParams(ctx, "SELECT count(*) FROM "+q, nil, nil, nil, nil).Read()
	if res.Err == nil && len(res.Rows) == 1 && string(res.Rows[0][0]) == strconv.FormatInt(rows, 10) {
		return nil
	}
	logf("generating %s with %d rows", table, rows)
	start := time.Now()
	if _, err := c.Exec(ctx, "DROP TABLE IF EXISTS "+q+"; "+fmt.Sprintf(LineitemDDL, q)).ReadAll(); err != nil {
		return fmt.Errorf("pgbench: create table: %w", err)
	}
	if res := c.ExecParams(ctx, fmt.Sprintf(LineitemInsert, q), [][]byte{[]byte(strconv.FormatInt(rows, 10))}, nil, nil, nil).Read(); res.Err != nil {
		return fmt.Errorf("pgbench: fill table: %w", res.Err)
	}
	if _, err := c.Exec(ctx, "VACUUM ANALYZE "+q).ReadAll(); err != nil {
		return fmt.Errorf("pgbench: vacuum: %w", err)
	}
	logf("generated in %v", time.Since(start).Round(time.Millisecond))
	return nil
}

// dropTable drops the table, also after ctx ended (best effort).
func dropTable(dsn, table string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return
	}
	defer c.Close(ctx)
	c.Exec(ctx, "DROP TABLE IF EXISTS "+quoteIdent(table)).ReadAll()
}

func serverFloor(ctx context.Context, dsn, sql string) Result {
	r := Result{Mode: ServerFloor, Transport: "server", Rows: -1}
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer c.Close(context.Background())
	start := time.Now()
	_, err = c.Exec(ctx, "COPY ("+sql+") TO '/dev/null' (FORMAT binary)").ReadAll()
	r.Wall = time.Since(start)
	if err != nil {
		r.Err = err.Error()
	}
	return r
}

func runPsql(ctx context.Context, psql, dsn, sql string) Result {
	r := Result{Mode: Psql, Rows: -1}
	if psql == "" {
		p, err := exec.LookPath("psql")
		if err != nil {
			r.Err = "psql not found: install postgresql-client"
			return r
		}
		psql = p
	}
	cmd := exec.CommandContext(ctx, psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn,
		"-c", "COPY ("+sql+") TO STDOUT (FORMAT binary)")
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer devnull.Close()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = devnull, &stderr
	start := time.Now()
	err = cmd.Run()
	r.Wall = time.Since(start)
	usage(&r, cmd)
	// psql's ru_maxrss would include this process's RSS (see peakRSS):
	// not reported.
	r.PeakRSS = 0
	if err != nil {
		r.Err = fmt.Sprintf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return r
}

func usage(r *Result, cmd *exec.Cmd) {
	if cmd.ProcessState == nil {
		return
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.User = time.Duration(ru.Utime.Nano())
		r.Sys = time.Duration(ru.Stime.Nano())
		r.PeakRSS = ru.Maxrss * 1024 // Linux reports KiB
	}
}

// Environment of a child process.
const (
	envMode  = "VOLLEY_PGBENCH_CHILD"
	envDSN   = "VOLLEY_PGBENCH_DSN"
	envSQL   = "VOLLEY_PGBENCH_SQL"
	envBatch = "VOLLEY_PGBENCH_BATCH_BYTES"
	envWin   = "VOLLEY_PGBENCH_WINDOW"
)

func runChild(ctx context.Context, cfg Config, m Mode, dsn, sql string) Result {
	r := Result{Mode: m}
	bin, err := filepath.Abs(cfg.Binary)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), envMode+"="+string(m), envDSN+"="+dsn, envSQL+"="+sql,
		envBatch+"="+strconv.FormatInt(cfg.BatchBytes, 10), envWin+"="+strconv.Itoa(cfg.Window))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	r.Wall = time.Since(start)
	usage(&r, cmd)
	var out childResult
	if jerr := json.Unmarshal(lastLine(stdout.Bytes()), &out); err != nil {
		// The child's own error when it got to say it, else how it ended.
		r.Err = out.Err
		if jerr != nil || r.Err == "" {
			r.Err = fmt.Sprintf("%v: %s", err, strings.TrimSpace(stderr.String()))
		}
		return r
	} else if jerr != nil {
		r.Err = fmt.Sprintf("child output: %v: %q", jerr, stdout.String())
		return r
	}
	r.Rows, r.Bytes = out.Rows, out.Bytes
	if out.PeakRSS > 0 {
		r.PeakRSS = out.PeakRSS
	}
	if out.Err != "" {
		r.Err = out.Err
	}
	return r
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

type childResult struct {
	Rows    int64  `json:"rows"`
	Bytes   int64  `json:"bytes"`
	PeakRSS int64  `json:"peak_rss"`
	Err     string `json:"error,omitempty"`
}

// peakRSS is this process's VmHWM. The rusage of a child started by
// os/exec is not used for it: Linux's ru_maxrss of a vfork-exec'd child
// includes the parent's RSS at exec time.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// RunChildIfRequested runs a benchmark child and exits when the process
// was started as one by [Run] (the environment says so); otherwise it
// returns at once. Call it first in main, or in TestMain of a test binary
// that calls Run.
func RunChildIfRequested() {
	m := os.Getenv(envMode)
	if m == "" {
		return
	}
	if path := os.Getenv("VOLLEY_PGBENCH_CPUPROFILE"); path != "" {
		// For looking into one mode: the profile of the child's drain.
		if f, err := os.Create(path + "." + m + "." + strconv.Itoa(os.Getpid())); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer f.Close()
				defer pprof.StopCPUProfile()
			}
		}
	}
	batch, _ := strconv.ParseInt(os.Getenv(envBatch), 10, 64)
	win, _ := strconv.Atoi(os.Getenv(envWin))
	rows, n, err := runMode(context.Background(), Mode(m), os.Getenv(envDSN), os.Getenv(envSQL), batch, win)
	out := childResult{Rows: rows, Bytes: n, PeakRSS: peakRSS()}
	if err != nil {
		out.Err = err.Error()
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	code := 0
	if err != nil {
		code = 1
	}
	exit(code)
}

// exit runs deferred work of RunChildIfRequested (the profile) first.
func exit(code int) { pprof.StopCPUProfile(); os.Exit(code) }
