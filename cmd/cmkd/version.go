package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// runVersion prints what the binary was built from, as the Go toolchain
// stamped it: an operator reporting a problem pastes this.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "version", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("version takes no arguments")
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		// Only a binary built without module support lacks build info.
		bi = &debug.BuildInfo{GoVersion: runtime.Version()}
	}
	_, err := io.WriteString(stdout, formatVersion(bi))
	return err
}

// formatVersion renders build info as "name: value" lines. The version is
// the main module's: a tag (v1.2.3), a pseudo-version that names the commit
// when go build ran in a git checkout between tags, or "(devel)" when the
// toolchain knew no better (-buildvcs=false, a source tarball). The revision
// comes from the VCS stamp, so it is "unknown" exactly when that is missing.
func formatVersion(bi *debug.BuildInfo) string {
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	vcs := map[string]string{}
	for _, s := range bi.Settings {
		vcs[s.Key] = s.Value
	}
	revision, modified, at := vcs["vcs.revision"], vcs["vcs.modified"], vcs["vcs.time"]
	if revision == "" {
		revision = "unknown (built without VCS information)"
		modified, at = "unknown", "unknown"
	}
	return fmt.Sprintf("version:  %s\nrevision: %s\ntime:     %s\nmodified: %s\ngo:       %s %s/%s\n",
		version, revision, at, modified, bi.GoVersion, runtime.GOOS, runtime.GOARCH)
}
