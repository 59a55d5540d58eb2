package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/jackc/pgx/v5"
)

// sampleRows is the size of the sample result; with --batch-rows 700 it
// spans several batches.
const sampleRows = 5000

// The sample result, in each database's SQL: id i, half i/2, label NULL
// when i%3 == 0 else "v<i>", even i%2 == 0.
const (
	duckdbSample = `SELECT range::BIGINT AS id, range::DOUBLE / 2 AS half,
		CASE WHEN range % 3 = 0 THEN NULL ELSE 'v' || range::VARCHAR END AS label,
		range % 2 = 0 AS even FROM range(?) ORDER BY id`
	pgSample = `SELECT i AS id, i::float8 / 2 AS half,
		CASE WHEN i % 3 = 0 THEN NULL ELSE 'v' || i END AS label,
		i % 2 = 0 AS even FROM generate_series(0::int8, $1::int8 - 1) AS i`
)

// checkSample checks records against the sample result.
func checkSample(t *testing.T, recs []arrow.RecordBatch) {
	t.Helper()
	i := 0
	for _, rec := range recs {
		s := rec.Schema()
		col := func(name string) arrow.Array {
			idx := s.FieldIndices(name)
			if len(idx) != 1 {
				t.Fatalf("result has no column %q: %s", name, s)
			}
			return rec.Column(idx[0])
		}
		ids, ok1 := col("id").(*array.Int64)
		halves, ok2 := col("half").(*array.Float64)
		evens, ok4 := col("even").(*array.Boolean)
		labels := col("label")
		if !ok1 || !ok2 || !ok4 {
			t.Fatalf("unexpected column types: %s", s)
		}
		for r := 0; r < int(rec.NumRows()); r, i = r+1, i+1 {
			if ids.Value(r) != int64(i) || halves.Value(r) != float64(i)/2 || evens.Value(r) != (i%2 == 0) {
				t.Fatalf("row %d: id %d half %v even %v", i, ids.Value(r), halves.Value(r), evens.Value(r))
			}
			if i%3 == 0 {
				if !labels.IsNull(r) {
					t.Fatalf("row %d: label %q, want NULL", i, labels.ValueStr(r))
				}
				continue
			}
			if got := cellText(labels, r); got != "v"+strconv.Itoa(i) {
				t.Fatalf("row %d: label %q", i, got)
			}
		}
	}
	if i != sampleRows {
		t.Fatalf("read %d rows, want %d", i, sampleRows)
	}
}

// readIPCFile reads an Arrow IPC file with a checked allocator.
func readIPCFile(t *testing.T, path string) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := ipc.NewFileReader(f, ipc.WithAllocator(mem))
	if err != nil {
		t.Fatalf("%s is not an Arrow IPC file: %v", path, err)
	}
	defer r.Close()
	var recs []arrow.RecordBatch
	for i := 0; i < r.NumRecords(); i++ {
		rec, err := r.RecordBatch(i)
		if err != nil {
			t.Fatal(err)
		}
		rec.Retain()
		recs = append(recs, rec)
	}
	if len(recs) < 2 {
		t.Errorf("%s holds %d record batches; --batch-rows 700 should make several", path, len(recs))
	}
	checkSample(t, recs)
	for _, r := range recs {
		r.Release()
	}
}

// readIPCStream reads an Arrow IPC stream with a checked allocator.
func readIPCStream(t *testing.T, rd io.Reader) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r, err := ipc.NewReader(rd, ipc.WithAllocator(mem))
	if err != nil {
		t.Fatalf("not an Arrow IPC stream: %v", err)
	}
	defer r.Release()
	var recs []arrow.RecordBatch
	for r.Next() {
		rec := r.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	checkSample(t, recs)
	for _, r := range recs {
		r.Release()
	}
}

// readParquet reads a Parquet file with a checked allocator.
func readParquet(t *testing.T, path string) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatalf("%s is not a Parquet file: %v", path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1024}, mem)
	if err != nil {
		t.Fatal(err)
	}
	rr, err := fr.GetRecordReader(t.Context(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	var recs []arrow.RecordBatch
	for rr.Next() {
		rec := rr.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	if err := rr.Err(); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	checkSample(t, recs)
	for _, r := range recs {
		r.Release()
	}
}

// TestQueryOutputs writes the sample from DuckDB and from PostgreSQL in
// every format and reads each file back with arrow-go.
func TestQueryOutputs(t *testing.T) {
	sources := []struct {
		name string
		args []string
	}{
		{"duckdb", []string{duckdbSample}},
		{"postgres", []string{"--driver", "postgres", "--dsn", pgServer.DSN(), pgSample}},
	}
	for _, src := range sources {
		for _, ext := range []string{".arrow", ".arrows", ".parquet"} {
			t.Run(src.name+ext, func(t *testing.T) {
				dir := t.TempDir()
				out := filepath.Join(dir, "result"+ext)
				args := append([]string{"query", "--batch-rows", "700", "--param", "int:" + strconv.Itoa(sampleRows),
					"--out", out}, src.args...)
				r := mustRun(t, runOpts{dir: dir}, args...)
				if names := dirEntries(t, dir); len(names) != 1 || names[0] != "result"+ext {
					t.Errorf("the output directory holds %q, want only result%s", names, ext)
				}
				if !strings.Contains(r.stderr, "5,000 rows") || !strings.Contains(r.stderr, "placement: cpu") {
					t.Errorf("summary missing rows or placement:\n%s", r.stderr)
				}
				switch ext {
				case ".arrow":
					readIPCFile(t, out)
				case ".arrows":
					f, err := os.Open(out)
					if err != nil {
						t.Fatal(err)
					}
					defer f.Close()
					readIPCStream(t, f)
				case ".parquet":
					readParquet(t, out)
				}
			})
		}
		t.Run(src.name+"-stdout", func(t *testing.T) {
			args := append([]string{"query", "--quiet", "--stats", "json", "--param", "int:" + strconv.Itoa(sampleRows),
				"--out", "-"}, src.args...)
			r := mustRun(t, runOpts{}, args...)
			readIPCStream(t, bytes.NewReader([]byte(r.stdout)))
			var s summary
			if err := json.Unmarshal([]byte(r.stderr), &s); err != nil {
				t.Fatalf("--stats json with --out - should print JSON on stderr: %v\n%s", err, r.stderr)
			}
			if s.Rows != sampleRows || s.Device != "cpu" || s.Reason == "" || s.Batches < 1 || s.Bytes <= 0 {
				t.Errorf("summary %+v", s)
			}
		})
	}
}

// TestQueryPreview checks the table preview: aligned columns, NULL,
// truncated wide cells, the limit footer.
func TestQueryPreview(t *testing.T) {
	wide := strings.Repeat("x", 100)
	// The parameters bind in order: the first ? is the first --param.
	r := mustRun(t, runOpts{}, "query", "--limit", "3", "--param", wide, "--param", "int:10",
		"SELECT range AS n, CASE WHEN range = 1 THEN NULL ELSE ? END AS wide FROM range(?) ORDER BY n")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	want := []string{
		"n  wide",
		"-  " + strings.Repeat("-", maxCell),
		"0  " + strings.Repeat("x", maxCell-1) + "…",
		"1  NULL",
		"2  " + strings.Repeat("x", maxCell-1) + "…",
		"(3 of 10 rows shown; --limit N shows more)",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("preview:\n%s\nwant:\n%s", r.stdout, strings.Join(want, "\n"))
	}
}

// TestQueryParamsPostgres binds typed parameters in PostgreSQL: each
// comes back with the value and type it was given.
func TestQueryParamsPostgres(t *testing.T) {
	r := mustRun(t, runOpts{}, "query", "--driver", "postgres", "--dsn", pgServer.DSN(),
		"--param", "int:41", "--param", "float:1.5", "--param", "bool:true", "--param", "null",
		"--param", "it's; DROP TABLE x", "--param", "str:int:7",
		"SELECT $1::int8 + 1 AS a, $2::float8 * 2 AS b, NOT $3::bool AS c, $4::text IS NULL AS d, $5::text AS e, $6::text AS f")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("preview:\n%s", r.stdout)
	}
	fields := strings.Fields(lines[2])
	want := []string{"42", "3", "false", "true", "it's;", "DROP", "TABLE", "x", "int:7"}
	if strings.Join(fields, " ") != strings.Join(want, " ") {
		t.Errorf("row %q, want %q", fields, want)
	}
}

// TestQuerySimulatedGPU streams to a (simulated) GPU: no preview, since
// device memory is not host readable, and --out is refused up front.
func TestQuerySimulatedGPU(t *testing.T) {
	gpu := runOpts{env: []string{envSimulatedGPUs + "=1"}}
	r := mustRun(t, gpu, "query", "--device", "cuda:0", "--stats", "json", "SELECT * FROM range(100000)")
	var s summary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("JSON summary: %v\n%s", err, r.stdout)
	}
	if s.Device != "cuda:0" || s.Rows != 100000 || !strings.Contains(s.Reason, "cuda:0 was asked for") {
		t.Errorf("summary %+v", s)
	}
	if !strings.Contains(r.stderr, "not host readable") {
		t.Errorf("stderr should say the batches are not host readable:\n%s", r.stderr)
	}

	dir := t.TempDir()
	gpu.dir = dir
	r = volley(t, gpu, "query", "--device", "cuda:0", "--out", "x.arrow", "SELECT 1")
	if r.code != exitUsage || !strings.Contains(r.stderr, "host-readable") {
		t.Errorf("--device cuda:0 --out: exit %d, stderr %q", r.code, r.stderr)
	}
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("left files behind: %q", names)
	}

	// Pinned host memory is host readable: the preview works.
	r = mustRun(t, runOpts{env: gpu.env}, "query", "--device", "cuda_host:0", "--param", "int:3", "SELECT range AS n FROM range(?)")
	if !strings.Contains(r.stdout, "2\n") || !strings.Contains(r.stderr, "placement: cuda_host:0") {
		t.Errorf("cuda_host preview:\n%s\n%s", r.stdout, r.stderr)
	}
}

// TestQueryProgressLines checks the plain progress lines of a non-terminal
// stderr on a query that runs for more than a second.
func TestQueryProgressLines(t *testing.T) {
	r := mustRun(t, runOpts{}, "query", "--driver", "postgres", "--dsn", pgServer.DSN(), "--batch-rows", "1",
		"--window", "1", "SELECT i, pg_sleep(0.4) IS NULL AS slept FROM generate_series(1, 4) AS i")
	var progress int
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(l, "volley: progress: ") {
			progress++
			if !strings.Contains(l, "rows") || !strings.Contains(l, "on cpu") {
				t.Errorf("progress line %q lacks rows or device", l)
			}
		}
	}
	if progress < 1 || progress > 2 {
		t.Errorf("%d progress lines for a query of about 1.6s, want 1 or 2 (one a second):\n%s", progress, r.stderr)
	}
	if !strings.Contains(r.stdout, "\n4  false\n") {
		t.Errorf("preview:\n%s", r.stdout)
	}
}

// readCells reads an .arrow or .parquet file into rows of cell texts, with
// a checked allocator.
func readCells(t *testing.T, path string) [][]string {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var rr array.RecordReader
	if strings.HasSuffix(path, ".parquet") {
		pf, err := file.OpenParquetFile(path, false)
		if err != nil {
			t.Fatal(err)
		}
		defer pf.Close()
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 100}, mem)
		if err != nil {
			t.Fatal(err)
		}
		if rr, err = fr.GetRecordReader(t.Context(), nil, nil); err != nil {
			t.Fatal(err)
		}
	} else {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fr, err := ipc.NewFileReader(f, ipc.WithAllocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		defer fr.Close()
		var recs []arrow.RecordBatch
		for i := 0; i < fr.NumRecords(); i++ {
			rec, err := fr.RecordBatch(i) // valid until the next call: retain it
			if err != nil {
				t.Fatal(err)
			}
			rec.Retain()
			defer rec.Release()
			recs = append(recs, rec)
		}
		if rr, err = array.NewRecordReader(fr.Schema(), recs); err != nil {
			t.Fatal(err)
		}
	}
	defer rr.Release()
	var rows [][]string
	for rr.Next() {
		rec := rr.RecordBatch()
		for r := 0; r < int(rec.NumRows()); r++ {
			row := make([]string, rec.NumCols())
			for c := range row {
				row[c] = rec.ColumnName(c) + "=" + rec.Schema().Field(c).Type.String() + ":" + cellText(rec.Column(c), r)
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// TestQueryTypesRoundTrip writes decimals, dates, timestamps, fixed chars
// and nulls from both databases as Arrow and Parquet: the Parquet file
// reads back with the same types and values as the Arrow file, which holds
// what the database returned.
func TestQueryTypesRoundTrip(t *testing.T) {
	conn, err := pgx.Connect(t.Context(), pgServer.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := createLineitem(t.Context(), conn, "types_lineitem", 1000); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), "DROP TABLE types_lineitem")
	sources := []struct {
		name  string
		args  []string
		first string // a cell of the first row, as the database returns it
	}{
		{"duckdb", []string{`SELECT range AS i, (range / 4)::DECIMAL(15,2) AS d, DATE '1992-01-02' + range::INTEGER AS day,
			TIMESTAMP '2024-03-01 12:34:56.789' + INTERVAL (range) SECOND AS ts,
			CASE WHEN range % 5 = 0 THEN NULL ELSE range::VARCHAR END AS s FROM range(1000)`},
			"d=decimal(15, 2):0.00"},
		{"postgres", []string{"--dsn", pgServer.DSN(), "SELECT * FROM types_lineitem ORDER BY l_orderkey, l_linenumber"},
			"l_quantity=decimal(15, 2):1.00"},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, out := range []string{"r.arrow", "r.parquet"} {
				mustRun(t, runOpts{dir: dir}, append([]string{"query", "--quiet", "--batch-rows", "300", "--out", out}, src.args...)...)
			}
			want := readCells(t, filepath.Join(dir, "r.arrow"))
			got := readCells(t, filepath.Join(dir, "r.parquet"))
			if len(want) != 1000 || len(got) != 1000 {
				t.Fatalf("rows: arrow %d, parquet %d, want 1000", len(want), len(got))
			}
			if !slices.Contains(want[0], src.first) {
				t.Errorf("first row %q lacks %q", want[0], src.first)
			}
			for i := range want {
				if !slices.Equal(want[i], got[i]) {
					t.Fatalf("row %d differs:\narrow   %q\nparquet %q", i, want[i], got[i])
				}
			}
		})
	}
}

// TestQueryDuckDBFile uses --driver duckdb with a database file: what one
// query stores, the next one reads.
func TestQueryDuckDBFile(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, runOpts{dir: dir}, "query", "--quiet", "--driver", "duckdb", "--dsn", "t.duckdb",
		"CREATE TABLE t AS SELECT range AS x FROM range(7)")
	r := mustRun(t, runOpts{dir: dir}, "query", "--driver", "duckdb", "--dsn", "t.duckdb", "--stats", "json", "--limit", "0",
		"SELECT sum(x) AS s FROM t")
	var s summary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || s.Rows != 1 || s.Driver != "adbc" {
		t.Fatalf("summary %+v (%v)", s, err)
	}
	r = mustRun(t, runOpts{dir: dir}, "query", "--driver", "duckdb", "--dsn", "t.duckdb", "SELECT sum(x) AS s FROM t")
	if !strings.Contains(r.stdout, "\n21\n") {
		t.Errorf("preview:\n%s", r.stdout)
	}
}
