package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/volleyhq/volley/integration/duckdbtest"
	"github.com/volleyhq/volley/integration/pgbench"
	"go.yaml.in/yaml/v3"
)

// TestDemoDuckDB runs the embedded demo at SF 0.01: dbgen's lineitem has
// 60,175 rows, all streamed, with the placement reported.
func TestDemoDuckDB(t *testing.T) {
	r := mustRun(t, runOpts{}, "demo", "--sf", "0.01")
	for _, want := range []string{"generating TPC-H SF0.01", "streamed 60,175 rows", "batches landed on cpu (auto: cpu;"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stderr)
		}
	}
	r = mustRun(t, runOpts{env: []string{envSimulatedGPUs + "=1"}}, "demo", "--sf", "0.01", "--quiet", "--stats", "json",
		"--device", "cuda:0")
	var s summary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("JSON summary: %v\n%s", err, r.stdout)
	}
	if s.Rows != 60175 || s.Device != "cuda:0" || s.Bytes <= 0 || s.Batches < 1 {
		t.Errorf("summary %+v", s)
	}
	if r.stderr != "" {
		t.Errorf("--quiet printed %q", r.stderr)
	}
}

// TestDemoPostgres runs the PostgreSQL demo against its own ephemeral
// cluster and against the test's server with --dsn.
func TestDemoPostgres(t *testing.T) {
	r := mustRun(t, runOpts{}, "demo", "--postgres", "--sf", "0.01", "--stats", "json")
	var s summary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("JSON summary: %v\n%s", err, r.stdout)
	}
	if s.Rows != 60000 || s.Device != "cpu" || s.Driver != "postgres" || s.Reason == "" {
		t.Errorf("summary %+v", s)
	}
	if !strings.Contains(r.stderr, "ephemeral PostgreSQL cluster") {
		t.Errorf("stderr:\n%s", r.stderr)
	}

	// With --dsn: lineitem is made once, then streamed as it is. Start from
	// no table, so that the test can run again (-count) on the same server.
	dropLineitem(t)
	t.Cleanup(func() { dropLineitem(t) })
	r = mustRun(t, runOpts{}, "demo", "--postgres", "--dsn", pgServer.DSN(), "--sf", "0.001")
	if !strings.Contains(r.stderr, "generating 6,000 lineitem rows") || !strings.Contains(r.stderr, "streamed 6,000 rows") {
		t.Errorf("first run:\n%s", r.stderr)
	}
	r = mustRun(t, runOpts{}, "demo", "--postgres", "--dsn", pgServer.DSN(), "--sf", "0.5")
	if !strings.Contains(r.stderr, "existing table lineitem") || !strings.Contains(r.stderr, "streamed 6,000 rows") {
		t.Errorf("second run:\n%s", r.stderr)
	}
}

// TestDevices lists the inventory: the CPU always, and simulated GPUs
// when asked for.
func TestDevices(t *testing.T) {
	r := mustRun(t, runOpts{}, "devices")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "DEVICE") || !strings.HasPrefix(lines[1], "cpu ") ||
		!strings.Contains(lines[1], "usable") {
		t.Errorf("devices:\n%s", r.stdout)
	}
	r = mustRun(t, runOpts{env: []string{envSimulatedGPUs + "=2"}}, "devices", "--json")
	var devs []struct {
		Device    string `json:"device"`
		Usable    bool   `json:"usable"`
		FreeBytes int64  `json:"free_bytes"`
		Simulated bool   `json:"simulated"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &devs); err != nil {
		t.Fatalf("devices --json: %v\n%s", err, r.stdout)
	}
	var names []string
	for _, d := range devs {
		names = append(names, d.Device)
		if !d.Usable || d.FreeBytes <= 0 || (d.Device != "cpu" && !d.Simulated) {
			t.Errorf("device %+v", d)
		}
	}
	if got := strings.Join(names, " "); got != "cpu cuda_host:0 cuda:0 cuda_host:1 cuda:1" {
		t.Errorf("devices %s", got)
	}
	r = mustRun(t, runOpts{env: []string{envSimulatedGPUs + "=0"}}, "devices")
	if strings.Count(strings.TrimRight(r.stdout, "\n"), "\n") != 1 {
		t.Errorf("with no GPUs only the CPU should be listed:\n%s", r.stdout)
	}
}

// TestBench runs the comparison as a user would, through the pgbench
// harness: on a small table over the ephemeral cluster's unix socket (JSON),
// and against the test's server with --dsn (the text table). Every client
// reads every row in its own child process, with its own CPU and (but for
// psql, whose kernel figure would include this process's) peak RSS.
func TestBench(t *testing.T) {
	const rows = 20000
	r := mustRun(t, runOpts{}, "bench", "--rows", fmt.Sprint(rows), "--runs", "3", "--transport", "unix",
		"--batch-bytes", "1MiB", "--stats", "json")
	var rep pgbench.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("bench --stats json: %v\n%s", err, r.stdout)
	}
	var modes []string
	for _, res := range rep.Results {
		modes = append(modes, string(res.Mode))
		if res.Err != "" || res.Wall <= 0 || res.Runs != 3 || res.Query != "select-*" {
			t.Errorf("%s: %+v", res.Mode, res)
		}
		if res.Mode == pgbench.ServerFloor {
			continue
		}
		if res.Transport != "unix" || res.CPU() <= 0 {
			t.Errorf("%s: %+v", res.Mode, res)
		}
		if res.Mode != pgbench.Psql && (res.PeakRSS <= 0 || res.PeakRSS > 1<<30) {
			t.Errorf("%s: peak RSS %d", res.Mode, res.PeakRSS)
		}
		if (res.Mode == pgbench.PgxScan || res.Mode == pgbench.Volley) && res.Rows != rows {
			t.Errorf("%s read %d rows", res.Mode, res.Rows)
		}
		if res.Mode == pgbench.PgxRaw && res.Bytes < rows*16 {
			t.Errorf("pgx-raw: %d COPY bytes for %d rows", res.Bytes, rows)
		}
	}
	if got := strings.Join(modes, ","); got != "server-floor,psql,pgx-raw,pgx-scan,volley" || rep.Rows != rows || rep.Runs != 3 {
		t.Errorf("modes %s, %d rows, %d runs", got, rep.Rows, rep.Runs)
	}
	if !strings.Contains(r.stderr, "volley bench: starting an ephemeral PostgreSQL cluster") ||
		!strings.Contains(r.stderr, "volley bench: select-*  unix   volley       run 3/3") {
		t.Errorf("progress:\n%s", r.stderr)
	}

	// The text form: a header, a row per mode with Volley's ratios, the
	// footer; the table is dropped afterwards.
	r = mustRun(t, runOpts{}, "bench", "--rows", "1000", "--runs", "1", "--dsn", pgServer.DSN())
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 7 || !strings.Contains(lines[0], "volley/psql wall") || !strings.HasSuffix(lines[6], "rows in table: 1000") {
		t.Fatalf("bench table:\n%s", r.stdout)
	}
	for i, mode := range []string{"server-floor", "psql", "pgx-raw", "pgx-scan", "volley"} {
		f := strings.Fields(lines[i+1])
		if len(f) < 3 || f[2] != mode || (mode != "volley" && strings.Contains(lines[i+1], "x ")) {
			t.Errorf("row %d: %q", i+1, lines[i+1])
		}
	}
	if f := strings.Fields(lines[5]); len(f) != 13 || f[3] != "1000" || !strings.HasSuffix(f[12], "x") {
		t.Errorf("volley row: %q", lines[5])
	}
	conn, err := pgx.Connect(context.Background(), pgServer.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var gone bool
	if err := conn.QueryRow(context.Background(), "SELECT to_regclass($1) IS NULL", benchTable).Scan(&gone); err != nil || !gone {
		t.Errorf("%s not dropped (%v)", benchTable, err)
	}

	// An ADBC driver that is not there is a connection error, before any work.
	r = volley(t, runOpts{}, "bench", "--adbc-driver", "/nonexistent/libadbc.so")
	if r.code != exitConnect || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("missing --adbc-driver: exit %d: %s", r.code, r.stderr)
	}
	// One that cannot read the table (DuckDB has no volley_bench_lineitem):
	// the table still has every row, the adbc one with its error, and the
	// exit code says a measurement failed.
	r = volley(t, runOpts{}, "bench", "--rows", "1000", "--runs", "1", "--dsn", pgServer.DSN(),
		"--adbc-driver", duckdbLib, "--adbc-entrypoint", duckdbtest.EntryPoint)
	lines = strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if r.code != exitError || len(lines) != 8 || !strings.Contains(lines[0], "volley/adbc wall") ||
		!strings.Contains(lines[6], "adbc") || !strings.Contains(lines[6], "error:") ||
		!strings.Contains(r.stderr, "1 of 6 measurements failed; adbc: ") {
		t.Errorf("bench with a failing ADBC driver: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// Pointed at a DuckDB file that holds the table (--adbc-option, no DSN
	// option), the ADBC measurement succeeds and reads every row.
	file := filepath.Join(t.TempDir(), "bench.duckdb")
	duckdbtest.Exec(t, file, `CREATE TABLE `+benchTable+` AS SELECT i::BIGINT AS l_orderkey, (i % 50)::DECIMAL(15,2) AS l_quantity
		FROM range(1000) t(i)`)
	r = volley(t, runOpts{}, "bench", "--rows", "1000", "--runs", "1", "--dsn", pgServer.DSN(), "--stats", "json",
		"--adbc-driver", duckdbLib, "--adbc-entrypoint", duckdbtest.EntryPoint, "--adbc-uri-option", "-", "--adbc-option", "path="+file)
	var jrep pgbench.Report
	if err := json.Unmarshal([]byte(r.stdout), &jrep); r.code != 0 || err != nil {
		t.Fatalf("bench with --adbc-option: exit %d, %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
	}
	var adbcRows int64 = -1
	for _, res := range jrep.Results {
		if res.Mode == pgbench.ADBC {
			adbcRows = res.Rows
			if res.Err != "" {
				t.Errorf("adbc: %s", res.Err)
			}
		}
	}
	if adbcRows != 1000 {
		t.Errorf("adbc read %d rows, want 1000:\n%s", adbcRows, r.stdout)
	}
	for _, bad := range [][]string{{"--adbc-option", "noequals", "--adbc-driver", duckdbLib}, {"--adbc-option", "a=b"},
		{"--adbc-uri-option", ""}} {
		if r := volley(t, runOpts{}, append([]string{"bench"}, bad...)...); r.code != exitUsage {
			t.Errorf("bench %q: exit %d, want %d: %s", bad, r.code, exitUsage, r.stderr)
		}
	}
}

// TestDockerCompose checks docker-compose.yml without a Docker engine: it
// parses, runs PostgreSQL 16 on 5432 with the init directory mounted, and
// the init SQL builds the same lineitem as the demo's generator, which
// volley then reads.
func TestDockerCompose(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Ports       []string          `yaml:"ports"`
			Volumes     []string          `yaml:"volumes"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	pg, ok := compose.Services["postgres"]
	if !ok || pg.Image != "postgres:16" || !slices.Contains(pg.Ports, "127.0.0.1:5432:5432") ||
		!slices.Contains(pg.Volumes, "./docker/init:/docker-entrypoint-initdb.d:ro") {
		t.Fatalf("docker-compose.yml postgres service: %+v", pg)
	}
	dsn := fmt.Sprintf("postgres://%s:%s@localhost:5432/%s", pg.Environment["POSTGRES_USER"],
		pg.Environment["POSTGRES_PASSWORD"], pg.Environment["POSTGRES_DB"])
	if !strings.Contains(string(raw), "volley query --dsn "+dsn) {
		t.Errorf("the comment's volley command does not use the service's DSN %s", dsn)
	}

	initSQL, err := os.ReadFile("../../docker/init/01-lineitem.sql")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, pgServer.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, stmt := range []string{"DROP SCHEMA IF EXISTS compose CASCADE", "CREATE SCHEMA compose", "SET search_path = compose"} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	defer conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS compose CASCADE")
	if _, err := conn.Exec(ctx, string(initSQL)); err != nil { // simple protocol: many statements
		t.Fatalf("docker/init/01-lineitem.sql: %v", err)
	}
	if err := createLineitem(ctx, conn, "reference", 60000); err != nil {
		t.Fatal(err)
	}
	var diff int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM ((TABLE lineitem EXCEPT ALL TABLE reference)
		UNION ALL (TABLE reference EXCEPT ALL TABLE lineitem)) d`).Scan(&diff)
	if err != nil || diff != 0 {
		t.Fatalf("the init SQL's lineitem differs from the demo's in %d rows (%v)", diff, err)
	}
	r := mustRun(t, runOpts{}, "query", "--dsn", pgServer.DSN(), "--stats", "json", "--limit", "0",
		"SELECT * FROM compose.lineitem")
	var s summary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || s.Rows != 60000 {
		t.Errorf("volley read %d rows (%v)", s.Rows, err)
	}
}

// dropLineitem drops the demo's table from the test's server.
func dropLineitem(t *testing.T) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), pgServer.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "DROP TABLE IF EXISTS lineitem"); err != nil {
		t.Fatal(err)
	}
}
