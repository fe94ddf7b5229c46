package linttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// clean is a package every step of `make lint` accepts; each case adds one
// file with one defect that only its own step (and the ones after it) can
// see, because make stops at the first step that fails.
const clean = `// Package tiny is linted by the test of make lint.
package tiny

import "fmt"

// Greet says hello.
func Greet(name string) string { return fmt.Sprintf("hello, %s", name) }
`

var cases = []struct {
	name string
	// defect is a second file of the package; empty for the control.
	defect string
	// step is the make lint command that must fail, want what it says.
	step, want string
}{
	{name: "clean"},
	{
		name:   "gofmt",
		defect: "package tiny\n\nfunc Sum(a, b int) int {\nreturn a+b\n}\n",
		step:   "gofmt", want: "gofmt would change:\ndefect.go",
	},
	{
		name: "vet",
		defect: "package tiny\n\nimport \"fmt\"\n\n// Count prints n.\n" +
			"func Count(n string) { fmt.Printf(\"%d\\n\", n) }\n",
		step: "go vet", want: "fmt.Printf format %d has arg n of wrong type string",
	},
	{
		name: "staticcheck",
		defect: "package tiny\n\nimport \"strings\"\n\n// Dash replaces no space at all.\n" +
			"func Dash(s string) string { return strings.Replace(s, \" \", \"-\", 0) }\n",
		step: "staticcheck", want: "SA1018",
	},
	{
		name: "gosec",
		defect: "package tiny\n\nimport \"crypto/md5\"\n\n// Sum hashes b.\n" +
			"func Sum(b []byte) [16]byte { return md5.Sum(b) }\n",
		step: "gosec", want: "G401",
	},
}

// steps are the commands of the lint target in the order it runs them.
var steps = []string{"gofmt", "go vet", "staticcheck", "gosec"}

// TestLintCatchesEachKindOfDefect runs the repository's `make lint` in a
// tiny module of its own, once per kind of defect. The linters come from
// the module cache, never the network: it skips when `make lint` has not yet
// downloaded them, rather than download them inside `make test`.
func TestLintCatchesEachKindOfDefect(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make lint five times")
	}
	for _, tool := range []string{"make", "git", "go", "gofmt"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not on PATH", tool)
		}
	}
	_, here, _, _ := runtime.Caller(0)
	makefile := filepath.Join(filepath.Dir(here), "..", "..", "Makefile")
	if _, err := os.Stat(makefile); err != nil {
		t.Fatal(err)
	}
	// The module cache as a proxy: go run module@version also asks for the
	// module's latest version (to warn of deprecation), which GOPROXY=off
	// refuses even when the module is cached.
	modcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	offline := "file://" + filepath.ToSlash(filepath.Join(strings.TrimSpace(string(modcache)), "cache", "download"))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{"go.mod": "module example.com/tiny\n\ngo 1.22\n", "tiny.go": clean}
			if c.defect != "" {
				files["defect.go"] = c.defect
			}
			for name, body := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			// The gofmt step lints the files git knows.
			run(t, dir, "git", "init", "-q")
			run(t, dir, "git", "add", ".")

			cmd := exec.Command("make", "-f", makefile, "lint")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GOPROXY="+offline, "GOSUMDB=off", "GOWORK=off")
			out, err := cmd.CombinedOutput()
			if strings.Contains(string(out), offline) {
				t.Skipf("the linters are not in the module cache: run make lint once\n%s", out)
			}
			t.Logf("make lint:\n%s", out) // with -v: what each tool says
			if c.defect == "" {
				if err != nil {
					t.Fatalf("make lint failed on a module without defects: %v\n%s", err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("make lint passed a %s defect:\n%s", c.name, out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Errorf("make lint failed without the %s finding %q:\n%s", c.name, c.want, out)
			}
			// It failed at its own step: every step before it ran, none after.
			for i, s := range steps {
				ran := strings.Contains(string(out), s)
				if c.step == s {
					for _, later := range steps[i+1:] {
						if strings.Contains(string(out), later) {
							t.Errorf("make lint went on to %s after the %s step failed:\n%s", later, s, out)
						}
					}
					break
				}
				if s != "gofmt" && !ran { // the gofmt step is silent when it passes
					t.Errorf("make lint did not run %s before %s:\n%s", s, c.step, out)
				}
			}
		})
	}
}

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}
