package chaos

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNoSmallDisk is returned (wrapped with the reason) by MountSmallDisk
// where no file system can be mounted, e.g. without root or CAP_SYS_ADMIN.
var ErrNoSmallDisk = errors.New("chaos: no small file system can be mounted here")

// SmallDisk is a directory on a file system of its own with a fixed size,
// which the harness fills to make writes under it fail with ENOSPC, then
// frees.
type SmallDisk struct {
	Dir  string // mount point
	Size int64  // size of the file system in bytes
}

// diskFillerName is the file Fill writes and Free removes.
const diskFillerName = ".chaos-filler"

func (d *SmallDisk) filler() string { return filepath.Join(d.Dir, diskFillerName) }

// Free removes the filler written by Fill. Freeing a disk that is not
// filled is not an error.
func (d *SmallDisk) Free() error {
	if err := os.Remove(d.filler()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("chaos: free %s: %w", d.Dir, err)
	}
	return nil
}
