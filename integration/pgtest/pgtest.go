// Package pgtest runs ephemeral PostgreSQL clusters for tests and demos.
//
// [Start] initdb's a cluster in a temporary directory from the local
// PostgreSQL binaries, starts it on 127.0.0.1 with a free port and a private
// unix socket directory (fsync and full_page_writes off: the data is
// throw-away), and [Server.Close] stops it (immediate shutdown) and removes
// the directory. The server is a child process with a parent-death signal:
// if the process that started it dies without Close, the server stops too
// (its directory is left in the temp dir). When the process runs as root, initdb and the server run as
// an unprivileged system user (postgres or nobody, or a volleypg user created
// on demand), because PostgreSQL refuses to run as root.
//
// Tests use [New] (a private cluster torn down by t.Cleanup) or [Shared] (one
// cluster per test binary, stopped by [Main] from TestMain). Both honour the
// environment variable VOLLEY_TEST_POSTGRES_DSN: when it is set, they return
// a Server for that existing database instead of starting one.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// EnvDSN is the environment variable that points tests at an existing
// server instead of an ephemeral one.
const EnvDSN = "VOLLEY_TEST_POSTGRES_DSN"

// EnvUnixDSN optionally gives the same external server's unix-socket DSN
// (for UnixDSN); without it UnixDSN is the EnvDSN value.
const EnvUnixDSN = "VOLLEY_TEST_POSTGRES_UNIX_DSN"

// ErrNoPostgres reports that the PostgreSQL server binaries were not found;
// use errors.Is.
var ErrNoPostgres = errors.New("pgtest: PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install postgresql (Debian: apt-get install postgresql)")

// Options configure [Start]. The zero value works.
type Options struct {
	// BinDir is the directory holding initdb, pg_ctl and postgres. Empty
	// searches PATH (resolving symlinks), then /usr/lib/postgresql/*/bin,
	// newest version first.
	BinDir string
	// TempDir is the parent of the cluster's directory; empty is
	// os.TempDir().
	TempDir string
	// Settings are extra server settings (name → value) passed with -c.
	Settings map[string]string
	// StartTimeout bounds initdb plus startup; zero is 60 seconds.
	StartTimeout time.Duration
}

// Server is one running cluster (or an external database named by a DSN).
// Its methods are safe for concurrent use. Close is idempotent.
type Server struct {
	dsn, unixDSN string
	port         int
	dir          string // cluster's root directory; "" for external servers
	binDir       string
	cred         *syscall.Credential

	mu   sync.Mutex  // guards proc
	proc *os.Process // the postmaster, nil once stopped

	closeOnce sync.Once
	closeErr  error
}

// DSN is a URL for the superuser "postgres" over TCP to 127.0.0.1 (database
// "postgres", sslmode=disable). It carries no password.
func (s *Server) DSN() string { return s.dsn }

// UnixDSN is the same database over the unix socket. For an external
// server given by DSN it is the DSN itself.
func (s *Server) UnixDSN() string { return s.unixDSN }

// Port is the TCP port (0 for an external server).
func (s *Server) Port() int { return s.port }

// DataDir is the cluster's data directory ("" for an external server).
func (s *Server) DataDir() string {
	if s.dir == "" {
		return ""
	}
	return filepath.Join(s.dir, "data")
}

// BinDir is the directory of the PostgreSQL binaries in use ("" for an
// external server); psql is usually beside them.
func (s *Server) BinDir() string { return s.binDir }

// External reports whether the server was not started by this package.
func (s *Server) External() bool { return s.dir == "" }

// Close stops the cluster (immediate shutdown) and removes its directory.
// It is idempotent; for an external server it does nothing.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.dir == "" {
			return
		}
		s.mu.Lock()
		s.kill()
		s.mu.Unlock()
		if err := os.RemoveAll(s.dir); err != nil {
			s.closeErr = fmt.Errorf("pgtest: remove cluster dir: %w", err)
		}
	})
	return s.closeErr
}

// Stop stops the server immediately without removing its directory, to
// test what clients see when the server goes away. Close still cleans up.
func (s *Server) Stop(ctx context.Context) error {
	if s.dir == "" {
		return errors.New("pgtest: cannot stop an external server")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kill()
	return nil
}

// External returns a Server for an existing database; Close does nothing.
func External(dsn string) *Server { return &Server{dsn: dsn, unixDSN: dsn} }

// fromEnv returns the external server the environment names, or nil.
func fromEnv() *Server {
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		return nil
	}
	s := External(dsn)
	if u := os.Getenv(EnvUnixDSN); u != "" {
		s.unixDSN = u
	}
	return s
}

// Start creates and starts a fresh cluster. The caller must Close it.
func Start(ctx context.Context, opts Options) (*Server, error) {
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	binDir, err := findBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(opts.TempDir, "volley-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{dir: dir, binDir: binDir, cred: cred}
	ok := false
	defer func() {
		if !ok {
			_ = s.Close()
		}
	}()
	sock := filepath.Join(dir, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if cred != nil {
		for _, p := range []string{dir, sock} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, fmt.Errorf("pgtest: chown %s: %w", p, err)
			}
		}
	}
	if out, err := s.run(ctx, filepath.Join(binDir, "initdb"), "-D", s.DataDir(), "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"); err != nil {
		return nil, fmt.Errorf("pgtest: initdb: %w: %s", err, bytes.TrimSpace(out))
	}
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": sock,
		"fsync":                   "off",
		"full_page_writes":        "off",
		"synchronous_commit":      "off",
		"max_connections":         "100",
		"logging_collector":       "off",
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		settings["port"] = strconv.Itoa(port)
		s.port = port
		s.dsn = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
		s.unixDSN = fmt.Sprintf("postgres://postgres@/postgres?host=%s&port=%d&sslmode=disable",
			url.QueryEscape(sock), port)
		lastErr = s.startPostmaster(ctx, settings)
		if lastErr == nil {
			ok = true
			return s, nil
		}
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		lastErr = fmt.Errorf("%w\n%s", lastErr, tail(log, 2000))
		if ctx.Err() != nil || !bytes.Contains(log, []byte("could not bind")) {
			break
		}
	}
	return nil, lastErr
}

// startPostmaster runs postgres itself as a child process (not through
// pg_ctl, which daemonizes it) with a parent-death signal: when the process
// that started it dies without Close (a test binary killed by -timeout, a
// CLI interrupted), the server gets SIGQUIT and shuts down at once instead
// of outliving it. It returns when the server accepts connections.
func (s *Server) startPostmaster(ctx context.Context, settings map[string]string) error {
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := []string{"-D", s.DataDir()}
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(s.binDir, "postgres"), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC", "TZ=UTC")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	// The parent-death signal follows the OS thread that forks; start from
	// a fresh goroutine, which never runs on a locked (and so mortal) thread.
	started := make(chan error, 1)
	go func() { started <- cmd.Start() }()
	if err := <-started; err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	s.proc = cmd.Process
	// Wait for readiness: nothing to block on but the socket itself.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var ws syscall.WaitStatus
		if pid, _ := syscall.Wait4(s.proc.Pid, &ws, syscall.WNOHANG, nil); pid == s.proc.Pid {
			s.proc = nil
			return fmt.Errorf("pgtest: postgres exited during startup (%v)", ws)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := pgconn.Connect(cctx, s.unixDSN)
		cancel()
		if err == nil {
			c.Close(context.Background())
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("pgtest: postgres not ready: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops the postmaster immediately (SIGQUIT) and reaps it.
func (s *Server) kill() {
	if s.proc == nil {
		return
	}
	_ = s.proc.Signal(syscall.SIGQUIT)
	done := make(chan struct{})
	t := time.AfterFunc(30*time.Second, func() {
		select {
		case <-done:
		default:
			_ = s.proc.Kill()
		}
	})
	_, _ = s.proc.Wait()
	close(done)
	t.Stop()
	s.proc = nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// run runs a PostgreSQL binary as the cluster's user.
func (s *Server) run(ctx context.Context, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC", "TZ=UTC")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	// pg_ctl start leaves the postmaster running with our pipes; give it
	// a file so that CombinedOutput does not wait for the server to exit.
	f, err := os.CreateTemp("", "pgtest-out-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	out, _ := os.ReadFile(f.Name())
	return out, err
}

// findBinDir returns the directory with initdb, pg_ctl and postgres.
func findBinDir(dir string) (string, error) {
	has := func(d string) bool {
		for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
			fi, err := os.Stat(filepath.Join(d, b))
			if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%w (looked in %s)", ErrNoPostgres, dir)
	}
	// PATH entries are often symlinks (Debian's /usr/local/bin/initdb →
	// /usr/lib/postgresql/15/bin/initdb) or pg_wrapper scripts; resolve them
	// and use the real directory only when it holds all three binaries.
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}

func version(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

var (
	credOnce sync.Once
	credVal  *syscall.Credential
	credErr  error
)

// credential returns the unprivileged user to run PostgreSQL as when the
// process is root, creating a system user volleypg when none fits.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	credOnce.Do(func() {
		for _, name := range []string{"postgres", "volleypg", "nobody"} {
			if c, err := lookupCred(name); err == nil {
				credVal = c
				return
			}
		}
		out, err := exec.Command("useradd", "--system", "--no-create-home", "volleypg").CombinedOutput()
		if err != nil {
			credErr = fmt.Errorf("pgtest: running as root and no unprivileged user for PostgreSQL: useradd volleypg: %w: %s", err, out)
			return
		}
		credVal, credErr = lookupCred("volleypg")
	})
	return credVal, credErr
}

func lookupCred(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		return nil, fmt.Errorf("pgtest: unusable user %s", name)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
