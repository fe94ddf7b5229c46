//go:build linux

package chaos

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// MountSmallDisk mounts a tmpfs of size bytes on dir (created if missing).
// Where mounting is not allowed (not root, no CAP_SYS_ADMIN), it returns
// ErrNoSmallDisk wrapped with the reason.
func MountSmallDisk(dir string, size int64) (*SmallDisk, error) {
	if size <= 0 {
		return nil, fmt.Errorf("chaos: small disk size %d is not positive", size)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chaos: small disk mount point: %w", err)
	}
	err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size="+strconv.FormatInt(size, 10))
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENOSYS):
		return nil, fmt.Errorf("%w: mount tmpfs on %s: %v", ErrNoSmallDisk, dir, err)
	case err != nil:
		return nil, fmt.Errorf("chaos: mount tmpfs on %s: %w", dir, err)
	}
	return &SmallDisk{Dir: dir, Size: size}, nil
}

// Fill writes a filler file until the file system is full, leaving no free
// byte: it writes 1 MiB chunks, then ever smaller ones down to a single
// byte, until even that fails with ENOSPC, and then checks with statfs that
// no free block is left.
func (d *SmallDisk) Fill() error {
	f, err := os.OpenFile(d.filler(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("chaos: fill %s: %w", d.Dir, err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for chunk := len(buf); chunk > 0; {
		_, err := f.Write(buf[:chunk])
		switch {
		case err == nil:
		case errors.Is(err, unix.ENOSPC):
			chunk /= 2
		default:
			return fmt.Errorf("chaos: fill %s: %w", d.Dir, err)
		}
	}
	// Where the data is not written at once, the last blocks are only
	// allocated (and refused) on sync.
	if err := f.Sync(); err != nil && !errors.Is(err, unix.ENOSPC) {
		return fmt.Errorf("chaos: fill %s: %w", d.Dir, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(d.Dir, &st); err != nil {
		return fmt.Errorf("chaos: fill %s: statfs: %w", d.Dir, err)
	}
	if st.Bavail != 0 || st.Bfree != 0 {
		return fmt.Errorf("chaos: fill %s: %d blocks of %d bytes still free after filling", d.Dir, st.Bavail, st.Bsize)
	}
	return nil
}

// Close frees the disk and unmounts it, lazily (detached) if it is busy.
// The mount point stays.
func (d *SmallDisk) Close() error {
	ferr := d.Free()
	err := unix.Unmount(d.Dir, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(d.Dir, unix.MNT_DETACH)
	}
	if err != nil {
		return errors.Join(ferr, fmt.Errorf("chaos: unmount %s: %w", d.Dir, err))
	}
	return ferr
}

// LimitFileSize sets RLIMIT_FSIZE of another running process (prlimit(2)),
// so that its writes that grow a file beyond bytes fail with EFBIG: the
// emulation of a full disk where nothing can be mounted. Go programs ignore
// SIGXFSZ, so the write fails instead of killing the process. bytes < 0
// lifts the limit (RLIM_INFINITY).
//
// Only the soft limit is lowered, so the limit can be lifted again without
// privileges; lifting beyond the hard limit needs CAP_SYS_RESOURCE.
func LimitFileSize(pid int, bytes int64) error {
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, nil, &old); err != nil {
		return fmt.Errorf("chaos: read RLIMIT_FSIZE of process %d: %w", pid, err)
	}
	lim := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	if bytes >= 0 {
		lim = unix.Rlimit{Cur: uint64(bytes), Max: old.Max}
		if lim.Cur > lim.Max {
			lim.Max = lim.Cur
		}
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &lim, nil); err != nil {
		return fmt.Errorf("chaos: set RLIMIT_FSIZE of process %d to %d: %w", pid, bytes, err)
	}
	return nil
}
