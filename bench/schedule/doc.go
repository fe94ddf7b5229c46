// Package schedule benchmarks the worker's per-key scheduler: rewraps in
// several vaults at once, each held to its own vault's limit and none
// waiting for another (multivault), and thousands of keys in one vault
// probed within the vault's probe budget while a disabled key is still
// sealed within one effective interval, with a rewrap in the same vault
// running at full speed (probeload). Every speed is a ratio against a
// baseline or a limit measured or set in the same run.
package schedule
