// Package linttest holds the test of `make lint` itself: a tiny module
// with one deliberate defect of each kind the target promises to catch
// (gofmt, go vet, staticcheck, gosec) must fail it, at the step and with
// the finding of that kind, and the same module without defects must pass.
// It has no code of its own.
package linttest
