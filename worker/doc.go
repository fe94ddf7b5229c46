// Package worker is cmkd's runtime. It takes lifecycle events from the
// configured sources, turns each into "reconcile this key", serializes that
// work per key (coalescing duplicates in this process, and holding a lease
// in the store so that replicas never work on one key at once), re-probes
// every key in use on an interval, relays status events, and serves
// /healthz, /readyz and /metrics. The handlers package decides what to do;
// the worker decides when, and counts the results.
package worker
