package cprog_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/volleyhq/volley/async/asynctest"
	"github.com/volleyhq/volley/integration/pgtest"
)

// build holds what TestMain built once for every test: libvolley.so and the
// C programs, in a temporary directory.
var build struct {
	once sync.Once
	dir  string
	err  error
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// programs builds libvolley.so with `go build -buildmode=c-shared` and the
// C programs against include/ with gcc; a missing compiler is a failure
// naming what to install.
func programs(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		if _, err := exec.LookPath("gcc"); err != nil {
			build.err = fmt.Errorf("gcc not found (install it: apt-get install gcc): %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "cprog")
		if err != nil {
			build.err = err
			return
		}
		build.dir = dir
		root := repoRoot()
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(dir, "libvolley.so"), "./async/cabi/lib")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("building libvolley.so: %v\n%s", err, out)
			return
		}
		cmd = exec.Command("go", "build", "-o", filepath.Join(dir, "gonative"), "./integration/cprog/gonative")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("building gonative: %v\n%s", err, out)
			return
		}
		for _, p := range []string{"consumer", "producer", "pgconsumer"} {
			cmd := exec.Command("gcc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Werror", "-pthread",
				"-I", filepath.Join(root, "include"), filepath.Join(root, "integration", "cprog", "testdata", p+".c"),
				"-L", dir, "-lvolley", "-Wl,-rpath,"+dir, "-o", filepath.Join(dir, p))
			if out, err := cmd.CombinedOutput(); err != nil {
				build.err = fmt.Errorf("gcc %s.c: %v\n%s", p, err, out)
				return
			}
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// runProgram runs a built C program with args and fails the test unless it
// exits 0 and prints "ok".
func runProgram(t testing.TB, prog string, args ...string) string {
	t.Helper()
	dir := programs(t)
	cmd := exec.CommandContext(t.Context(), filepath.Join(dir, prog), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil || !bytes.Contains(out.Bytes(), []byte("ok\n")) {
		t.Fatalf("%s %v: %v\n%s", prog, args, err, out.String())
	}
	return out.String()
}

// TestCConsumer runs the C consumer against Volley's producer
// (volley_produce_demo), one mode per rule group.
func TestCConsumer(t *testing.T) {
	for _, tc := range []struct{ mode, rules string }{
		{"basic", "O1 O2 O5 S1 S2 S6 N3 N5 T3 T7 D1 D3 D5 D6 E6"},
		{"reentrant", "S5 R2: request(1) from inside every callback, 5000 times"},
		{"cancel8", "X1 X3 X4 R3 A2 T1: cancel from 8 threads"},
		{"request0", "R4: request(0) -> on_error EINVAL"},
		{"request-1", "R4: request(-1) -> on_error EINVAL"},
		{"idle", "N2, no polling: idle producer < 1% of a core"},
		{"late", "A4 T1 T2: extraction and extract_data(NULL) after release"},
		{"refuse", "S4: release only after a refused schema"},
		{"devices", "volley_devices_json, volley_free, volley_last_error"},
		{"device", "T6 D1 D2 D3 D5: CUDA batches from Volley's device layer (simulated GPU)"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			out := runProgram(t, "consumer", tc.mode)
			t.Logf("%s (%s): %s", tc.mode, tc.rules, out)
		})
	}
}

var nsPerBatch = regexp.MustCompile(`ns_per_batch=([0-9.]+) cpu_ns_per_batch=([0-9.]+)`)

// perBatch is one measured run: wall-clock and CPU (all threads) time per
// batch, in nanoseconds.
type perBatch struct{ wall, cpu float64 }

func parsePerBatch(t testing.TB, out string) perBatch {
	t.Helper()
	m := nsPerBatch.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no ns_per_batch in output:\n%s", out)
	}
	wall, _ := strconv.ParseFloat(m[1], 64)
	cpu, _ := strconv.ParseFloat(m[2], 64)
	return perBatch{wall, cpu}
}

// cConsumerOverhead measures the per-batch cost that crossing the C ABI
// adds to a 1-row stream: a C consumer (extract inside on_next_task,
// release, request(1)) against its Go twin (gonative, a separate race-free
// process like the C program) on the same producer and source, each side
// the best of rounds runs. CPU time (all threads, getrusage) is compared:
// other processes' load disturbs it far less than wall time.
func cConsumerOverhead(tb testing.TB, n, rounds int) (c, g perBatch) {
	best := func(f func() perBatch) perBatch {
		b := f()
		for range rounds - 1 {
			r := f()
			b = perBatch{min(b.wall, r.wall), min(b.cpu, r.cpu)}
		}
		return b
	}
	c = best(func() perBatch { return parsePerBatch(tb, runProgram(tb, "consumer", "bench", strconv.Itoa(n))) })
	g = best(func() perBatch { return parsePerBatch(tb, runProgram(tb, "gonative", "demo", strconv.Itoa(n))) })
	tb.Logf("1-row batches, C consumer: %.0f ns/batch wall, %.0f ns/batch CPU; Go-native consumer: %.0f ns/batch wall, %.0f ns/batch CPU",
		c.wall, c.cpu, g.wall, g.cpu)
	return c, g
}

// TestCConsumerBench runs the C consumer's and the Go twin's bench modes
// once: both read every batch (the programs check the count and the data).
// The comparison itself is BenchmarkCABIOverhead.
func TestCConsumerBench(t *testing.T) {
	c, g := cConsumerOverhead(t, 20000, 1)
	if c.cpu <= 0 || g.cpu <= 0 {
		t.Fatalf("no per-batch figures: C %+v, Go %+v", c, g)
	}
}

// BenchmarkCABIOverhead reports the C ABI's per-batch overhead against the
// Go-native consumer (target: at most 3 µs of CPU per batch):
//
//	go test -run '^$' -bench CABIOverhead ./integration/cprog/
func BenchmarkCABIOverhead(b *testing.B) {
	for range b.N {
		c, g := cConsumerOverhead(b, 100000, 3)
		b.ReportMetric(c.cpu-g.cpu, "overhead-cpu-ns/batch")
		b.ReportMetric(c.cpu, "c-cpu-ns/batch")
		b.ReportMetric(g.cpu, "go-cpu-ns/batch")
	}
}

var pgOut = regexp.MustCompile(`rows=([0-9]+) batches=([0-9]+) ns=([0-9]+)`)

// pgSQL is the query both consumers read: 1M rows of three columns, in
// batches of 10,000 rows (pgconsumer.c and gonative set the bound).
const pgSQL = "SELECT g AS id, g::text AS name, g * 1.5 AS x FROM generate_series(1, 1000000) g"

// pgConsumers reads pgSQL with the C consumer of a Volley PostgreSQL query
// (volley_open, volley_query, volley_query_wait) and with the Go-native
// consumer, rounds times each, interleaved, runs runs per round on one DB
// handle per side, and returns each side's fastest time. Both must read
// every row.
func pgConsumers(tb testing.TB, dsn string, rounds int, runs string) (cBest, goBest time.Duration) {
	var cRows, goRows int64
	for range rounds {
		out := runProgram(tb, "pgconsumer", dsn, pgSQL, runs)
		m := pgOut.FindStringSubmatch(out)
		if m == nil {
			tb.Fatalf("no rows= in output:\n%s", out)
		}
		cRows, _ = strconv.ParseInt(m[1], 10, 64)
		ns, _ := strconv.ParseInt(m[3], 10, 64)
		if d := time.Duration(ns); cBest == 0 || d < cBest {
			cBest = d
		}
		out = runProgram(tb, "gonative", "pg", dsn, pgSQL, runs)
		if m = pgOut.FindStringSubmatch(out); m == nil {
			tb.Fatalf("no rows= in output:\n%s", out)
		}
		goRows, _ = strconv.ParseInt(m[1], 10, 64)
		ns, _ = strconv.ParseInt(m[3], 10, 64)
		if d := time.Duration(ns); goBest == 0 || d < goBest {
			goBest = d
		}
	}
	if cRows != 1000000 || goRows != 1000000 {
		tb.Fatalf("rows: C %d, Go %d; want 1000000", cRows, goRows)
	}
	tb.Logf("1M rows from PostgreSQL: C consumer %v (%.0f rows/s), Go-native %v (%.0f rows/s): %.3fx Go-native throughput",
		cBest, 1e6/cBest.Seconds(), goBest, 1e6/goBest.Seconds(), float64(goBest)/float64(cBest))
	return cBest, goBest
}

// TestCConsumerPostgres: a C consumer of a Volley PostgreSQL query reads
// all of it (and pgconsumer.c checks that a failing query reaches C as
// on_error + release). Throughput is BenchmarkCConsumerPostgres's.
func TestCConsumerPostgres(t *testing.T) {
	pgConsumers(t, pgtest.New(t).DSN(), 1, "1")
}

// BenchmarkCConsumerPostgres reports the C consumer's throughput as a
// fraction of the Go-native consumer's on the same query (target >= 0.95):
//
//	go test -run '^$' -bench CConsumerPostgres ./integration/cprog/
func BenchmarkCConsumerPostgres(b *testing.B) {
	dsn := pgtest.New(b).DSN()
	for range b.N {
		c, g := pgConsumers(b, dsn, 5, "3")
		b.ReportMetric(float64(g)/float64(c), "x-go-native")
	}
}

// cRuleCoverage says where each rule only C can observe
// (asynctest.CRuleIDs) is checked.
var cRuleCoverage = map[string]string{
	"O1":  "consumer.c and producer.c allocate and fill their handler / producer structs",
	"O3":  "consumer.c late (extraction after release), TestInteropArrowGoConsumer (requests after release)",
	"O4":  "consumer.c / producer.c keep their own private_data; the bridge's is a handle it alone reads",
	"O5":  "consumer.c fills the handler before volley_produce_demo",
	"S2":  "consumer.c releases the schema and checks release = NULL; producer.c checks the consumer did",
	"S3":  "consumer.c refuse (EINVAL returned), producer.c cuda-refused (ENOTSUP from Volley's on_schema)",
	"N4":  "consumer.c late and cancel8 copy tasks by value and extract the copies",
	"N5":  "consumer.c reads each task's binary metadata only during the call",
	"E3":  "producer.c error (35 bytes of error metadata with zero bytes reach Go), TestErrorPaths",
	"E4":  "consumer.c request0/request-1 (EINVAL), producer.c cuda-refused (ENOTSUP), TestErrorPaths",
	"T2":  "consumer.c late/cancel8 extract_data(NULL); producer.c counts extract+discard per task",
	"T3":  "consumer.c releases every extracted array through out->array.release",
	"D1":  "consumer.c reads the struct, buffers and children arrays on the host",
	"D2":  "consumer.c device (simulated cuda:0 batches carry a sync_event), TestDeviceBatchRoundTrip",
	"D3":  "consumer.c checks reserved is zero",
	"D4":  "not checked here: needs a GPU (no CUDA on this machine); sync_event is passed through unchanged",
	"D5":  "consumer.c (device_id -1 for CPU), TestDeviceBatchRoundTrip (cuda:0)",
	"D6":  "consumer.c moves arrays and a child out, releases parent before child",
	"ABI": "async/cabi TestLayout",
}

func TestCRulesCovered(t *testing.T) {
	for _, id := range asynctest.CRuleIDs() {
		if cRuleCoverage[id] == "" {
			t.Errorf("C-only rule %s (%s) is not covered by a C test", id, asynctest.CRuleReason(id))
		}
	}
}
