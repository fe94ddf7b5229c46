package schedule

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/cmkd-io/cmkd/bench"
)

// cpuSample is this process's and the whole machine's CPU time at one
// instant. The machine may be shared: a phase that falls short of a limit
// because other processes held the CPUs should say so.
type cpuSample struct {
	at          time.Time
	process     time.Duration
	busy, total uint64 // jiffies over all CPUs (/proc/stat); 0 where missing
}

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now(), process: bench.CPUTime()}
	s.busy, s.total = machineJiffies()
	return s
}

// cpuUse is what the CPUs did between two samples, each a fraction of all
// cores: this process (cmkd and the in-process emulators), and the machine
// (0 where /proc/stat is missing); time is this process's CPU time.
type cpuUse struct {
	process, machine float64
	time             time.Duration
}

func (a cpuSample) until(b cpuSample) cpuUse {
	u := cpuUse{time: b.process - a.process}
	if wall := b.at.Sub(a.at); wall > 0 {
		u.process = (b.process - a.process).Seconds() / wall.Seconds() / float64(runtime.NumCPU())
	}
	if b.total > a.total {
		u.machine = float64(b.busy-a.busy) / float64(b.total-a.total)
	}
	return u
}

// others is the share of all cores that other processes used.
func (u cpuUse) others() float64 { return max(0, u.machine-u.process) }

// machineJiffies reads the first line of /proc/stat: the time all CPUs were
// busy, and in total (idle and iowait are not busy).
func machineJiffies() (busy, total uint64) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0
	}
	// user nice system idle iowait irq softirq steal; guest time is
	// counted in user already.
	for i, v := range fields[1:min(len(fields), 9)] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}
