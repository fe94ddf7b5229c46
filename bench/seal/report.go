package seal

import (
	"fmt"
	"runtime"
	"time"

	"github.com/cmkd-io/cmkd/bench"
)

// Metric names the test checks.
const (
	mProbeInterval = "probe interval (baseline)"
	mDisableProbe  = "disable → worker's probe saw disabled"
	mReadP50       = "probe → tenant's last successful read, p50"
	mReadP99       = "probe → tenant's last successful read, p99"
	mReadMax       = "probe → last successful read anywhere (max)"
	mFirstSeal     = "probe → first tenant's seal committed"
	mLastSeal      = "probe → last tenant's seal committed"
	mSealRate      = "seals committed per second"
	mAfterSeal     = "latest read completed after its tenant's seal"
	mBroadcast     = "disable → all seal broadcasts received"
	mOnStream      = "disable → all sealed events on NATS"
	mStreamRatio   = "disable → sealed on NATS ÷ (probe interval + 1 s)"
	mRate1         = "reads/s, 1 reader (baseline)"
	mRateN         = "reads/s, all readers"
	mRateRatio     = "reads/s, all readers ÷ 1 reader"
	mRefused       = "reads refused after the seal"
)

func report(sz sizes, tl timeline) *bench.Result {
	r := &bench.Result{Scenario: name, Title: title, Setup: fmt.Sprintf(
		"%d tenants on one RSA-2048 key, one DEK and %d × %d B records each, every DEK cached; "+
			"%d goroutines call Store.Get on random records in a tight loop (GOMAXPROCS %d) while the worker "+
			"probes every %s, broadcasts seals and relays status events to embedded JetStream.",
		sz.tenants, sz.records, recordSize, sz.readers, runtime.GOMAXPROCS(0), sz.probe)}
	lags, seals := since(tl.lastRead, tl.probe), since(tl.sealed, tl.probe)
	readMax, firstSeal, lastSeal := bench.Percentile(lags, 100), bench.Percentile(seals, 0), bench.Percentile(seals, 100)
	toStream := tl.onStream - tl.disabled

	r.Add(mProbeInterval, ms(sz.probe), "ms")
	r.Add(mDisableProbe, ms(tl.probe-tl.disabled), "ms")
	r.Add(mReadP50, ms(bench.Percentile(lags, 50)), "ms")
	r.Add(mReadP99, ms(bench.Percentile(lags, 99)), "ms")
	r.Add(mReadMax, ms(readMax), "ms")
	r.Add(mFirstSeal, ms(firstSeal), "ms")
	r.Add(mLastSeal, ms(lastSeal), "ms")
	r.Add(mSealRate, bench.PerSecond(float64(len(seals)-1), lastSeal-firstSeal), "tenants/s")
	r.Add(mAfterSeal, ms(afterSeal(tl)), "ms")
	r.Add(mBroadcast, ms(tl.broadcast-tl.disabled), "ms")
	r.Add(mOnStream, ms(toStream), "ms")
	ratio := r.Ratio(mStreamRatio, toStream.Seconds(), (sz.probe + sealedSlop).Seconds())
	r.Add(mRate1, tl.rate1, "reads/s")
	r.Add(mRateN, tl.rateN, "reads/s")
	r.Ratio(mRateRatio, tl.rateN, tl.rate1)
	r.Add(mRefused, float64(tl.refused), "reads")

	sealing := fmt.Sprintf("the Reconciler seals a key's tenants in transactions of up to 1,000; the %d seals "+
		"committed %.0f ms after the probe (%.0f ms from the first to the last) with %d readers competing for %d CPUs",
		len(seals), ms(lastSeal), ms(lastSeal-firstSeal), sz.readers, runtime.GOMAXPROCS(0))
	r.Goal("no read succeeds later than 100 ms after the probe", readMax <= readGoal,
		fmt.Sprintf("last successful read %.1f ms after the probe (p50 over tenants %.1f ms)", ms(readMax), ms(bench.Percentile(lags, 50))),
		sealing+"; a tenant's reads stop when its own seal commits")
	r.Goal("disable → sealed on NATS ≤ one probe interval + 1 s", ratio <= 1,
		fmt.Sprintf("%.0f ms with a %s probe interval (%.2f× the limit)", ms(toStream), sz.probe, ratio),
		fmt.Sprintf("disable → probe %.0f ms, probe → last seal %.0f ms, last seal → last event on the stream %.0f ms: %s",
			ms(tl.probe-tl.disabled), ms(lastSeal), ms(tl.onStream-tl.probe-lastSeal), sealing))
	notes(r, sz)
	return r
}

func notes(r *bench.Result, sz sizes) {
	r.Note("\"The worker's probe saw disabled\" is when Key Vault's refusal to unwrap the in-use key version reached " +
		"the worker's kek client (its Debug log), the proof the Reconciler seals on; the GET of the key a moment " +
		"before logs nothing. Each tenant's seal time is the store's \"tenant sealed\" log, written once the seal is committed.")
	r.Note("The p50/p99 are over the %d tenants: for each, its last successful read (completion time) minus the probe; "+
		"negative means reads of that tenant had stopped before the probe. The disable instant is taken before "+
		"the UpdateKey request is sent, which can only lengthen disable → … times.", sz.tenants)
	r.Note("\"Sealed on NATS\" is the last tenant's sealed CloudEvent read back from the JetStream status stream by " +
		"a separate connection; the seal broadcasts (core NATS, cmkd.control.seal.<tenant>) are timed the same way.")
}

// since returns each instant minus origin.
func since(at map[string]time.Duration, origin time.Duration) []time.Duration {
	out := make([]time.Duration, 0, len(at))
	for _, t := range at {
		out = append(out, t-origin)
	}
	return out
}

// afterSeal is the longest time any tenant's last successful read completed
// after its seal was committed (a read that had already passed the state
// check); negative when every read finished before its tenant's seal.
func afterSeal(tl timeline) time.Duration {
	var d []time.Duration
	for t, sealed := range tl.sealed {
		if read := tl.lastRead[t]; read > 0 {
			d = append(d, read-sealed)
		}
	}
	return bench.Percentile(d, 100)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
