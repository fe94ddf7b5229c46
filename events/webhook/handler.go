package webhook

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/internal/egwebhook"
)

// endpoint answers Event Grid's deliveries, handing their events to handle
// (or enqueueing them, in queue mode).
type endpoint struct {
	*Source
	handle events.Handler
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e.cfg.Path != "" && r.URL.Path != e.cfg.Path {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodOptions:
		e.abuseProtection(w, r)
	case http.MethodPost:
		e.post(w, r)
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		e.fail(w, http.StatusMethodNotAllowed, outcomeBadRequest, "method not allowed")
	}
}

// abuseProtection answers the CloudEvents webhook handshake. It needs no
// authentication: it reveals nothing and grants nothing, since every
// delivery is authenticated on its own.
func (e *endpoint) abuseProtection(w http.ResponseWriter, r *http.Request) {
	if !egwebhook.AllowOrigin(w, r) {
		e.fail(w, http.StatusBadRequest, outcomeBadRequest, "missing WebHook-Request-Origin")
		return
	}
	e.requests.WithLabelValues(outcomeHandshake).Inc()
}

func (e *endpoint) post(w http.ResponseWriter, r *http.Request) {
	if err := e.auth.check(r); err != nil {
		if errors.Is(err, errKeysUnavailable) {
			// Event Grid never retries a 401: the delivery would be lost
			// for an outage of Entra's key endpoint.
			e.log.Error("webhook: cannot check bearer token", slog.String("remote", r.RemoteAddr), slog.Any("err", err))
			w.Header().Set("Retry-After", strconv.Itoa(int(failedBackoff/time.Second)))
			e.fail(w, http.StatusServiceUnavailable, outcomeRetry, "try again later")
			return
		}
		e.log.Warn("webhook: unauthenticated request", slog.String("remote", r.RemoteAddr), slog.Any("err", err))
		if e.auth.bearer != nil {
			w.Header().Set("WWW-Authenticate", "Bearer")
		}
		e.fail(w, http.StatusUnauthorized, outcomeUnauthorized, errUnauthorized.Error())
		return
	}
	body, ok := e.readBody(w, r)
	if !ok {
		return
	}
	if code, ok := egwebhook.ValidationCode(body); ok {
		e.requests.WithLabelValues(outcomeHandshake).Inc()
		egwebhook.AnswerValidation(w, code)
		return
	}
	res, err := e.cfg.Decoder.Decode(body)
	if err != nil {
		// 400: Event Grid does not retry it and dead-letters the delivery.
		e.fail(w, http.StatusBadRequest, outcomeMalformed, err.Error())
		return
	}
	if e.cfg.Enqueue != nil {
		e.enqueue(w, r, body, res)
		return
	}
	e.deliver(w, r, res)
}

func (e *endpoint) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > e.cfg.MaxBody {
		e.fail(w, http.StatusRequestEntityTooLarge, outcomeTooLarge, fmt.Sprintf("body over %d bytes", e.cfg.MaxBody))
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.cfg.MaxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		e.fail(w, http.StatusRequestEntityTooLarge, outcomeTooLarge, fmt.Sprintf("body over %d bytes", e.cfg.MaxBody))
		return nil, false
	case err != nil:
		e.fail(w, http.StatusBadRequest, outcomeBadRequest, "read body")
		return nil, false
	}
	return body, true
}

func (e *endpoint) enqueue(w http.ResponseWriter, r *http.Request, body []byte, res events.Result) {
	if len(res.Events) > 0 {
		if err := e.cfg.Enqueue(r.Context(), body); err != nil {
			e.log.Error("webhook: enqueue", slog.Any("err", err))
			e.fail(w, http.StatusServiceUnavailable, outcomeRetry, "enqueue failed")
			return
		}
	}
	e.requests.WithLabelValues(outcomeHandled).Inc()
	w.WriteHeader(http.StatusOK)
}

// deliver hands every event to the handler and answers as events.Settle
// says. Any retryable failure makes the whole delivery retry (handlers are
// idempotent); a permanent one, with nothing to retry, rejects it.
func (e *endpoint) deliver(w http.ResponseWriter, r *http.Request, res events.Result) {
	var retry, reject error
	var delay time.Duration
	for _, ev := range res.Events {
		err := e.handle(r.Context(), ev)
		switch verdict, asked := events.Settle(err); verdict {
		case events.DeadLetter:
			reject = fmt.Errorf("event %s: %w", ev.ID, err)
		case events.Retry:
			retry, delay = fmt.Errorf("event %s: %w", ev.ID, err), max(delay, asked)
		}
	}
	switch {
	case retry != nil:
		if delay > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((delay+time.Second-1)/time.Second)))
		}
		e.fail(w, http.StatusServiceUnavailable, outcomeRetry, "try again later")
	case reject != nil:
		e.fail(w, http.StatusBadRequest, outcomeRejected, "event rejected: it cannot be handled")
	default:
		e.requests.WithLabelValues(outcomeHandled).Inc()
		w.WriteHeader(http.StatusOK)
	}
}

func (e *endpoint) fail(w http.ResponseWriter, status int, outcome, msg string) {
	e.requests.WithLabelValues(outcome).Inc()
	http.Error(w, msg, status)
}
