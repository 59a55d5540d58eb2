package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/volleyhq/volley/adapters/adbc"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
)

const queryHelp = `Usage: volley query [flags] SQL

Runs one query through Volley and streams its result as Arrow record batches
onto the device placement picks. With no --out it prints the first rows as a
table on stdout; with --out it writes the whole result to a file (written to a
temporary file in the same directory and renamed at the end, so a failed or
interrupted query leaves no partial file).

With no --dsn the query runs in the embedded DuckDB (in memory), through the
DuckDB ADBC driver (found in $VOLLEY_DUCKDB_DRIVER, the path baked in at build
time, or .cache/duckdb/ next to the binary; ` + "`make duckdb`" + ` builds it).

Flags:
  --driver NAME        adapter: postgres (postgresql), adbc, or duckdb (the embedded DuckDB,
                       with --dsn naming a database file; in memory without). Default:
                       postgres for postgres:// and key=value DSNs, adbc for other DSNs,
                       the embedded in-memory DuckDB with no DSN
  --dsn DSN            data source; secrets in it are never echoed. postgres: a URL or
                       key=value string (pgx syntax). adbc: key=value pairs separated by ;
                       driver=/path/lib.so;entrypoint=NAME;uri=...;username=...;password=...
  --device D           auto | cpu | cuda_host[:N] | cuda[:N] (default auto). An explicit
                       device is strict: if it is unusable the query fails.
  --batch-bytes N      bound each batch's size (default 16MiB; suffixes KiB MiB GiB, KB MB GB)
  --batch-rows N       bound each batch's row count (default: none)
  --window N           batches requested ahead of the consumer (default 4)
  --param V            a bound parameter, repeatable, in order ($1, $2 for PostgreSQL; ? for
                       DuckDB). Never interpolated into the SQL. Typing:
                         plain text       a string          --param abc
                         str:TEXT         a string (even one that looks typed: str:int:1)
                         int:42           a 64-bit integer
                         float:1.5        a float64
                         bool:true        a boolean
                         null             SQL NULL
  --out PATH           write the result: PATH.arrow (Arrow IPC file), PATH.arrows (IPC stream),
                       PATH.parquet (Parquet), or - (IPC stream on stdout)
  --limit N            rows of the preview (default 20; 0: no preview, just the summary)
  --stats text|json    the summary after the query: text on stderr (default) or JSON on stdout
                       after the preview (--limit 0 for the JSON alone; on stderr when --out -
                       uses stdout)
  --quiet              no progress display and no text summary (errors are still printed)

Progress: on a terminal, stderr shows rows, batches, bytes, rate and device, redrawn up to 10
times a second; when stderr is not a terminal, one plain line per second for queries that run
longer than a second.

GPU placements: batches on cuda:N live in GPU memory and are not host readable, so --out and
the preview need cpu or cuda_host (the default auto placement only picks host-readable devices
for them). With --device cuda:N and no --out, the result is streamed to the GPU and only the
summary is printed.

Examples:
  volley query "SELECT 42 AS answer, 'hi' AS greeting"
  volley query --driver duckdb --dsn tpch.duckdb "SELECT * FROM lineitem" --out lineitem.parquet
  volley query --param int:3 "SELECT range AS n FROM range(?)"
  volley query --out numbers.parquet "SELECT * FROM range(1000000)"
  volley query --driver postgres --dsn postgres://app@localhost:5432/tpch \
      --param 1995-01-01 "SELECT * FROM lineitem WHERE l_shipdate < $1::date" --out old.arrow
  volley query --dsn postgres://app@db/tpch --device cuda:0 --stats json "SELECT * FROM lineitem"

` + exitCodesHelp

// paramList collects repeated --param flags.
type paramList []string

func (p *paramList) String() string     { return strings.Join(*p, ",") }
func (p *paramList) Set(v string) error { *p = append(*p, v); return nil }

// sizeFlag is a byte count with an optional unit suffix.
type sizeFlag int64

func (s *sizeFlag) String() string { return strconv.FormatInt(int64(*s), 10) }
func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

// parseSize reads "4096", "64KiB", "16MiB", "1GiB", "10MB".
func parseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	units := []struct {
		suffix string
		mul    int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	mul := int64(1)
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(s), strings.ToUpper(u.suffix)) {
			s, mul = strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.mul
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a positive size such as 16MiB, got %q", v)
	}
	return n * mul, nil
}

// parseParam types one --param value as the help describes.
func parseParam(v string) (any, error) {
	kind, rest, typed := strings.Cut(v, ":")
	switch {
	case v == "null" || v == "NULL":
		return nil, nil
	case !typed:
		return v, nil
	}
	switch kind {
	case "str", "string":
		return rest, nil
	case "int":
		n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("--param %q: not a 64-bit integer", v)
		}
		return n, nil
	case "float":
		f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			return nil, fmt.Errorf("--param %q: not a number", v)
		}
		return f, nil
	case "bool":
		b, err := strconv.ParseBool(strings.TrimSpace(rest))
		if err != nil {
			return nil, fmt.Errorf("--param %q: not a boolean (true or false)", v)
		}
		return b, nil
	}
	// "postgres://x" or "12:30" are plain strings.
	return v, nil
}

// queryFlags are the settings shared by query and demo.
type queryFlags struct {
	driverName, dsn, device string
	batchBytes              sizeFlag
	batchRows, window       int64
	quiet                   bool
	stats                   string
}

func (q *queryFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&q.driverName, "driver", "", "driver name")
	fs.StringVar(&q.dsn, "dsn", "", "data source name")
	fs.StringVar(&q.device, "device", "auto", "placement: auto, cpu, cuda_host[:N], cuda[:N]")
	fs.Var(&q.batchBytes, "batch-bytes", "batch size bound")
	fs.Int64Var(&q.batchRows, "batch-rows", 0, "batch row bound")
	fs.Int64Var(&q.window, "window", 0, "request window")
	fs.BoolVar(&q.quiet, "quiet", false, "no progress or text summary")
	fs.StringVar(&q.stats, "stats", "text", "summary format: text or json")
}

// validate checks the flags' values; errors are usage errors.
func (q *queryFlags) validate() (hint async.Device, hasHint bool, err error) {
	if q.stats != "text" && q.stats != "json" {
		return hint, false, usagef("--stats %q: want text or json", q.stats)
	}
	if q.batchRows < 0 {
		return hint, false, usagef("--batch-rows %d: must be positive", q.batchRows)
	}
	if q.window < 0 {
		return hint, false, usagef("--window %d: must be positive", q.window)
	}
	d := strings.TrimSpace(q.device)
	if d == "" || strings.EqualFold(d, "auto") {
		return hint, false, nil
	}
	dev, perr := async.ParseDevice(d)
	if perr != nil {
		return hint, false, &cliError{code: exitUsage, err: fmt.Errorf("--device %q: %w", q.device, perr),
			hint: "devices are auto, cpu, cuda_host[:N], cuda[:N]; `volley devices` lists them"}
	}
	return dev, true, nil
}

// options returns the driver's query options; accept are the device types
// the consumer takes.
func (q *queryFlags) options(accept []async.DeviceType) []driver.QueryOption {
	opts := []driver.QueryOption{driver.OnDevice(q.device), driver.WithAccept(accept...)}
	if q.batchBytes > 0 {
		opts = append(opts, driver.WithBatchBytes(int64(q.batchBytes)))
	}
	if q.batchRows > 0 {
		opts = append(opts, driver.WithBatchRows(q.batchRows))
	}
	if q.window > 0 {
		opts = append(opts, driver.WithWindow(int(q.window)))
	}
	return opts
}

// acceptFor is the consumer's accepted device types: host-readable ones
// when the batches are read on the host, else everything Volley moves to.
func acceptFor(hint async.Device, hasHint, needHost bool) []async.DeviceType {
	if hasHint {
		if hint.Type == async.DeviceCPU {
			return []async.DeviceType{async.DeviceCPU}
		}
		return []async.DeviceType{hint.Type, async.DeviceCPU}
	}
	if needHost {
		return []async.DeviceType{async.DeviceCUDAHost, async.DeviceCPU}
	}
	return []async.DeviceType{async.DeviceCUDA, async.DeviceCUDAHost, async.DeviceCPU}
}

func runQuery(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	var qf queryFlags
	qf.register(fs)
	var params paramList
	fs.Var(&params, "param", "bound parameter (repeatable)")
	out := fs.String("out", "", "output file (.arrow, .arrows, .parquet) or - for stdout")
	limit := fs.Int("limit", 20, "preview rows")
	if err := parseFlags(e, fs, queryHelp, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &cliError{code: exitUsage, err: fmt.Errorf("query wants exactly one SQL argument, got %d", fs.NArg()),
			hint: "quote the SQL: volley query \"SELECT 1\""}
	}
	sql := fs.Arg(0)
	hint, hasHint, err := qf.validate()
	if err != nil {
		return err
	}
	if *limit < 0 {
		return usagef("--limit %d: must not be negative", *limit)
	}
	var qargs []any
	for _, p := range params {
		v, err := parseParam(p)
		if err != nil {
			return usagef("%v", err)
		}
		qargs = append(qargs, v)
	}
	format, err := outputFormat(*out)
	if err != nil {
		return err
	}
	if *out == "-" && e.stdoutTTY {
		return &cliError{code: exitUsage, err: errors.New("--out - writes a binary Arrow IPC stream, and stdout is a terminal"),
			hint: "redirect stdout (volley query --out - ... > result.arrows) or pipe it into a reader"}
	}
	deviceOnly := hasHint && !hint.Type.HostAccessible()
	if deviceOnly && *out != "" {
		return &cliError{code: exitUsage, err: fmt.Errorf("--out needs host-readable batches, and --device %s puts them in GPU memory", hint),
			hint: "use --device cpu or --device cuda_host:N with --out"}
	}
	needHost := *out != "" || *limit > 0
	name, dsn, err := resolveSource(qf.driverName, qf.dsn)
	if err != nil {
		return err
	}

	// The output file's temporary sibling is made first, so an unwritable
	// path fails before the query runs.
	var sink *output
	if *out != "" {
		if sink, err = createOutput(*out, format, e.stdout); err != nil {
			return err
		}
		defer sink.abort() // removes the temporary file unless committed
	}
	db, closeDB, err := openDB(name, dsn)
	if err != nil {
		return scrub(err, dsn)
	}
	defer closeDB()

	var pv *preview
	if *out == "" && *limit > 0 && !deviceOnly {
		pv = newPreview(*limit)
	}
	res, err := streamQuery(ctx, e, db, streamSpec{
		sql: sql, args: qargs, opts: qf.options(acceptFor(hint, hasHint, needHost && !deviceOnly)),
		sink: sink, preview: pv, progress: !qf.quiet,
	})
	if err != nil {
		return scrub(err, dsn)
	}
	if sink != nil {
		if err := sink.commit(); err != nil {
			return err
		}
		res.output = *out
	}
	if pv != nil {
		pv.print(e.stdout, res.schema)
	}
	if deviceOnly && *out == "" && *limit > 0 && !qf.quiet {
		fmt.Fprintf(e.stderr, "volley: no preview: the batches are in GPU memory on %s, not host readable (use --device cpu or cuda_host to see rows)\n", res.placement.Device)
	}
	res.driver, res.dsn = name, redactDSN(dsn)
	statsOut := e.stdout
	if *out == "-" {
		statsOut = e.stderr
	}
	return printSummary(e, statsOut, qf, res)
}

// openDB opens a one-connection DB over the commands' device manager;
// closeDB closes both.
func openDB(name, dsn string) (*driver.DB, func(), error) {
	m, err := newDevices()
	if err != nil {
		return nil, nil, err
	}
	db, err := driver.OpenConfig(name, dsn, driver.Config{MaxOpen: 1, MaxIdle: 1, Devices: m})
	if err != nil {
		m.Close()
		if errors.Is(err, driver.ErrInvalid) {
			return nil, nil, &cliError{code: exitUsage, err: err, hint: "check the --dsn syntax"}
		}
		return nil, nil, err
	}
	return db, func() { db.Close(); m.Close() }, nil
}

// resolveSource picks the driver name and DSN: the embedded DuckDB when
// neither is given.
func resolveSource(name, dsn string) (string, string, error) {
	if (dsn == "" && (name == "" || name == "adbc")) || name == "duckdb" {
		// The embedded DuckDB: in memory, or the database file --dsn names.
		d, err := embeddedDuckDB(dsn)
		return "adbc", d, err
	}
	if name == "" {
		lower := strings.ToLower(dsn)
		if strings.HasPrefix(lower, "postgres://") || strings.HasPrefix(lower, "postgresql://") ||
			strings.Contains(lower, "host=") || strings.Contains(lower, "dbname=") {
			name = "postgres"
		} else {
			name = "adbc"
		}
	}
	if !slices.Contains(driver.Drivers(), name) {
		return "", "", withHint(exitConnect, fmt.Errorf("unknown driver %q; known: %s", name, strings.Join(driver.Drivers(), ", ")),
			"for any other database, use --driver adbc with its ADBC driver library in the DSN (driver=/path/lib.so)")
	}
	if dsn == "" && strings.HasPrefix(name, "postgres") {
		return "", "", usagef("--driver %s needs --dsn (e.g. postgres://user@localhost:5432/db)", name)
	}
	if name == "adbc" {
		cfg, err := adbc.ParseDSN(dsn)
		if err != nil {
			return "", "", &cliError{code: exitUsage, err: err,
				hint: "the adbc DSN is key=value pairs separated by ;, e.g. driver=/path/libduckdb_adbc.so;entrypoint=duckdb_adbc_init;path=/tmp/x.db"}
		}
		if lib := cfg.Library; strings.ContainsRune(lib, os.PathSeparator) && !regular(lib) {
			return "", "", withHint(exitConnect, fmt.Errorf("ADBC driver library %s not found", lib),
				"check the DSN's driver= path")
		}
	}
	return name, dsn, nil
}

// streamSpec is one query to stream.
type streamSpec struct {
	sql      string
	args     []any
	opts     []driver.QueryOption
	sink     *output
	preview  *preview
	progress bool
}

// result is what a streamed query did.
type result struct {
	schema      *arrow.Schema
	placement   driver.Placement
	stats       async.StatsSnapshot
	wall        time.Duration
	output      string
	driver, dsn string
}

// streamQuery runs spec on db, handing every batch to the sink and the
// preview, with the progress display running meanwhile.
func streamQuery(ctx context.Context, e *env, db *driver.DB, spec streamSpec) (res result, err error) {
	start := time.Now()
	rows, err := db.Stream(ctx, spec.sql, spec.args, spec.opts...)
	if err != nil {
		if errors.Is(err, driver.ErrInvalid) {
			return res, &cliError{code: exitUsage, err: err}
		}
		return res, err
	}
	defer func() {
		if cerr := rows.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	q := rows.Query()
	var prog *progress
	if spec.progress {
		prog = startProgress(e, q)
		defer prog.stop()
	}
	schema, err := rows.Schema(ctx)
	if err != nil {
		return res, err
	}
	res.schema = schema
	res.placement = q.Placement()
	if prog != nil {
		prog.setDevice(res.placement.Device)
	}
	if spec.sink != nil {
		if err := spec.sink.begin(schema); err != nil {
			return res, err
		}
	}
	for {
		b, err := rows.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, err
		}
		if err := consume(ctx, b, spec); err != nil {
			b.Release()
			return res, err
		}
		b.Release()
	}
	if prog != nil {
		prog.stop()
	}
	if err := rows.Close(); err != nil {
		return res, err
	}
	res.wall = time.Since(start)
	res.stats = q.Stats()
	return res, nil
}

// consume waits for one batch's data and hands it on.
func consume(ctx context.Context, b *async.DeviceBatch, spec streamSpec) error {
	if err := b.Wait(ctx); err != nil {
		return err
	}
	if spec.sink == nil && spec.preview == nil {
		return nil
	}
	if b.Record == nil {
		return fmt.Errorf("batches on %s are not host readable; use --device cpu or cuda_host", b.Device)
	}
	if spec.sink != nil {
		if err := spec.sink.write(b.Record); err != nil {
			return err
		}
	}
	if spec.preview != nil {
		spec.preview.add(b.Record)
	}
	return nil
}
