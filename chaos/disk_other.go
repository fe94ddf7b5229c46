//go:build !linux

package chaos

import (
	"errors"
	"fmt"
	"runtime"
)

// MountSmallDisk mounts a tmpfs of size bytes on dir; only on Linux. Here it
// returns ErrNoSmallDisk.
func MountSmallDisk(dir string, size int64) (*SmallDisk, error) {
	return nil, fmt.Errorf("%w: tmpfs mounts are implemented on Linux only, not %s", ErrNoSmallDisk, runtime.GOOS)
}

// Fill fills the disk; only on Linux.
func (d *SmallDisk) Fill() error {
	return fmt.Errorf("chaos: filling a small disk is implemented on Linux only, not %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// Close frees and unmounts the disk; only on Linux.
func (d *SmallDisk) Close() error {
	return fmt.Errorf("chaos: unmounting a small disk is implemented on Linux only, not %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// LimitFileSize sets RLIMIT_FSIZE of another process; only on Linux.
func LimitFileSize(pid int, bytes int64) error {
	return fmt.Errorf("chaos: prlimit is implemented on Linux only, not %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
