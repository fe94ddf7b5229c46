package eventgrid

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// route is a parsed request path: /topics/{topic}:publish or
// /topics/{topic}/eventsubscriptions/{sub}:{op}.
type route struct {
	topic, sub, op string
}

func parseRoute(escaped string) (route, bool) {
	rest, ok := strings.CutPrefix(escaped, "/topics/")
	if !ok {
		return route{}, false
	}
	var r route
	if topic, subPart, found := strings.Cut(rest, "/eventsubscriptions/"); found {
		r.topic = topic
		r.sub, r.op, ok = cutOp(subPart)
	} else {
		r.topic, r.op, ok = cutOp(rest)
		ok = ok && r.op == "publish"
	}
	if !ok || r.topic == "" || strings.Contains(r.topic, "/") || strings.Contains(r.sub, "/") {
		return route{}, false
	}
	var err1, err2 error
	r.topic, err1 = url.PathUnescape(r.topic)
	r.sub, err2 = url.PathUnescape(r.sub)
	return r, err1 == nil && err2 == nil
}

func cutOp(s string) (name, op string, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now()
	werr := s.serve(w, r)
	status := http.StatusOK
	if werr != nil {
		status = werr.status
		writeError(w, werr, now)
	}
	s.cfg.Logger.Debug("eventgrid request", slog.String("method", r.Method),
		slog.String("path", r.URL.Path), slog.Int("status", status))
}

// serve handles a request; a returned error is answered in the service's
// error format, nil means the answer was written.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) *wireError {
	if werr := s.authorize(r); werr != nil {
		return werr
	}
	rt, ok := parseRoute(r.URL.EscapedPath())
	if !ok {
		return notFound("Resource '%s' is not found", r.URL.Path)
	}
	if r.Method != http.MethodPost {
		return &wireError{http.StatusMethodNotAllowed, "MethodNotAllowed", "Method " + r.Method + " is not allowed"}
	}
	if r.URL.Query().Get("api-version") == "" {
		return badRequest("api-version query parameter is required")
	}
	switch rt.op {
	case "publish":
		return s.handlePublish(w, r, rt)
	case "receive":
		return s.handleReceive(w, r, rt)
	case opAcknowledge, opRelease, opReject, opRenewLock:
		return s.handleSettle(w, r, rt)
	}
	return notFound("Operation '%s' is not found", rt.op)
}

// authorize accepts the shared key in the form azcore's key credential
// policy sends it, or any bearer token when allowed.
func (s *Server) authorize(r *http.Request) *wireError {
	if s.cfg.Key == "" && !s.cfg.AllowBearer {
		return nil
	}
	h := r.Header.Get("Authorization")
	if key, ok := strings.CutPrefix(h, "SharedAccessKey "); ok && s.cfg.Key != "" && key == s.cfg.Key {
		return nil
	}
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok && s.cfg.AllowBearer && strings.TrimSpace(tok) != "" {
		return nil
	}
	return &wireError{http.StatusUnauthorized, codeUnauthorized, "The request is not authorized: missing or invalid credentials"}
}

func (s *Server) topicExists(topic string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.topics[topic]
	return ok
}

// lookup finds the subscription or says which part is unknown.
func (s *Server) lookup(rt route) (*subscription, *wireError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	subs, ok := s.topics[rt.topic]
	if !ok {
		return nil, notFound("Topic '%s' is not found", rt.topic)
	}
	q, ok := subs[rt.sub]
	if !ok {
		return nil, notFound("Event subscription '%s' is not found", rt.sub)
	}
	return q, nil
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *wireError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &wireError{http.StatusRequestEntityTooLarge, "PayloadTooLarge", "Request body exceeds the 1 MB limit"}
	case err != nil:
		return nil, badRequest("cannot read request body")
	}
	return body, nil
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request, rt route) *wireError {
	if !s.topicExists(rt.topic) {
		return notFound("Topic '%s' is not found", rt.topic)
	}
	body, werr := readBody(w, r, maxPublishBody)
	if werr != nil {
		return werr
	}
	evs, werr := decodePublish(body)
	if werr != nil {
		return werr
	}
	if !s.publish(rt.topic, evs) {
		return notFound("Topic '%s' is not found", rt.topic)
	}
	writeJSON(w, http.StatusOK, ctSettle, struct{}{})
	return nil
}

func (s *Server) handleSettle(w http.ResponseWriter, r *http.Request, rt route) *wireError {
	q, werr := s.lookup(rt)
	if werr != nil {
		return werr
	}
	var delay time.Duration
	if rt.op == opRelease {
		if delay, werr = releaseDelay(r.URL.Query()); werr != nil {
			return werr
		}
	}
	body, werr := readBody(w, r, maxSettleBody)
	if werr != nil {
		return werr
	}
	tokens, werr := decodeLockTokens(body)
	if werr != nil {
		return werr
	}
	s.mu.Lock()
	res := q.settle(rt.op, tokens, delay, s.cfg.Now())
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, ctSettle, res)
	return nil
}
