package chaos

import (
	"bytes"
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
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoPostgres is returned (wrapped) by StartPostgres when no PostgreSQL
// server binaries can be found at all.
var ErrNoPostgres = errors.New("chaos: no PostgreSQL server binaries found (install the PostgreSQL server, e.g. apt-get install postgresql, or set CMKD_CHAOS_PG_BIN to the directory holding initdb and pg_ctl)")

// pgReadyTimeout bounds how long a start waits for the server to accept
// connections.
const pgReadyTimeout = 30 * time.Second

// Postgres is a PostgreSQL server of the harness's own, in a directory of
// its own on a port of its own, so that it can be restarted (and its disk
// filled) without touching any other database.
//
// Its methods serialise with each other; they may be called from several
// goroutines.
type Postgres struct {
	Dir  string // data directory
	Port int
	URL  string // postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
	Log  string // server log file, a sibling of Dir (Dir + ".log")

	bin    string // directory holding initdb and pg_ctl
	asUser string // OS user to run the binaries as ("" = the current one)

	mu sync.Mutex
}

// StartPostgres initdbs and starts a server in dir (which must not exist or
// be empty) on a free loopback port.
//
// The binaries are found as: $CMKD_CHAOS_PG_BIN if set, else the newest
// /usr/lib/postgresql/*/bin, else initdb and pg_ctl on PATH. When running as
// root, initdb and the server run as the "postgres" OS user (through
// runuser), dir and the log file are chowned to it, and every directory
// above dir that others cannot search gets the search (x, not read) bit for
// others, because PostgreSQL refuses to run as root and the postgres user
// must be able to reach dir.
//
// The server trusts every local connection, listens on 127.0.0.1 only, keeps
// its unix socket inside dir (so it never collides with the system's), and
// runs with fsync=on, max_connections=100 and shared_buffers=16MB.
func StartPostgres(ctx context.Context, dir string) (*Postgres, error) {
	bin, err := pgFindBin()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("chaos: postgres data directory: %w", err)
	}
	if err := pgPrepareDir(dir); err != nil {
		return nil, err
	}
	p := &Postgres{Dir: dir, Log: dir + ".log", bin: bin}
	if err := os.WriteFile(p.Log, nil, 0o644); err != nil {
		return nil, fmt.Errorf("chaos: postgres log file: %w", err)
	}
	if os.Geteuid() == 0 {
		if err := pgHandToPostgresUser(dir, p.Log); err != nil {
			return nil, err
		}
		p.asUser = "postgres"
	}

	out, err := p.run(ctx, "initdb", "-D", dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale")
	if err != nil {
		return nil, fmt.Errorf("chaos: initdb in %s failed: %w\n%s", dir, err, pgTail(out, 20))
	}
	// Our settings live in a file of their own, included last, so that the
	// port can be rewritten if it is taken between choosing and binding.
	conf, err := os.OpenFile(filepath.Join(dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("chaos: postgres config: %w", err)
	}
	_, err = conf.WriteString("\ninclude 'chaos.conf'\n")
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("chaos: postgres config: %w", err)
	}

	// A port chosen free may be taken by someone else before the server
	// binds it; try a few.
	for attempt := 0; ; attempt++ {
		port, err := pgFreePort()
		if err != nil {
			return nil, err
		}
		if err := p.writeConf(port); err != nil {
			return nil, err
		}
		p.Port = port
		p.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
		err = p.Start(ctx)
		if err == nil {
			return p, nil
		}
		if attempt >= 2 || !strings.Contains(p.logTail(50), "already in use") || ctx.Err() != nil {
			return nil, err
		}
	}
}

func (p *Postgres) writeConf(port int) error {
	conf := fmt.Sprintf(`# written by the chaos harness
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
fsync = on
max_connections = 100
shared_buffers = 16MB
logging_collector = off
`, port, strings.ReplaceAll(p.Dir, "'", "''"))
	name := filepath.Join(p.Dir, "chaos.conf")
	if err := os.WriteFile(name, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("chaos: postgres config: %w", err)
	}
	return nil
}

// Restart stops the server the way a crash does (pg_ctl stop -m immediate:
// no shutdown checkpoint, every connection cut, crash recovery at start) and
// starts it again; it returns when the server accepts connections again.
func (p *Postgres) Restart(ctx context.Context) error {
	if err := p.Stop(ctx); err != nil {
		return err
	}
	return p.Start(ctx)
}

// Stop stops the server the way a crash does (pg_ctl stop -m immediate).
// Stopping a stopped server is not an error.
func (p *Postgres) Stop(ctx context.Context) error {
	return p.stop(ctx, "immediate")
}

func (p *Postgres) stop(ctx context.Context, mode string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.serverUp(ctx) {
		return nil
	}
	out, err := p.run(ctx, "pg_ctl", "stop", "-D", p.Dir, "-m", mode, "-w", "-t", "30")
	if err != nil {
		return fmt.Errorf("chaos: pg_ctl stop -m %s failed: %w\n%s", mode, err, pgTail(out, 20))
	}
	return nil
}

// Start starts the stopped server and returns when it accepts connections.
// Starting a running server is not an error.
func (p *Postgres) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.serverUp(ctx) {
		return p.waitReady(ctx)
	}
	out, err := p.run(ctx, "pg_ctl", "start", "-D", p.Dir, "-l", p.Log, "-w", "-t", strconv.Itoa(int(pgReadyTimeout/time.Second)))
	if err != nil {
		return fmt.Errorf("chaos: pg_ctl start in %s failed: %w\n%s\nserver log %s, last lines:\n%s", p.Dir, err, pgTail(out, 5), p.Log, p.logTail(20))
	}
	if err := p.waitReady(ctx); err != nil {
		return fmt.Errorf("%w\nserver log %s, last lines:\n%s", err, p.Log, p.logTail(20))
	}
	return nil
}

// waitReady connects until a connection succeeds or pgReadyTimeout passes.
func (p *Postgres) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pgReadyTimeout)
	defer cancel()
	var last error
	for {
		if last = p.ping(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: postgres on port %d does not accept connections: %w (last: %v)", p.Port, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *Postgres) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.URL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}

// Running reports whether the server accepts connections.
func (p *Postgres) Running(ctx context.Context) bool {
	return p.ping(ctx) == nil
}

// serverUp reports whether a postmaster runs on Dir, accepting connections
// or not (pg_ctl status).
func (p *Postgres) serverUp(ctx context.Context) bool {
	_, err := p.run(ctx, "pg_ctl", "status", "-D", p.Dir)
	return err == nil
}

// Close stops the server (a clean, fast shutdown; immediate if that does not
// succeed); it does not remove Dir.
func (p *Postgres) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.stop(ctx, "fast"); err != nil {
		return p.stop(ctx, "immediate")
	}
	return nil
}

// run runs one of the PostgreSQL binaries, as p.asUser if set, and returns
// its combined output.
func (p *Postgres) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	path := filepath.Join(p.bin, prog)
	var cmd *exec.Cmd
	if p.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", p.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	// The caller's working directory may be closed to the postgres user.
	cmd.Dir = p.Dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

func (p *Postgres) logTail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return fmt.Sprintf("(cannot read server log: %v)", err)
	}
	return pgTail(b, n)
}

// pgTail returns the last n lines of b.
func pgTail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pgFindBin returns the directory holding initdb and pg_ctl.
func pgFindBin() (string, error) {
	has := func(dir string) bool {
		for _, prog := range []string{"initdb", "pg_ctl", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, prog)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv("CMKD_CHAOS_PG_BIN"); dir != "" {
		if !has(dir) {
			return "", fmt.Errorf("%w: CMKD_CHAOS_PG_BIN=%s lacks initdb, pg_ctl or postgres", ErrNoPostgres, dir)
		}
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest version first: compare the version directory numerically.
	version := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	if initdb, err := exec.LookPath("initdb"); err == nil {
		if d := filepath.Dir(initdb); has(d) {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}

// pgPrepareDir creates dir, or checks that it is empty.
func pgPrepareDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("chaos: postgres data directory: %w", err)
		}
	case err != nil:
		return fmt.Errorf("chaos: postgres data directory: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("chaos: postgres data directory %s is not empty", dir)
	}
	// initdb demands 0700 or 0750.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("chaos: postgres data directory: %w", err)
	}
	return nil
}

// pgHandToPostgresUser gives dir and the log file to the postgres OS user
// and makes sure that user can reach them.
func pgHandToPostgresUser(dir, log string) error {
	if _, err := exec.LookPath("runuser"); err != nil {
		return fmt.Errorf("chaos: running as root, PostgreSQL must run as the postgres user, but runuser (util-linux) is missing: %w", err)
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("chaos: running as root, PostgreSQL must run as the postgres OS user, which is missing (install the postgresql package or create the user): %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("chaos: postgres user ids: %w", err)
	}
	for _, name := range []string{dir, log} {
		if err := os.Chown(name, uid, gid); err != nil {
			return fmt.Errorf("chaos: give %s to the postgres user: %w", name, err)
		}
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("chaos: postgres data directory: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("chaos: let the postgres user search %s: %w", d, err)
			}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// pgFreePort returns a loopback TCP port that was free a moment ago.
func pgFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("chaos: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
