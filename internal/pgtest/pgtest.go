// Package pgtest finds a PostgreSQL server for tests, or makes one.
//
// DSN returns PROFILE_TEST_PG_DSN when it is set. Otherwise, when the
// PostgreSQL server binaries are installed (initdb and pg_ctl under
// /usr/lib/postgresql/*/bin, or on PATH), it starts a throwaway cluster
// once per test binary: initdb into a temporary directory, trust
// authentication, 127.0.0.1 on a free port, the unix socket in that
// directory, run as the postgres OS user when the tests run as root
// (PostgreSQL refuses to run as root). It then sets PROFILE_TEST_PG_DSN in
// this process, so that Caddyfile placeholders ({env.PROFILE_TEST_PG_DSN})
// and child processes find it too. Without either, the test is skipped
// with the way to run it.
//
// NewServer starts a separate private server that a test may stop, start
// and restart; it is never the shared one.
//
// Every cluster is removed by Stop (call it from TestMain after m.Run), by
// the test's cleanup (NewServer), and, should the test binary die first,
// by a watchdog process that stops the server and removes its directory
// once the test binary has exited.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvDSN is the variable naming an existing server for the tests.
const EnvDSN = "PROFILE_TEST_PG_DSN"

// SkipMessage says how to run the PostgreSQL tests.
const SkipMessage = "PostgreSQL tests need either " + EnvDSN + " (e.g. " + EnvDSN +
	"=postgres://postgres@127.0.0.1:5432/test?sslmode=disable; .ci/run sets it) or the PostgreSQL server binaries " +
	"(initdb and pg_ctl, e.g. apt-get install postgresql), from which they start a throwaway server of their own"

// ErrNoServerBinaries: initdb and pg_ctl were not found.
var ErrNoServerBinaries = errors.New("the PostgreSQL server binaries (initdb, pg_ctl) are not installed")

var shared struct {
	once sync.Once
	srv  *Server
	dsn  string
	err  error
}

// DSN is the DSN of the PostgreSQL server the package's tests share (see
// the package comment); t is skipped when there is none. Tests keep to
// schemas of their own on it.
func DSN(t testing.TB) string {
	t.Helper()
	if d := os.Getenv(EnvDSN); d != "" {
		return d
	}
	shared.once.Do(func() {
		srv, err := startServer()
		if err != nil {
			shared.err = err
			return
		}
		shared.srv, shared.dsn = srv, srv.DSN
		_ = os.Setenv(EnvDSN, srv.DSN)
	})
	switch {
	case errors.Is(shared.err, ErrNoServerBinaries):
		t.Skip(SkipMessage)
	case shared.err != nil:
		t.Fatalf("starting a throwaway PostgreSQL server: %v", shared.err)
	}
	return shared.dsn
}

// Stop stops and removes the shared throwaway server, if this test binary
// started one. Call it from TestMain after m.Run.
func Stop() {
	if shared.srv != nil {
		shared.srv.destroy()
		if os.Getenv(EnvDSN) == shared.dsn {
			_ = os.Unsetenv(EnvDSN)
		}
	}
}

// Run is a TestMain body: m.Run, then Stop.
func Run(m *testing.M) int {
	code := m.Run()
	Stop()
	return code
}

// Server is a private PostgreSQL server.
type Server struct {
	// DSN reaches the server over TCP (database postgres, user postgres,
	// trust authentication, sslmode=disable).
	DSN  string
	Port int
	Dir  string // holds data/, sock/ and log

	bin  string
	cred *syscall.Credential
	mu   sync.Mutex
	gone bool
}

// NewServer starts a private server for t alone, which t may Stop, Start
// and Restart; it is destroyed when t ends. t is skipped when the server
// binaries are not installed (PROFILE_TEST_PG_DSN cannot stand in: the
// test needs a server it may stop).
func NewServer(t testing.TB) *Server {
	t.Helper()
	s, err := startServer()
	if errors.Is(err, ErrNoServerBinaries) {
		t.Skip("this test stops and restarts a PostgreSQL server of its own: it needs the PostgreSQL server binaries " +
			"(initdb and pg_ctl, e.g. apt-get install postgresql)")
	}
	if err != nil {
		t.Fatalf("starting a private PostgreSQL server: %v", err)
	}
	t.Cleanup(s.destroy)
	return s
}

// ServerAvailable says whether NewServer can start a server.
func ServerAvailable() error {
	_, err := binDir()
	return err
}

// Stop shuts the server down (fast mode: sessions are ended, nothing is
// lost); the port is left free.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if out, err := s.pgctl("stop", "-m", "fast"); err != nil {
		t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// Start starts the stopped server again, on the same port.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if out, err := s.pgctl("start", "-o", s.serverOptions()); err != nil {
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, s.Log())
	}
}

// Restart is pg_ctl restart (fast mode): every session is ended.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if out, err := s.pgctl("restart", "-m", "fast", "-o", s.serverOptions()); err != nil {
		t.Fatalf("pg_ctl restart: %v\n%s\n%s", err, out, s.Log())
	}
}

// Log is the server's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
	return string(b)
}

func (s *Server) serverOptions() string {
	return fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c full_page_writes=off -c synchronous_commit=off",
		s.Port, filepath.Join(s.Dir, "sock"))
}

func (s *Server) pgctl(args ...string) ([]byte, error) {
	args = append([]string{"-D", filepath.Join(s.Dir, "data"), "-l", filepath.Join(s.Dir, "log"), "-w", "-t", "30"}, args...)
	cmd := exec.Command(filepath.Join(s.bin, "pg_ctl"), args...)
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			if cmd.Process != nil {
				_ = cmd.Process.Kill()
			}
		case <-done:
		}
	}()
	out, err := cmd.CombinedOutput()
	close(done)
	return out, err
}

// destroy stops the server at once and removes its directory.
func (s *Server) destroy() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return
	}
	s.gone = true
	_, _ = s.pgctl("stop", "-m", "immediate")
	_ = os.RemoveAll(s.Dir)
}

var template struct {
	once sync.Once
	dir  string // a freshly initialised data directory, copied by startServer
	err  error
}

// startServer copies the template cluster (initdb runs once per test
// binary) into a directory of its own and starts it on a free port.
func startServer() (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	template.once.Do(func() { template.dir, template.err = initTemplate(bin, cred) })
	if template.err != nil {
		return nil, template.err
	}
	dir, err := newDir(cred)
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, bin: bin, cred: cred}
	watchdog(dir)
	if out, err := exec.Command("cp", "-a", filepath.Join(template.dir, "data"), filepath.Join(dir, "data")).CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("copying the template cluster: %v: %s", err, out)
	}
	for attempt := 0; ; attempt++ {
		s.Port, err = freePort()
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		out, err := s.pgctl("start", "-o", s.serverOptions())
		if err == nil {
			break
		}
		if attempt == 3 { // the free port was taken meanwhile, or worse
			log := s.Log()
			s.destroy()
			return nil, fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
		}
	}
	s.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	return s, nil
}

func initTemplate(bin string, cred *syscall.Credential) (string, error) {
	dir, err := newDir(cred)
	if err != nil {
		return "", err
	}
	watchdog(dir)
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres", "-A", "trust",
		"--no-sync", "-E", "UTF8", "--locale=C")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return dir, nil
}

// newDir is a temporary directory the server's OS user owns, with sock/.
func newDir(cred *syscall.Credential) (string, error) {
	// in memory when /dev/shm is there (copying a cluster there takes
	// milliseconds, against seconds on a loaded disk); else under /tmp
	// when root, since the postgres user must reach it and root's TMPDIR
	// may be private
	dir, err := os.MkdirTemp("/dev/shm", "pgtest-")
	if err != nil {
		base := ""
		if cred != nil {
			base = "/tmp"
		}
		if dir, err = os.MkdirTemp(base, "pgtest-"); err != nil {
			return "", err
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sock"), 0o700); err != nil {
		return "", err
	}
	if cred != nil {
		for _, p := range []string{dir, filepath.Join(dir, "sock")} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				_ = os.RemoveAll(dir)
				return "", err
			}
		}
	}
	return dir, nil
}

// credential is the OS user the server runs as: postgres when this
// process is root, this process's own user otherwise.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("the tests run as root, and PostgreSQL refuses to: an OS user postgres is needed to run it (%v)", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user postgres: uid %q gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// binDir is the directory holding initdb and pg_ctl: the newest
// /usr/lib/postgresql/<version>/bin, or else PATH's.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if d := filepath.Dir(p); isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", ErrNoServerBinaries
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// watchdog starts a process that, once this test binary has exited,
// stops a server still running in dir and removes dir: a test binary
// killed by -timeout or a panic leaves nothing behind. It has none of
// this process's output, so that go test does not wait for it.
func watchdog(dir string) {
	script := `while kill -0 "$1" 2>/dev/null; do sleep 1; done
pid=$(head -n 1 "$2/data/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null; then
	i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done
	kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$2"`
	cmd := exec.Command("sh", "-c", script, "pgtest-watchdog", strconv.Itoa(os.Getpid()), dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err == nil {
		_ = cmd.Process.Release() // no goroutine waits for it: it outlives us
	}
}

// Schema is a name for a schema of the caller's own: prefix, the process
// and a sequence number.
func Schema(prefix string) string {
	schemaMu.Lock()
	defer schemaMu.Unlock()
	schemaSeq++
	return strings.ToLower(fmt.Sprintf("%s_%d_%d_%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9, schemaSeq))
}

var (
	schemaMu  sync.Mutex
	schemaSeq int
)
