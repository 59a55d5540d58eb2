package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jackc/pgx/v5"
	"github.com/volleyhq/volley/async"
	"github.com/volleyhq/volley/driver"
)

// closedPort returns a TCP port on 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestBadInput runs the binary with bad input of each kind: one line on
// stderr, the documented exit code, no output file left behind, no secret
// echoed.
func TestBadInput(t *testing.T) {
	port := closedPort(t)
	secret := "s3cret-Pa55"
	cases := []struct {
		name string
		code int
		args []string
		want string // in the stderr line
	}{
		{"unknown flag", exitUsage, []string{"query", "--bogus", "--out", "x.arrow", "SELECT 1"}, "-bogus"},
		{"unknown command", exitUsage, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"no SQL", exitUsage, []string{"query", "--out", "x.arrow"}, "exactly one SQL argument"},
		{"invalid device", exitUsage, []string{"query", "--device", "cuda:x", "--out", "x.arrow", "SELECT 1"}, `"cuda:x"`},
		{"bad batch bytes", exitUsage, []string{"query", "--batch-bytes", "lots", "SELECT 1"}, "batch-bytes"},
		{"bad param", exitUsage, []string{"query", "--param", "int:forty", "SELECT ?"}, "not a 64-bit integer"},
		{"bad stats", exitUsage, []string{"query", "--stats", "xml", "SELECT 1"}, "--stats"},
		{"unknown format", exitUsage, []string{"query", "--out", "x.csv", "SELECT 1"}, `unknown format ".csv"`},
		{"bad sf", exitUsage, []string{"demo", "--sf", "-1"}, "--sf"},
		{"unknown driver", exitConnect, []string{"query", "--driver", "nosuch", "--dsn", "x", "--out", "x.arrow", "SELECT 1"},
			`unknown driver "nosuch"; known: adbc, postgres, postgresql`},
		{"unreachable server", exitConnect, []string{"query", "--driver", "postgres", "--dsn",
			fmt.Sprintf("postgres://app:%s@127.0.0.1:%d/db?sslmode=disable", secret, port), "--out", "x.arrow", "SELECT 1"},
			"connection refused"},
		{"missing ADBC library", exitConnect, []string{"query", "--driver", "adbc", "--dsn",
			"driver=/nonexistent/libnothing.so;password=" + secret, "--out", "x.parquet", "SELECT 1"}, "not found"},
		{"missing DuckDB driver", exitConnect, []string{"query", "--out", "x.arrow", "SELECT 1"}, "make duckdb"},
		{"bad SQL duckdb", exitError, []string{"query", "--out", "x.arrow", "SELEC oops"}, "syntax error"},
		{"bad SQL postgres", exitError, []string{"query", "--driver", "postgres", "--dsn", pgServer.DSN(),
			"--out", "x.arrows", "SELECT * FROM no_such_table"}, "no_such_table"},
		{"error mid-stream", exitError, []string{"query", "--driver", "postgres", "--dsn", pgServer.DSN(), "--batch-rows", "10",
			"--out", "x.parquet", "SELECT 10 / (5000 - i) AS boom FROM generate_series(1, 10000) AS i"}, "division by zero"},
		{"unwritable output", exitError, []string{"query", "--out", "/nonexistent-dir/x.arrow", "SELECT 1"}, "cannot write --out"},
		{"missing device", exitError, []string{"query", "--device", "cuda_host:7", "--out", "x.arrow", "SELECT 1"}, "cuda_host:7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			o := runOpts{dir: dir}
			if c.name == "missing DuckDB driver" {
				o.env = []string{envDuckDBDriver + "=" + filepath.Join(dir, "gone.so")}
			}
			r := volley(t, o, c.args...)
			if r.code != c.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, c.code, r.stderr)
			}
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "volley: ") {
				t.Errorf("stderr should be one line starting with \"volley: \", got:\n%s", r.stderr)
			}
			if !strings.Contains(r.stderr, c.want) {
				t.Errorf("stderr %q does not mention %q", r.stderr, c.want)
			}
			if strings.Contains(r.stderr, secret) || strings.Contains(r.stdout, secret) {
				t.Errorf("the password was echoed: %q", r.stderr)
			}
			if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
				t.Errorf("stack trace on stderr:\n%s", r.stderr)
			}
			if names := dirEntries(t, dir); len(names) != 0 {
				t.Errorf("left files behind: %q", names)
			}
		})
	}
}

// TestHelp checks that --help exits 0 and teaches: examples and exit codes
// for every command.
func TestHelp(t *testing.T) {
	for _, cmd := range []string{"query", "demo", "devices", "bench"} {
		r := mustRun(t, runOpts{}, cmd, "--help")
		if !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "130") ||
			!strings.Contains(r.stdout, "volley "+cmd) {
			t.Errorf("volley %s --help lacks examples or exit codes:\n%s", cmd, r.stdout)
		}
	}
	r := mustRun(t, runOpts{}, "help")
	if !strings.Contains(r.stdout, "volley query") || !strings.Contains(r.stdout, "Exit codes") {
		t.Errorf("volley help:\n%s", r.stdout)
	}
	if r := volley(t, runOpts{}); r.code != exitUsage {
		t.Errorf("volley with no command: exit %d, want %d", r.code, exitUsage)
	}
}

// activeQueries counts the server's active backends running a query that
// contains marker, other than the asking one.
func activeQueries(t *testing.T, conn *pgx.Conn, marker string) int {
	t.Helper()
	var n int
	err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE state = 'active' AND pid <> pg_backend_pid() AND strpos(query, $1) > 0`, marker).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls cond every 20ms until it holds or d passes; the server
// offers no event to wait on for another session's state.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

// TestInterrupt sends SIGINT to a query blocked in the server and to one
// streaming a large result, in PostgreSQL and in the embedded DuckDB: exit
// 130, the PostgreSQL backend stopped, no output file.
func TestInterrupt(t *testing.T) {
	pg := []string{"--driver", "postgres", "--dsn", pgServer.DSN()}
	cases := []struct {
		name, marker, sql, out string
		args                   []string
		streaming              bool // wait for a progress line before the signal
	}{
		{name: "postgres blocked", marker: "pg_sleep(60.5)", sql: "SELECT pg_sleep(60.5) AS nap", out: "nap.arrow", args: pg},
		{name: "postgres streaming", marker: "99999999999", sql: "SELECT i, md5(i::text) FROM generate_series(1, 99999999999) AS i",
			out: "big.parquet", args: pg, streaming: true},
		{name: "duckdb streaming", sql: "SELECT range, range * 2 AS twice FROM range(99999999999)", out: "big.arrows", streaming: true},
		{name: "duckdb blocked", sql: "SELECT count(*) FROM range(99999999999) t", out: "count.arrow", streaming: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var conn *pgx.Conn
			if c.marker != "" {
				var err error
				if conn, err = pgx.Connect(t.Context(), pgServer.DSN()); err != nil {
					t.Fatal(err)
				}
				defer conn.Close(context.Background())
			}
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			args := append(append([]string{"query"}, c.args...), "--out", c.out, c.sql)
			cmd := exec.CommandContext(ctx, volleyBin, args...)
			cmd.Dir, cmd.Env = dir, testEnv()
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan string, 100)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			if c.streaming {
				// The first progress line comes after a second of running.
				for l := range lines {
					if strings.HasPrefix(l, "volley: progress: ") {
						break
					}
				}
			}
			if conn != nil && !waitFor(30*time.Second, func() bool { return activeQueries(t, conn, c.marker) == 1 }) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("the query never showed up as active in pg_stat_activity")
			}
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			var rest []string
			for l := range lines {
				rest = append(rest, l)
			}
			err = cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted {
				t.Fatalf("exit: %v, want code %d; stderr: %q", err, exitInterrupted, rest)
			}
			if ctx.Err() != nil {
				t.Fatalf("volley did not stop after SIGINT")
			}
			if len(rest) == 0 || !strings.HasPrefix(rest[len(rest)-1], "volley: interrupted") {
				t.Errorf("stderr after the signal %q, want the interruption last", rest)
			}
			// The CLI waited for the query to end before exiting; allow the
			// server a moment to update its statistics view.
			if conn != nil && !waitFor(5*time.Second, func() bool { return activeQueries(t, conn, c.marker) == 0 }) {
				t.Errorf("the query is still active on the server after volley exited")
			}
			if names := dirEntries(t, dir); len(names) != 0 {
				t.Errorf("left files behind: %q", names)
			}
		})
	}
}

// TestClassify checks the exit code of each kind of error in process.
func TestClassify(t *testing.T) {
	live := context.Background()
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		err  error
		code int
	}{
		{"usage", live, usagef("bad"), exitUsage},
		{"interrupted", stopped, fmt.Errorf("x: %w", context.Canceled), exitInterrupted},
		{"interrupted, any error", stopped, errors.New("server said canceling statement"), exitInterrupted},
		{"unknown driver", live, fmt.Errorf("%w: x", driver.ErrUnknownDriver), exitConnect},
		{"refused", live, async.NewError(async.ECONNREFUSED, "refused", arrow.Metadata{}), exitConnect},
		{"net", live, &net.OpError{Op: "dial", Err: errors.New("boom")}, exitConnect},
		{"plain", live, errors.New("bad SQL"), exitError},
		{"scrubbed usage", live, scrub(usagef("x"), "postgres://u:pw@h/db"), exitUsage},
	}
	for _, c := range cases {
		if code, _ := classify(c.ctx, c.err); code != c.code {
			t.Errorf("%s: code %d, want %d", c.name, code, c.code)
		}
	}
}

// TestRedact checks that DSN secrets never survive redaction or scrubbing.
func TestRedact(t *testing.T) {
	cases := []struct{ dsn, secret string }{
		{"postgres://app:hunter22@db:5432/tpch?sslmode=disable", "hunter22"},
		{"host=db user=app password=hunter22 dbname=tpch", "hunter22"},
		{"host=db password='hunter 22' dbname=tpch", "hunter 22"},
		{"driver=/x.so;uri=grpc://h;password=hunter22;token=tok-123", "hunter22"},
		{"driver=/x.so;adbc.flight.sql.authorization_header=Bearer-abc", ""},
		{"postgres://db/tpch?password=hunter22", "hunter22"},
	}
	for _, c := range cases {
		red := redactDSN(c.dsn)
		if c.secret != "" && strings.Contains(red, c.secret) {
			t.Errorf("redactDSN(%q) = %q keeps the secret", c.dsn, red)
		}
		err := scrub(fmt.Errorf("connect %s failed: secret %s", c.dsn, c.secret), c.dsn)
		if c.secret != "" && strings.Contains(err.Error(), c.secret) {
			t.Errorf("scrub kept the secret: %q", err)
		}
	}
	if got := redactDSN("postgres://app@db/tpch"); got != "postgres://app@db/tpch" {
		t.Errorf("a DSN without secrets changed: %q", got)
	}
}

// TestParseParam checks the --param typing.
func TestParseParam(t *testing.T) {
	cases := []struct {
		in   string
		want any
		err  bool
	}{
		{"abc", "abc", false}, {"int:42", int64(42), false}, {"float:1.5", 1.5, false},
		{"bool:true", true, false}, {"null", nil, false}, {"str:int:1", "int:1", false},
		{"12:30", "12:30", false}, {"postgres://x", "postgres://x", false}, {"", "", false},
		{"int:x", nil, true}, {"float:", nil, true}, {"bool:maybe", nil, true},
	}
	for _, c := range cases {
		got, err := parseParam(c.in)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("parseParam(%q) = %#v, %v; want %#v, err %v", c.in, got, err, c.want, c.err)
		}
	}
	sizes := map[string]int64{"4096": 4096, "64KiB": 64 << 10, "16MiB": 16 << 20, "1GiB": 1 << 30, "10MB": 10e6, "2M": 2 << 20}
	for in, want := range sizes {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1", "lots", "1.5MiB"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}
