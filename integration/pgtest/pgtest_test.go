package pgtest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/volleyhq/volley/integration/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func query1(t *testing.T, dsn string) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	defer c.Close(ctx)
	res := c.ExecParams(ctx, "SELECT current_setting('fsync') || ',' || current_setting('full_page_writes')", nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	return string(res.Rows[0][0])
}

func TestSharedTCPAndUnix(t *testing.T) {
	s := pgtest.Shared(t)
	if got := query1(t, s.DSN()); got != "off,off" && !s.External() {
		t.Fatalf("fsync,full_page_writes = %q, want off,off", got)
	}
	if !s.External() && !strings.Contains(s.UnixDSN(), "host=%2F") {
		t.Fatalf("UnixDSN %q has no socket dir", s.UnixDSN())
	}
	query1(t, s.UnixDSN())
	if s2 := pgtest.Shared(t); s2 != s {
		t.Fatal("Shared returned a second server")
	}
}

func TestPrivateStopAndClose(t *testing.T) {
	s := pgtest.NewPrivate(t)
	query1(t, s.DSN())
	dir := s.DataDir()
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := pgconn.Connect(context.Background(), s.DSN()); err == nil {
		t.Fatal("connect succeeded after Stop")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := pgconn.Connect(context.Background(), s.DSN()); err == nil {
		t.Fatal("connect succeeded after Close")
	}
	if dir == "" {
		t.Fatal("no data dir")
	}
}

func TestMissingBinaries(t *testing.T) {
	_, err := pgtest.Start(context.Background(), pgtest.Options{BinDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Fatalf("err = %v, want a message naming the package", err)
	}
}
