package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/volleyhq/volley/integration/pgbench"
	"github.com/volleyhq/volley/integration/pgtest"
)

const demoHelp = `Usage: volley demo [flags]

Generates TPC-H data and streams SELECT * FROM lineitem through Volley onto the
device the placement policy picks (a GPU when one is usable and the result is
worth a transfer, else pinned host or CPU memory), then prints the throughput
and where the batches landed, with the policy's reason.

By default it needs nothing but this repository's build: the data is generated
with DuckDB's dbgen in the embedded DuckDB (a database file in a temporary
directory, removed at the end). With --postgres it uses PostgreSQL instead: an
ephemeral cluster started from the local PostgreSQL binaries (initdb, pg_ctl,
postgres), or the server at --dsn; lineitem is generated in SQL with
generate_series (about 6 million rows per unit of --sf). With --dsn, an existing
table named lineitem is streamed as it is; otherwise it is created and left there.

Flags:
  --sf X              TPC-H scale factor (default 1: 6 million lineitem rows)
  --postgres          use PostgreSQL instead of the embedded DuckDB
  --dsn DSN           with --postgres: an existing server instead of an ephemeral one
  --device D          auto | cpu | cuda_host[:N] | cuda[:N] (default auto)
  --batch-bytes N     bound each batch's size (default 16MiB)
  --batch-rows N      bound each batch's row count
  --window N          batches requested ahead (default 4)
  --stats text|json   the summary as text on stderr (default) or JSON on stdout
  --quiet             no progress display and no text summary

Examples:
  volley demo
  volley demo --sf 0.1 --device cpu
  volley demo --postgres --sf 0.1
  volley demo --postgres --dsn postgres://postgres@localhost:5432/postgres

` + exitCodesHelp

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var qf queryFlags
	qf.register(fs)
	sf := fs.Float64("sf", 1, "TPC-H scale factor")
	usePG := fs.Bool("postgres", false, "use PostgreSQL")
	if err := parseFlags(e, fs, demoHelp, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("demo takes no arguments, got %q", fs.Arg(0))
	}
	if *sf <= 0 || math.IsNaN(*sf) || math.IsInf(*sf, 0) || *sf > 1000 {
		return usagef("--sf %v: want a scale factor above 0 (1 is 6 million rows)", *sf)
	}
	if qf.driverName != "" {
		return usagef("demo picks its driver itself; use --postgres for PostgreSQL")
	}
	if qf.dsn != "" && !*usePG {
		return usagef("--dsn is for --postgres; the default demo uses the embedded DuckDB")
	}
	hint, hasHint, err := qf.validate()
	if err != nil {
		return err
	}
	say := func(format string, args ...any) {
		if !qf.quiet {
			fmt.Fprintf(e.stderr, "volley demo: "+format+"\n", args...)
		}
	}

	var name, dsn, where string
	if *usePG {
		name = "postgres"
		var stop func()
		dsn, where, stop, err = demoPostgres(ctx, say, qf.dsn, *sf)
		if err != nil {
			return scrub(err, qf.dsn)
		}
		defer stop()
	} else {
		name = "adbc"
		dir, err := os.MkdirTemp("", "volley-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if dsn, err = embeddedDuckDB(filepath.Join(dir, "tpch.duckdb")); err != nil {
			return err
		}
		where = "the embedded DuckDB"
		if err := demoDuckDB(ctx, e, say, dsn, *sf); err != nil {
			return err
		}
	}

	db, closeDB, err := openDB(name, dsn)
	if err != nil {
		return scrub(err, dsn)
	}
	defer closeDB()
	say("streaming SELECT * FROM lineitem from %s through Volley", where)
	res, err := streamQuery(ctx, e, db, streamSpec{
		sql:      "SELECT * FROM lineitem",
		opts:     qf.options(acceptFor(hint, hasHint, false)),
		progress: !qf.quiet,
	})
	if err != nil {
		return scrub(err, dsn)
	}
	res.driver, res.dsn = name, redactDSN(dsn)
	if *usePG && qf.dsn == "" {
		res.dsn = "" // an ephemeral cluster's address means nothing afterwards
	}
	if !*usePG {
		res.dsn = ""
	}
	if qf.stats == "json" {
		return printSummary(e, e.stdout, qf, res)
	}
	if qf.quiet {
		return nil
	}
	s := summarize(res)
	fmt.Fprintf(e.stderr, "streamed %s rows in %s batches (%s) in %s: %s rows/s, %s/s\n", count(s.Rows),
		count(s.Batches), bytesText(s.Bytes), res.wall.Round(time.Millisecond),
		count(int64(s.RowsPerSecond)), bytesText(int64(s.BytesPerSecond)))
	fmt.Fprintf(e.stderr, "batches landed on %s\n", placementText(res.placement))
	return nil
}

// demoDuckDB generates the TPC-H tables in the DuckDB database of dsn.
func demoDuckDB(ctx context.Context, e *env, say func(string, ...any), dsn string, sf float64) error {
	db, closeDB, err := openDB("adbc", dsn)
	if err != nil {
		return err
	}
	defer closeDB()
	say("generating TPC-H SF%s with DuckDB's dbgen…", strconv.FormatFloat(sf, 'g', -1, 64))
	start := time.Now()
	// The scale factor is a number we formatted: dbgen takes no bound
	// parameters for it.
	sql := "CALL dbgen(sf=" + strconv.FormatFloat(sf, 'f', -1, 64) + ")"
	if _, err := streamQuery(ctx, e, db, streamSpec{sql: sql}); err != nil {
		return fmt.Errorf("generating TPC-H data: %w", err)
	}
	say("generated in %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// demoPostgres returns the DSN of a database holding lineitem: an
// ephemeral cluster (stopped by stop) unless dsn is given.
func demoPostgres(ctx context.Context, say func(string, ...any), dsn string, sf float64) (string, string, func(), error) {
	stop := func() {}
	where := "PostgreSQL at " + redactDSN(dsn)
	external := dsn != ""
	if !external {
		say("starting an ephemeral PostgreSQL cluster…")
		srv, err := pgtest.Start(ctx, pgtest.Options{})
		if err != nil {
			if errors.Is(err, pgtest.ErrNoPostgres) {
				return "", "", nil, withHint(exitConnect, err, "install postgresql (apt-get install postgresql), or pass --dsn")
			}
			return "", "", nil, withHint(exitConnect, err, "")
		}
		stop = func() { srv.Close() }
		dsn, where = srv.DSN(), "an ephemeral PostgreSQL cluster"
	}
	if err := loadLineitem(ctx, say, dsn, sf, external); err != nil {
		stop()
		return "", "", nil, err
	}
	return dsn, where, stop, nil
}

// loadLineitem creates and fills lineitem; with keepExisting an existing
// table is used as it is.
func loadLineitem(ctx context.Context, say func(string, ...any), dsn string, sf float64, keepExisting bool) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if keepExisting {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass('lineitem') IS NOT NULL").Scan(&exists); err != nil {
			return err
		}
		if exists {
			say("streaming the existing table lineitem")
			return nil
		}
	}
	rows := max(1, int64(math.Round(sf*6_000_000)))
	say("generating %s lineitem rows in PostgreSQL…", count(rows))
	start := time.Now()
	if err := createLineitem(ctx, conn, "lineitem", rows); err != nil {
		return err
	}
	say("generated in %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// createLineitem (re)creates table shaped like lineitem with n rows.
func createLineitem(ctx context.Context, conn *pgx.Conn, table string, n int64) error {
	id := pgx.Identifier{table}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+id); err != nil {
		return err
	}
	// The benchmark harness's generator, so demo, bench and the Docker
	// sample all read the same table.
	if _, err := conn.Exec(ctx, fmt.Sprintf(pgbench.LineitemDDL, id)); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(pgbench.LineitemInsert, id), n); err != nil {
		return fmt.Errorf("generating %s: %w", table, err)
	}
	_, err := conn.Exec(ctx, "ANALYZE "+id)
	return err
}
