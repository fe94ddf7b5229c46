//go:build linux

package chaos

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSmallDiskFillAndFree(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "disk")
	d, err := MountSmallDisk(dir, 4<<20)
	if errors.Is(err, ErrNoSmallDisk) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			d.Close()
		}
	}()
	if !diskMounted(t, dir) {
		t.Fatalf("%s is not listed in /proc/self/mounts after MountSmallDisk", dir)
	}

	probe := filepath.Join(dir, "probe")
	data := bytes.Repeat([]byte{'x'}, 4096)
	if err := d.Fill(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(probe, data, 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing 4 KiB on the filled disk: err = %v, want ENOSPC", err)
	}
	if err := d.Free(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(probe, data, 0o644); err != nil {
		t.Fatalf("writing 4 KiB on the freed disk: %v", err)
	}
	// Filling again works with other files on the disk, too.
	if err := d.Fill(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "probe2"), data, 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing 4 KiB on the refilled disk: err = %v, want ENOSPC", err)
	}

	closed = true
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if diskMounted(t, dir) {
		t.Fatalf("%s is still listed in /proc/self/mounts after Close", dir)
	}
}

// diskMounted reports whether dir is a mount point in /proc/self/mounts.
func diskMounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}

// diskWriterEnv switches the test binary into the writer child of
// TestLimitFileSize; its value is the file to write.
const diskWriterEnv = "CMKD_CHAOS_TEST_WRITER_FILE"

// TestHelperWriter is not a test: it is the child process of
// TestLimitFileSize. For every line "N" on stdin it appends N bytes to the
// file and answers "ok SIZE", "efbig SIZE" or "err MESSAGE", SIZE being the
// file's size after the write.
func TestHelperWriter(t *testing.T) {
	name := os.Getenv(diskWriterEnv)
	if name == "" {
		t.Skip("only the child process of TestLimitFileSize")
	}
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Printf("err %v\n", err)
		os.Exit(2)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		n, err := strconv.Atoi(in.Text())
		if err != nil {
			fmt.Printf("err %v\n", err)
			continue
		}
		_, werr := f.Write(make([]byte, n))
		size := int64(-1)
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		switch {
		case werr == nil:
			fmt.Printf("ok %d\n", size)
		case errors.Is(werr, syscall.EFBIG):
			fmt.Printf("efbig %d\n", size)
		default:
			fmt.Printf("err %v\n", werr)
		}
	}
	os.Exit(0)
}

func TestLimitFileSize(t *testing.T) {
	file := filepath.Join(t.TempDir(), "growing")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
	// GORACE: a race-enabled child would otherwise linger a second at exit.
	cmd.Env = append(os.Environ(), diskWriterEnv+"="+file, "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	replies := make(chan string)
	go func() {
		defer close(replies)
		in := bufio.NewScanner(stdout)
		for in.Scan() {
			replies <- in.Text()
		}
	}()
	// write asks the child to append n bytes and returns its answer.
	write := func(n int) (verdict string, size int64) {
		t.Helper()
		if _, err := io.WriteString(stdin, strconv.Itoa(n)+"\n"); err != nil {
			t.Fatalf("child gone: %v", err)
		}
		select {
		case r, ok := <-replies:
			if !ok {
				t.Fatal("child exited without answering")
			}
			verdict, rest, _ := strings.Cut(r, " ")
			if verdict == "err" {
				t.Fatalf("child: %s", rest)
			}
			size, err := strconv.ParseInt(rest, 10, 64)
			if err != nil {
				t.Fatalf("child answered %q", r)
			}
			return verdict, size
		case <-time.After(10 * time.Second):
			t.Fatal("child did not answer within 10 s")
		}
		return "", 0
	}

	const chunk, limit = 16 << 10, 64 << 10
	if v, size := write(chunk); v != "ok" || size != chunk {
		t.Fatalf("first write before the limit: %s, size %d", v, size)
	}
	if err := LimitFileSize(cmd.Process.Pid, limit); err != nil {
		t.Fatal(err)
	}
	var size int64
	for i := 0; ; i++ {
		var v string
		v, size = write(chunk)
		if v == "efbig" {
			break
		}
		if size > limit || i > 2*limit/chunk {
			t.Fatalf("the file grew to %d bytes, beyond the limit of %d, without EFBIG", size, limit)
		}
	}
	if size != limit {
		t.Errorf("size at EFBIG = %d, want the limit %d", size, limit)
	}
	// The child survived SIGXFSZ and still fails to grow the file.
	if v, _ := write(1); v != "efbig" {
		t.Fatalf("a write at the limit answered %s, want efbig", v)
	}

	if err := LimitFileSize(cmd.Process.Pid, -1); err != nil {
		t.Fatal(err)
	}
	if v, size := write(chunk); v != "ok" || size != limit+chunk {
		t.Fatalf("write after lifting the limit: %s, size %d, want ok, %d", v, size, limit+chunk)
	}

	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
}
