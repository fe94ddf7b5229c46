package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// entry is one thing that happened in a run: a fault, a kill, a restart,
// an operation of the workload, a status event. Subjects are what it is
// about (key URLs, tenant ids, record names), for cutting a history down
// to what one failure involves.
type entry struct {
	At       time.Time
	What     string
	Subjects []string
}

// history is a run's entries in the order they happened.
type history struct {
	mu      sync.Mutex
	start   time.Time
	entries []entry
	live    io.Writer // progress, nil for none
}

func newHistory(live io.Writer) *history {
	return &history{start: time.Now(), live: live}
}

// add records what happened, about subjects; faults and kills also go to
// the progress output.
func (h *history) add(what string, subjects ...string) {
	h.addAt(time.Now(), what, subjects...)
}

func (h *history) addAt(at time.Time, what string, subjects ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.entries = append(h.entries, entry{At: at, What: what, Subjects: subjects})
}

// note records a step of the harness itself and prints it.
func (h *history) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.add(msg)
	h.print(msg)
}

// print prints msg without recording it: a finding about the history is
// not part of it.
func (h *history) print(msg string) {
	if h.live != nil {
		fmt.Fprintf(h.live, "%7.1fs  %s\n", time.Since(h.start).Seconds(), msg)
	}
}

// about returns the entries that involve any of subjects, and every entry
// about nothing in particular (faults that hit everything: a NATS outage,
// a kill), between from and to, in time order: the shortest history that
// shows what happened to those subjects.
func (h *history) about(from, to time.Time, subjects ...string) []entry {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []entry
	for _, e := range h.entries {
		if e.At.Before(from) || e.At.After(to) {
			continue
		}
		if len(e.Subjects) == 0 || overlaps(e.Subjects, subjects) {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

func overlaps(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// format writes entries with times relative to the run's start.
func (h *history) format(es []entry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "  %8.3fs  %s\n", e.At.Sub(h.start).Seconds(), e.What)
	}
	return b.String()
}
