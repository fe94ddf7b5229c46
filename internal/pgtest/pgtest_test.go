package pgtest_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd/internal/pgtest"
)

// childEnv marks the test binary run by TestUnreachableServer.
const childEnv = "PGTEST_CHILD"

// An unreachable server skips the test, saying how to run it, unless
// PostgreSQL is required: then the test fails. The password in the
// connection string is not shown.
func TestUnreachableServer(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		pgtest.URL(t)
		t.Log("server reached")
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	refused := "postgres://cmkd:s3cret@" + addr + "/test?sslmode=disable"

	// A server that accepts connections and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn
		for {
			c, err := silent.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	mute := "postgres://cmkd:s3cret@" + silent.Addr().String() + "/test?sslmode=disable"

	for _, c := range []struct {
		url, require string
		want         string
		fails        bool
	}{
		{refused, "", "--- SKIP", false},
		{refused, "0", "--- SKIP", false},
		{refused, "1", "--- FAIL", true},
		{mute, "", "--- SKIP", false},
	} {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestUnreachableServer$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"=1", pgtest.EnvURL+"="+c.url, pgtest.EnvRequire+"="+c.require)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if d := time.Since(start); d > pgtest.ReachTimeout+3*time.Second {
			t.Errorf("%s: the test took %s to give up", c.url, d)
		}
		if (err != nil) != c.fails {
			t.Errorf("%s=%q: exit %v, want failure %v:\n%s", pgtest.EnvRequire, c.require, err, c.fails, out)
		}
		s := string(out)
		if !strings.Contains(s, c.want) || !strings.Contains(s, "PostgreSQL at ") || !strings.Contains(s, "not reachable") ||
			!strings.Contains(s, "set "+pgtest.EnvURL) || strings.Contains(s, "server reached") {
			t.Errorf("%s=%q: output lacks %q or the message:\n%s", pgtest.EnvRequire, c.require, c.want, s)
		}
		if strings.Contains(s, "s3cret") {
			t.Errorf("the password shows in the output:\n%s", s)
		}
	}
}

// A test's schema exists while it runs, the DSN lands in it, and it is
// gone, with what was made in it, when the test ends.
func TestNewSchema(t *testing.T) {
	var s pgtest.Schema
	t.Run("inner", func(t *testing.T) {
		s = pgtest.NewSchema(t)
		if !regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`).MatchString(s.Name) {
			t.Fatalf("schema name %q", s.Name)
		}
		c, err := pgx.Connect(t.Context(), s.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(t.Context(), `CREATE TABLE x (id int)`); err != nil {
			t.Fatal(err)
		}
		var schema string
		if err := c.QueryRow(t.Context(), `SELECT schemaname FROM pg_tables WHERE tablename = 'x' AND schemaname = current_schema()`).Scan(&schema); err != nil || schema != s.Name {
			t.Fatalf("table made through the DSN is in %q (%v), want %q", schema, err, s.Name)
		}
	})
	c, err := pgx.Connect(t.Context(), s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(t.Context(), `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, s.Name).Scan(&n); err != nil || n != 0 {
		t.Fatalf("schema %s left behind (%d, %v)", s.Name, n, err)
	}
}

func TestSchemaNamesFitAndDiffer(t *testing.T) {
	long := strings.Repeat("Very/Long Test-Name ", 10)
	a, b := pgtest.SchemaName(long), pgtest.SchemaName(long)
	if a == b || len(a) > 63 || !regexp.MustCompile(`^t_[a-z0-9_]+$`).MatchString(a) {
		t.Fatalf("schema names %q and %q", a, b)
	}
}

func TestWith(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u@h/db?sslmode=disable": "postgres://u@h/db?search_path=s&sslmode=disable",
		"host=h dbname=db":                  "host=h dbname=db search_path=s",
	} {
		if got := pgtest.With(in, "search_path", "s"); got != want {
			t.Errorf("With(%q) = %q, want %q", in, got, want)
		}
	}
}
