package pgbench_test

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

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
	wants := []string{"volley/psql wall", "volley/raw cpu", "volley/scan cpu", "select-*", "project-4", "unix", "server-floor"}
	if len(modes) > 0 {
		wants = wants[:5]
	}
	for _, want := range wants {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("\n%s", out.String())
}
