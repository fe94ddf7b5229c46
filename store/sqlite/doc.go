// Package sqlite is the embedded store.Backend on modernc.org/sqlite (pure
// Go, no cgo). The database runs in WAL mode with a busy timeout and writes
// in short IMMEDIATE transactions, so several processes on one machine (the
// cmkd CLI and the worker) can share one file: a seal one of them writes is
// seen by the next query of every other.
package sqlite
