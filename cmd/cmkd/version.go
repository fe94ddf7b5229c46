package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
)

// version and revision are stamped with -ldflags -X by builds that copy no
// .git, so that the toolchain has nothing to stamp (the image's: see
// deploy/Dockerfile). They are used only where build info has nothing.
var version, revision string

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
	_, err := io.WriteString(stdout, formatVersion(withStamp(bi, version, revision)))
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
	}
	if at == "" {
		at = "unknown"
	}
	if modified == "" {
		modified = "unknown"
	}
	return fmt.Sprintf("version:  %s\nrevision: %s\ntime:     %s\nmodified: %s\ngo:       %s %s/%s\n",
		version, revision, at, modified, bi.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// withStamp fills in what bi lacks from the -X stamps.
func withStamp(bi *debug.BuildInfo, version, revision string) *debug.BuildInfo {
	out := *bi
	if version != "" && (out.Main.Version == "" || out.Main.Version == "(devel)") {
		out.Main.Version = version
	}
	if revision != "" && !slices.ContainsFunc(out.Settings, func(s debug.BuildSetting) bool { return s.Key == "vcs.revision" }) {
		out.Settings = append(slices.Clone(out.Settings), debug.BuildSetting{Key: "vcs.revision", Value: revision})
	}
	return &out
}
