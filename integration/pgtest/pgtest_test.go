package pgtest_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/volleyhq/volley/integration/pgtest"
)

func TestMain(m *testing.M) {
	if os.Getenv("PGTEST_ORPHAN_CHILD") == "1" {
		// Child of TestParentDeathStopsServer: start a server, say where
		// it is, and wait to be killed.
		s, err := pgtest.Start(context.Background(), pgtest.Options{})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(s.UnixDSN(), s.DataDir())
		select {}
	}
	pgtest.Main(m)
}

// A server whose starter dies without Close stops too.
func TestParentDeathStopsServer(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PGTEST_ORPHAN_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %v", err)
	}
	f := strings.Fields(line)
	if len(f) != 2 || f[0] == "error" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q", line)
	}
	dsn, dataDir := f[0], f[1]
	defer os.RemoveAll(filepath.Dir(dataDir))
	query1(t, dsn)
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := pgconn.Connect(context.Background(), dsn)
		if err != nil {
			return // gone
		}
		c.Close(context.Background())
		if time.Now().After(deadline) {
			t.Fatal("server still accepts connections 10s after its starter died")
		}
		time.Sleep(50 * time.Millisecond) // waiting on another process
	}
}

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
