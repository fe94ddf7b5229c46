// Package atomicfile replaces files whole, for the emulators' state, CA
// and dead-letter files.
package atomicfile

import (
	"os"
	"path/filepath"
)

// WriteFile replaces path with data so that a reader, or a restart
// after kill -9 or a power cut, sees either the old file or the new one,
// never a torn mix: write a temporary file in the same directory, fsync it,
// rename it over path, and fsync the directory so the rename is durable.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if err := writeSynced(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// writeSynced sets perm before any byte is written, so private material is
// never readable by others, not even briefly.
func writeSynced(f *os.File, data []byte, perm os.FileMode) error {
	err := f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir) // #nosec G304 -- the directory of the emulator's own state file
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
