package pgbench_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/volleyhq/volley/integration/duckdbtest"
	"github.com/volleyhq/volley/integration/pgbench"
	"github.com/volleyhq/volley/integration/pgtest"
)

func TestMain(m *testing.M) {
	pgbench.RunChildIfRequested()
	pgtest.Main(m)
}

func TestRun(t *testing.T) {
	srv := pgtest.Shared(t)
	var log bytes.Buffer
	// VOLLEY_PGBENCH_ROWS runs the comparison at another size (6001215 is
	// SF1): go test -run TestRun -v ./integration/pgbench/
	rows := int64(20000)
	if v := os.Getenv("VOLLEY_PGBENCH_ROWS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("VOLLEY_PGBENCH_ROWS=%q: %v", v, err)
		}
		rows = n
	}
	batch := int64(1 << 20)
	if rows > 1e6 {
		batch = 0 // the default, 16 MiB
	}
	var modes []pgbench.Mode // VOLLEY_PGBENCH_MODES=volley,psql limits the modes
	for _, m := range strings.Split(os.Getenv("VOLLEY_PGBENCH_MODES"), ",") {
		if m != "" {
			modes = append(modes, pgbench.Mode(m))
		}
	}
	rep, err := pgbench.Run(context.Background(), pgbench.Config{
		Modes: modes,
		DSN:   srv.DSN(), UnixDSN: srv.UnixDSN(), Rows: rows, Table: "lineitem_" + strconv.FormatInt(rows, 10), Log: &log,
		BatchBytes: batch,
	})
	if err != nil {
		t.Fatal(err)
	}
	// 2 queries × (server floor + 4 client modes × 2 transports)
	if len(modes) == 0 && len(rep.Results) != 2*(1+4*2) {
		t.Fatalf("%d results:\n%s", len(rep.Results), log.String())
	}
	for _, r := range rep.Results {
		if r.Err != "" {
			t.Errorf("%s %s %s: %s", r.Query, r.Transport, r.Mode, r.Err)
		}
		if r.Runs != 1 {
			t.Errorf("%s %s %s: %d runs, want 1", r.Query, r.Transport, r.Mode, r.Runs)
		}
		if r.Wall <= 0 {
			t.Errorf("%s %s %s: no wall time", r.Query, r.Transport, r.Mode)
		}
		switch r.Mode {
		case pgbench.Volley, pgbench.PgxScan:
			if r.Rows != rows {
				t.Errorf("%s %s %s: %d rows, want %d", r.Query, r.Transport, r.Mode, r.Rows, rows)
			}
			if r.CPU() <= 0 || r.PeakRSS <= 0 {
				t.Errorf("%s %s %s: no CPU/RSS measured", r.Query, r.Transport, r.Mode)
			}
		case pgbench.PgxRaw:
			if r.Bytes < rows*16 {
				t.Errorf("%s: %d COPY bytes for %d rows", r.Query, r.Bytes, rows)
			}
		}
	}
	var out bytes.Buffer
	if err := rep.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	wants := []string{"select-*", "project-4", "volley/psql wall", "volley/raw cpu", "volley/scan cpu", "unix", "server-floor",
		"rows in table: " + strconv.FormatInt(rows, 10)}
	if len(modes) > 0 {
		wants = wants[:2]
	} else if strings.Contains(out.String(), "adbc") {
		t.Errorf("the table has ADBC columns without the ADBC mode:\n%s", out.String())
	}
	for _, want := range wants {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("\n%s", out.String())
}

// TestADBC measures the ADBC mode with the DuckDB ADBC C driver reading a
// DuckDB file that holds a table of the same name and row count (the
// PostgreSQL ADBC driver is not installed here), three runs each; the
// PostgreSQL table is dropped afterwards (Config.Drop).
func TestADBC(t *testing.T) {
	srv := pgtest.Shared(t)
	lib := duckdbtest.DriverPath(t)
	ctx := context.Background()
	const rows, table = 5000, "lineitem_adbc"
	file := filepath.Join(t.TempDir(), "bench.duckdb")
	duckdbtest.Exec(t, file, `CREATE TABLE `+table+` AS SELECT i::BIGINT AS l_orderkey, (i % 50)::DECIMAL(15,2) AS l_quantity,
		(i * 7)::DECIMAL(15,2) AS l_extendedprice, DATE '1992-01-02' + (i % 2526)::INT AS l_shipdate,
		md5(i::VARCHAR) AS l_comment FROM range(`+strconv.Itoa(rows)+`) t(i)`)

	cfg := pgbench.Config{
		DSN: srv.DSN(), Rows: rows, Table: table, Drop: true, Runs: 3,
		Modes:      []pgbench.Mode{pgbench.Volley, pgbench.ADBC},
		ADBCDriver: lib, ADBCEntryPoint: duckdbtest.EntryPoint,
		ADBCOptions: map[string]string{"path": file}, ADBCURIOption: "-",
	}
	rep, err := pgbench.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 4 || rep.Runs != 3 {
		t.Fatalf("%d results of %d runs, want 4 of 3: %+v", len(rep.Results), rep.Runs, rep.Results)
	}
	for _, r := range rep.Results {
		if r.Err != "" || r.Runs != 3 || r.Rows != rows || r.Bytes <= 0 || r.CPU() <= 0 || r.PeakRSS <= 0 || r.Transport != "tcp" {
			t.Errorf("%+v", r)
		}
	}
	var out bytes.Buffer
	if err := rep.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"volley/adbc wall", "volley/adbc cpu", "each figure the median of 3 runs"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "volley/psql") {
		t.Errorf("psql ratio without the psql mode:\n%s", out.String())
	}
	t.Logf("\n%s", out.String())

	c, err := pgconn.Connect(ctx, srv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	res := c.ExecParams(ctx, "SELECT to_regclass($1) IS NULL", [][]byte{[]byte(table)}, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "t" {
		t.Errorf("table %s not dropped: %v %q", table, res.Err, res.Rows)
	}

	// A wrong row count is the measurement's error, not a silent figure.
	cfg.Rows, cfg.Runs, cfg.Queries, cfg.Modes = rows+1, 1, pgbench.Queries[:1], []pgbench.Mode{pgbench.ADBC}
	rep, err = pgbench.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if f := rep.Failed(); len(f) != 1 || !strings.Contains(f[0].Err, "read 5000 rows, want 5001") {
		t.Errorf("failed %+v", f)
	}

	cfg.ADBCDriver = ""
	if _, err := pgbench.Run(ctx, cfg); !errors.Is(err, pgbench.ErrNoADBCDriver) {
		t.Errorf("ADBC mode without a driver: %v", err)
	}
}
