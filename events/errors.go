package events

import (
	"errors"
	"fmt"
	"time"
)

// ErrMalformed is wrapped by every decode error: the delivery can never be
// handled and belongs in a dead-letter queue.
var ErrMalformed = errors.New("malformed event")

// PermanentError marks a failure that retrying cannot fix.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that sources dead-letter the delivery instead of
// retrying it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// TransientError asks for redelivery after Delay (zero: the source's backoff).
type TransientError struct {
	Err   error
	Delay time.Duration
}

func (e *TransientError) Error() string {
	return fmt.Sprintf("transient (retry in %s): %v", e.Delay, e.Err)
}
func (e *TransientError) Unwrap() error { return e.Err }

// Transient wraps err with a redelivery delay.
func Transient(err error, delay time.Duration) error {
	if err == nil {
		return nil
	}
	return &TransientError{Err: err, Delay: delay}
}

// IsPermanent reports whether err must not be retried: it is, or wraps, a
// PermanentError or ErrMalformed.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p) || errors.Is(err, ErrMalformed)
}

// RetryDelay returns the delay a TransientError in err's chain asks for, and
// whether there was one.
func RetryDelay(err error) (time.Duration, bool) {
	var t *TransientError
	if errors.As(err, &t) {
		return t.Delay, true
	}
	return 0, false
}

// Verdict is what a source does with a delivery once its handler returned.
type Verdict int

// Verdicts.
const (
	// Ack settles the delivery: it was handled, or there was nothing to do.
	Ack Verdict = iota
	// Retry has the delivery come again later.
	Retry
	// DeadLetter gives up on it: retrying cannot help.
	DeadLetter
)

func (v Verdict) String() string {
	switch v {
	case Ack:
		return "ack"
	case Retry:
		return "retry"
	default:
		return "dead_letter"
	}
}

// Settle maps a handler's error to what the source does: the one mapping
// every source uses. nil acknowledges; a permanent error (PermanentError,
// ErrMalformed) dead-letters; anything else retries, after delay when a
// TransientError asks for one (0: the source's own back-off).
func Settle(err error) (v Verdict, delay time.Duration) {
	switch {
	case err == nil:
		return Ack, 0
	case IsPermanent(err):
		return DeadLetter, 0
	}
	delay, _ = RetryDelay(err)
	return Retry, max(delay, 0)
}
