package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// versionFields runs `cmkd version` from bin and returns its name: value lines.
func versionFields(t *testing.T, bin string) map[string]string {
	t.Helper()
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("cmkd version: %v\n%s", err, out)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("line %q is not name: value\n%s", line, out)
		}
		fields[name] = strings.TrimSpace(value)
	}
	return fields
}

// A binary built in a git checkout names the commit it was built from:
// that is what an operator's bug report needs.
func TestVersionNamesTheCommitOfACheckout(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary a second time")
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout (or no git): %v", err)
	}
	// go build recognises a checkout by its .git directory only: in a
	// linked worktree (.git is a file) it stamps nothing, or the revision
	// of a checkout enclosing the worktree (golang/go#58218).
	if fi, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || !fi.IsDir() {
		t.Skip("a linked git worktree: go build cannot stamp its revision (golang/go#58218); run this test in a clone")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	rev := strings.TrimSpace(string(head))
	// -buildvcs=true, not the default auto: GOFLAGS=-buildvcs=false in the
	// environment must not make this test pass vacuously, and a git that
	// fails must fail it.
	bin := filepath.Join(t.TempDir(), "cmkd")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f := versionFields(t, bin)
	if f["revision"] != rev {
		t.Errorf("revision %q, want HEAD %s", f["revision"], rev)
	}
	// Between tags the toolchain makes a pseudo-version naming the commit;
	// on a tag, the tag.
	if v := f["version"]; v == "(devel)" || !strings.HasPrefix(v, "v") {
		t.Errorf("version %q, want a tag or a pseudo-version", v)
	} else if !strings.Contains(v, rev[:12]) {
		tag, err := exec.Command("git", "tag", "--points-at", "HEAD").Output()
		if err != nil || !strings.Contains(string(tag), strings.TrimSuffix(v, "+dirty")) {
			t.Errorf("version %q names neither commit %s nor a tag on it (%q)", v, rev[:12], tag)
		}
	}
	if m := f["modified"]; m != "true" && m != "false" {
		t.Errorf("modified %q, want true or false", m)
	}
	if !strings.HasPrefix(f["time"], "20") {
		t.Errorf("time %q, want the commit time", f["time"])
	}
	if !strings.HasPrefix(f["go"], "go1.") {
		t.Errorf("go %q", f["go"])
	}
}

// Built without VCS information (a source tarball, -buildvcs=false) the
// binary says so instead of printing empty fields.
func TestVersionWithoutVCSInformation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary a second time")
	}
	bin := filepath.Join(t.TempDir(), "cmkd")
	if out, err := exec.Command("go", "build", "-buildvcs=false", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f := versionFields(t, bin)
	if f["version"] != "(devel)" || !strings.HasPrefix(f["revision"], "unknown") || f["modified"] != "unknown" {
		t.Errorf("got %v, want version (devel) and an unknown revision", f)
	}
	if !strings.HasPrefix(f["go"], runtime.Version()) {
		t.Errorf("go %q, want %s", f["go"], runtime.Version())
	}
}

func TestFormatVersion(t *testing.T) {
	got := formatVersion(&debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/cmkd-io/cmkd", Version: "v0.2.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-11-29T12:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	})
	for _, want := range []string{
		"version:  v0.2.0\n", "revision: 0123456789abcdef0123456789abcdef01234567\n",
		"time:     2026-11-29T12:00:00Z\n", "modified: true\n", "go:       go1.26.0 " + runtime.GOOS + "/" + runtime.GOARCH + "\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if got := formatVersion(&debug.BuildInfo{GoVersion: "go1.26.0"}); !strings.Contains(got, "version:  (devel)\n") ||
		!strings.Contains(got, "revision: unknown") {
		t.Errorf("without build settings:\n%s", got)
	}
}

func TestVersionTakesNoArguments(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"version", "extra"}, &stdout, &stderr); code != exitUsage {
		t.Errorf("exit %d, want %d (usage); stderr %s", code, exitUsage, stderr.String())
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"version"}, &stdout, &stderr); code != exitOK ||
		!strings.Contains(stdout.String(), "go:       "+runtime.Version()) {
		t.Errorf("exit %d, output %q", code, stdout.String())
	}
}

// A build that copies no .git (the image) stamps version and revision with
// -ldflags -X; they fill in only what the toolchain left out.
func TestVersionStampFillsWhatBuildInfoLacks(t *testing.T) {
	devel := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}
	got := formatVersion(withStamp(devel, "v1.2.3", "0123abc"))
	for _, want := range []string{"version:  v1.2.3\n", "revision: 0123abc\n", "time:     unknown\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("stamped devel build lacks %q:\n%s", want, got)
		}
	}
	stamped := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.2.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "ffff"}}}
	got = formatVersion(withStamp(stamped, "dev", "0000"))
	if !strings.Contains(got, "version:  v0.2.0\n") || !strings.Contains(got, "revision: ffff\n") {
		t.Errorf("the -X stamp overrode the toolchain's:\n%s", got)
	}
}
