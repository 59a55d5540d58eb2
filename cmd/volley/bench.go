package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/volleyhq/volley/integration/pgbench"
	"github.com/volleyhq/volley/integration/pgtest"
)

const benchHelp = `Usage: volley bench [flags]

Compares ways of reading one PostgreSQL result on this machine, measured in one
run, each client in its own child process so that its CPU time and peak RSS
are its own (the harness is integration/pgbench):

  server-floor  COPY (SELECT ...) TO '/dev/null' on the server: its work without a client
                (needs a superuser or pg_write_server_files); wall time only
  psql          psql -c 'COPY (SELECT ...) TO STDOUT (FORMAT binary)' > /dev/null
                (its peak RSS is not shown: the kernel's figure includes this process's)
  pgx-raw       pgconn CopyTo: the binary COPY bytes counted, nothing decoded
  pgx-scan      pgx Query: every row scanned into typed Go values
  volley        Volley's postgres adapter: Arrow record batches on the CPU
  adbc          with --adbc-driver: that ADBC C driver through Volley's adbc adapter
                (its "uri" option is set to the DSN, as the PostgreSQL ADBC driver wants;
                --adbc-uri-option and --adbc-option change that)

The data is a lineitem-shaped table of --rows rows (16 columns: integers,
numeric(15,2), char, date, varchar), generated in SQL in an ephemeral PostgreSQL
cluster started from the local binaries, or at --dsn (where a table
volley_bench_lineitem is created, filled and dropped). The table shows the
median (by wall time) of --runs runs of each method: wall time, client CPU
(user, system, total) and peak RSS, with, on volley's row, its wall time or
CPU as a ratio to the other clients'. A measurement that fails is shown with
its error, and volley bench then exits 1.

Flags:
  --rows N              rows in the table (default 1000000)
  --dsn DSN             an existing server instead of an ephemeral cluster
  --transport tcp|unix  how clients reach the ephemeral cluster (default tcp; ignored with --dsn)
  --runs N              runs of each method; the median is shown (default 3)
  --batch-bytes N       Volley's batch size bound (default 16MiB)
  --adbc-driver PATH    also measure this ADBC C driver library
  --adbc-entrypoint S   its entry point (default: the driver manager's guess)
  --adbc-option K=V     an extra database option for that driver (repeatable)
  --adbc-uri-option K   the option set to the DSN (default uri; - sets none)
  --stats text|json     the table as text (default) or the measurements as JSON on stdout
                        (durations in nanoseconds)

Examples:
  volley bench
  volley bench --rows 5000000 --transport unix --runs 5
  volley bench --dsn postgres://postgres@localhost:5432/postgres --rows 200000
  volley bench --adbc-driver /usr/lib/libadbc_driver_postgresql.so --adbc-entrypoint AdbcDriverPostgresqlInit
  volley bench --adbc-driver ./libduckdb_adbc.so --adbc-entrypoint duckdb_adbc_init \
      --adbc-uri-option - --adbc-option path=/tmp/lineitem.duckdb   (a DuckDB file with the same table)

` + exitCodesHelp

// benchTable is the table volley bench makes (in --dsn's database) and
// drops.
const benchTable = "volley_bench_lineitem"

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
	adbcOpts := optionsFlag{}
	fs.Var(adbcOpts, "adbc-option", "extra ADBC database option K=V")
	adbcURI := fs.String("adbc-uri-option", "uri", "the ADBC option set to the DSN")
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
	case *adbcURI == "":
		return usagef("--adbc-uri-option: empty (use - for none)")
	case len(adbcOpts) > 0 && *adbcDriver == "":
		return usagef("--adbc-option needs --adbc-driver")
	case *adbcDriver != "" && !regular(*adbcDriver):
		return withHint(exitConnect, fmt.Errorf("--adbc-driver %s: no such file", *adbcDriver), "")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cfg := pgbench.Config{DSN: *dsn, Transports: []pgbench.Transport{{Name: "dsn", DSN: *dsn}},
		Rows: *rows, Table: benchTable, Drop: true, Queries: pgbench.Queries[:1], Runs: *runs,
		Binary: exe, BatchBytes: int64(batchBytes), ADBCDriver: *adbcDriver, ADBCEntryPoint: *adbcEntry,
		ADBCOptions: adbcOpts, ADBCURIOption: *adbcURI,
		Log: prefixed{e.stderr}}
	if *dsn == "" {
		fmt.Fprintln(e.stderr, "volley bench: starting an ephemeral PostgreSQL cluster…")
		srv, err := pgtest.Start(ctx, pgtest.Options{})
		if err != nil {
			if errors.Is(err, pgtest.ErrNoPostgres) {
				return withHint(exitConnect, err, "install postgresql (apt-get install postgresql), or pass --dsn")
			}
			return withHint(exitConnect, err, "")
		}
		defer srv.Close()
		cfg.DSN, cfg.Drop = srv.DSN(), false
		cfg.Transports = []pgbench.Transport{{Name: "tcp", DSN: srv.DSN()}}
		if *transport == "unix" {
			cfg.Transports = []pgbench.Transport{{Name: "unix", DSN: srv.UnixDSN()}}
		}
	}
	rep, err := pgbench.Run(ctx, cfg)
	if err != nil {
		return scrub(err, cfg.DSN)
	}
	for i, r := range rep.Results {
		if r.Err != "" {
			rep.Results[i].Err = scrub(errors.New(r.Err), cfg.DSN).Error()
		}
	}
	if *stats == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteTable(e.stdout)
	}
	if err != nil {
		return err
	}
	if f := rep.Failed(); len(f) > 0 {
		return fmt.Errorf("bench: %d of %d measurements failed; %s: %s", len(f), len(rep.Results), f[0].Mode, oneLine(f[0].Err))
	}
	return nil
}

// prefixed writes pgbench's progress lines to w after "volley bench: ".
type prefixed struct{ w io.Writer }

func (p prefixed) Write(b []byte) (int, error) {
	if _, err := fmt.Fprintf(p.w, "volley bench: %s", b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// optionsFlag collects repeated K=V flags.
type optionsFlag map[string]string

func (o optionsFlag) String() string { return "" }

func (o optionsFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want KEY=VALUE")
	}
	if _, dup := o[k]; dup {
		return fmt.Errorf("%q given twice", k)
	}
	o[k] = val
	return nil
}
