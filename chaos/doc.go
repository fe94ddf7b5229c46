// Package chaos is the fault-injection harness behind `make chaos`: it
// runs cmkd as real processes (`cmkd run`, the built binary) against the
// Key Vault and Event Grid emulators, an embedded nats-server and a real
// store — SQLite with one replica, PostgreSQL with three — keeps a put/get
// workload running, injects faults drawn from a seeded random sequence
// (kill -9 at named points and at random instants, Key Vault errors,
// throttling, latency, outages, revocation and key state changes, NATS
// outages, store restarts, locks and full disks, forged, duplicated,
// reordered, malformed and flooding events), and after the run checks the
// invariants a user relies on: nothing acknowledged is lost, no DEK is
// lost, no seal is false or missed, every status event arrives once and in
// order, no plaintext DEK escapes, malformed events are dead-lettered, and
// no replica exits unless killed.
//
// Every decision comes from the seed, which the report prints; the same
// seed replays the same sequence of faults (the instants at which
// processes die are as reproducible as the machine's timing allows).
package chaos
