package main

import (
	"debug/elf"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/internal/eventually"
)

// imageUID is the distroless nonroot user the image and the chart run as.
const imageUID = 65532

// TestDeployImageDockerfile: the Dockerfile builds without cgo onto
// distroless static, runs as the nonroot user and starts `cmkd run`; no
// docker daemon is needed to read that.
func TestDeployImageDockerfile(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^RUN CGO_ENABLED=0 go build .*-X main\.version=\$\{VERSION\}.* \./cmd/cmkd$`),
		regexp.MustCompile(`(?m)^FROM gcr\.io/distroless/static[^ ]*:nonroot$`),
		regexp.MustCompile(`(?m)^USER ` + strconv.Itoa(imageUID) + `:` + strconv.Itoa(imageUID) + `$`),
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/cmkd"\]$`),
		regexp.MustCompile(`(?m)^CMD \["run", `),
		regexp.MustCompile(`org\.opencontainers\.image\.source=`),
	} {
		if !want.MatchString(df) {
			t.Errorf("deploy/Dockerfile lacks a line matching %s", want)
		}
	}
}

// TestDeployImageBinary builds cmkd as the Dockerfile does (CGO_ENABLED=0),
// checks the result is static (no interpreter, no shared library: it runs
// on distroless static), and runs it as the image's user with only its data
// directory writable to it: it starts, creates its database there, and
// answers the chart's probes.
func TestDeployImageBinary(t *testing.T) {
	dir := t.TempDir()
	// The unprivileged user must reach the binary: open the test's
	// directory and its parent (both 0700) for traversal.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil { // #nosec G302 -- a test's own temporary directory
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "cmkd")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a dynamic loader: it would not start on distroless static")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v (%v)", libs, err)
	}
	f.Close()

	if os.Geteuid() != 0 {
		t.Skip("running as another user needs root; the static check passed")
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, imageUID, imageUID); err != nil {
		t.Fatal(err)
	}
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "cmkd.yaml")
	cfg := fmt.Sprintf("store:\n  driver: sqlite\n  dsn: %s\nkeyvault:\n  credential: static\n  token: unused\nhttp:\n  listen: %s\n",
		filepath.Join(data, "cmkd.db"), addr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil { // #nosec G306 -- no secret in it
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Dir = data
	cmd.Env = []string{"HOME=" + data, "TMPDIR=" + data}
	dieWithTest(cmd)
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: imageUID, Gid: imageUID}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	for _, path := range []string{"/healthz", "/readyz"} {
		eventually.NoError(t, 30*time.Second, "cmkd as uid 65532 to answer "+path, func() (bool, error) {
			select {
			case <-exited:
				return false, fmt.Errorf("cmkd exited:\n%s", stderr.String())
			default:
			}
			return httpStatus("http://"+addr+path) == http.StatusOK, nil
		})
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^Uid:\s+65532\s+65532\s+65532\s+65532$`).Match(status) {
		t.Errorf("cmkd runs as %s", regexp.MustCompile(`(?m)^Uid:.*$`).Find(status))
	}
	st, err := os.Stat(filepath.Join(data, "cmkd.db"))
	if err != nil {
		t.Fatalf("no database in the data directory: %v", err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || sys.Uid != imageUID {
		t.Errorf("the database is not owned by %d", imageUID)
	}
	if strings.Contains(stderr.String(), "permission denied") {
		t.Errorf("cmkd hit a permission error:\n%s", stderr.String())
	}
}
