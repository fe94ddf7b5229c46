package eventgrid

import (
	"net/http"
	"time"
)

func (s *Server) handleReceive(w http.ResponseWriter, r *http.Request, rt route) *wireError {
	q, werr := s.lookup(rt)
	if werr != nil {
		return werr
	}
	maxEvents, maxWait, werr := receiveParams(r.URL.Query())
	if werr != nil {
		return werr
	}
	got := s.longPoll(r, q, maxEvents, maxWait)
	writeJSON(w, http.StatusOK, ctReceive, receiveResult{Value: got})
	return nil
}

// longPoll answers as soon as at least one event is available, or empty when
// maxWait passes, the client goes away or the server closes.
func (s *Server) longPoll(r *http.Request, q *subscription, maxEvents int, maxWait time.Duration) []receiveDetail {
	deadline := time.NewTimer(maxWait)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		now := s.cfg.Now()
		q.sweep(now)
		got := q.take(now, maxEvents)
		next := q.nextChange(now)
		changed := q.changed
		s.mu.Unlock()
		if len(got) > 0 {
			return got
		}
		if !s.wait(r, changed, next.Sub(now), deadline.C) {
			return []receiveDetail{}
		}
	}
}

// wait blocks until the queue changes or the next lock expiry or delayed
// release is due (untilNext > 0). It reports false when polling must end.
func (s *Server) wait(r *http.Request, changed <-chan struct{}, untilNext time.Duration, deadline <-chan time.Time) bool {
	var wake <-chan time.Time
	if untilNext > 0 {
		t := time.NewTimer(untilNext)
		defer t.Stop()
		wake = t.C
	}
	select {
	case <-changed:
	case <-wake:
	case <-deadline:
		return false
	case <-r.Context().Done():
		return false
	case <-s.done:
		return false
	}
	return true
}
