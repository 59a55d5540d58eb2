// Command volley runs SQL queries through Volley and streams their results
// as Arrow record batches onto CPU, pinned host or CUDA memory.
//
//	volley query [flags] SQL     one query: preview, Arrow IPC or Parquet output
//	volley demo [flags]          TPC-H lineitem through the embedded DuckDB (or PostgreSQL)
//	volley devices               the device inventory
//	volley bench [flags]         Volley against psql and pgx on PostgreSQL
//
// Run `volley help COMMAND` or `volley COMMAND --help` for each command's
// flags and examples.
//
// Exit codes: 0 ok, 1 query or runtime error, 2 usage error, 3 connection
// error (unreachable server, missing driver), 130 interrupted.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/volleyhq/volley/adapters/adbc"     // registers "adbc"
	_ "github.com/volleyhq/volley/adapters/postgres" // registers "postgres", "postgresql"
	"github.com/volleyhq/volley/integration/pgbench"
)

// duckdbDriverPath is the embedded DuckDB ADBC driver's path baked in at
// build time: go build -ldflags "-X main.duckdbDriverPath=/path/libduckdb_adbc.so".
var duckdbDriverPath string

// The exit codes, as --help documents them.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitConnect     = 3
	exitInterrupted = 130
)

const exitCodesHelp = `Exit codes:
  0    success
  1    query or runtime error (bad SQL, failed placement, output file error)
  2    usage error (unknown flag or command, bad flag value, invalid device)
  3    connection error (unreachable server, missing driver library)
  130  interrupted (Ctrl-C / SIGTERM; the running query is cancelled on the server)
`

const mainHelp = `volley runs SQL queries asynchronously and streams the results as Arrow
record batches onto CPU, pinned host or CUDA memory.

Usage:
  volley query [flags] SQL     run one query; preview it, or write Arrow IPC / Parquet
  volley demo [flags]          TPC-H lineitem through the embedded DuckDB (or PostgreSQL)
  volley devices               list the devices batches can land on
  volley bench [flags]         compare Volley with psql and pgx on PostgreSQL
  volley help [COMMAND]        this text, or a command's flags and examples

Examples:
  volley demo
  volley query "SELECT 42 AS answer"
  volley query --driver postgres --dsn postgres://app@localhost/tpch \
      --param int:10 "SELECT * FROM lineitem WHERE l_quantity > $1" --out big.parquet
  volley devices

` + exitCodesHelp

// env is what a command sees of the outside world; tests use the real
// binary, so this only keeps the commands free of globals.
type env struct {
	stdout, stderr io.Writer
	stderrTTY      bool // stderr is a terminal: redraw progress in place
	stdoutTTY      bool // stdout is a terminal: no binary output there
}

func main() {
	// A `volley bench` child measures one client and exits.
	pgbench.RunChildIfRequested()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills the process the default way.
	context.AfterFunc(ctx, stop)
	e := &env{stdout: os.Stdout, stderr: os.Stderr, stderrTTY: isTerminal(os.Stderr), stdoutTTY: isTerminal(os.Stdout)}
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand and turns its error into an exit code,
// printing the error as one line.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, mainHelp)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "query":
		err = runQuery(ctx, e, rest)
	case "demo":
		err = runDemo(ctx, e, rest)
	case "devices":
		err = runDevices(ctx, e, rest)
	case "bench":
		err = runBench(ctx, e, rest)
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			return run(ctx, e, []string{rest[0], "--help"})
		}
		fmt.Fprint(e.stdout, mainHelp)
		return exitOK
	default:
		err = usagef("unknown command %q; commands: query, demo, devices, bench, help", cmd)
	}
	return report(ctx, e, err)
}
