package kek

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/cmkd-io/cmkd"
)

// Sentinels callers branch on. Classified errors wrap exactly one of them.
var (
	ErrDisabled           = errors.New("key disabled")
	ErrAccessDenied       = errors.New("access denied")
	ErrNotFound           = errors.New("key not found")
	ErrThrottled          = errors.New("throttled")
	ErrUnavailable        = errors.New("key vault unavailable")
	ErrExpired            = errors.New("key expired")
	ErrNotYetValid        = errors.New("key not yet valid")
	ErrOperationForbidden = errors.New("operation not permitted on key")
	// ErrBadRequest is a request Key Vault refused as malformed (400, 409,
	// other 4xx); it is never retried.
	ErrBadRequest = errors.New("bad request")
	// ErrVaultNotAllowed is a vault outside Config.Policy. It is found
	// before any network I/O, and never retried; errors.As with
	// *VaultNotAllowedError says which vault and what would allow it.
	ErrVaultNotAllowed = errors.New("vault not allowed")
)

// Error is a classified Key Vault failure. Kind is one of the sentinels;
// the underlying *azcore.ResponseError or transport error stays reachable
// through errors.As.
type Error struct {
	Kind       error
	Status     int           // HTTP status, 0 for transport errors
	Code       string        // error.code of the body
	Inner      string        // error.innererror.code of the body
	RetryAfter time.Duration // from a 429's Retry-After header, 0 when absent
	cause      error
	// transport: no HTTP answer came (refused, reset, timeout, DNS, TLS,
	// a server that does not speak HTTPS).
	transport bool
	vault, op string // where the call went, for the log
}

// Error keeps the message short: the full response error repeats the body
// over many lines, which callers can still reach with errors.As. A
// transport failure says only that the vault is unavailable: whether the
// port was closed, spoke plain HTTP or showed an untrusted certificate
// would map the network for whoever chose the key URL. The cause stays
// reachable with errors.As, and Client logs it.
func (e *Error) Error() string {
	if e.Status == 0 {
		if e.cause == nil || e.transport {
			return e.Kind.Error()
		}
		return fmt.Sprintf("%v: %v", e.Kind, e.cause)
	}
	s := fmt.Sprintf("%v (%d %s", e.Kind, e.Status, e.Code)
	if e.Inner != "" {
		s += "/" + e.Inner
	}
	return s + ")"
}

// Unwrap exposes both the sentinel and the cause.
func (e *Error) Unwrap() []error {
	if e.cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.cause}
}

// retryable reports whether trying again may succeed.
func (e *Error) retryable() bool {
	return e.Kind == ErrUnavailable || e.Kind == ErrThrottled
}

// classify maps an error from the SDK to an *Error. It must not be called
// for errors caused by the caller's context ending.
func classify(err error) *Error {
	if err == nil {
		return nil
	}
	var ke *Error
	if errors.As(err, &ke) {
		return ke
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return classifyResponse(re)
	}
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) {
		if af.RawResponse != nil && af.RawResponse.StatusCode < 500 {
			return &Error{Kind: ErrAccessDenied, Status: 0, cause: err}
		}
		// The identity endpoint is the operator's, not a key URL's: its
		// failures may say what went wrong.
		return &Error{Kind: ErrUnavailable, cause: err}
	}
	// Timeouts, refused or dropped connections, DNS and TLS failures.
	return &Error{Kind: ErrUnavailable, cause: err, transport: true}
}

func classifyResponse(re *azcore.ResponseError) *Error {
	e := &Error{Status: re.StatusCode, Code: re.ErrorCode, cause: re}
	if re.RawResponse != nil {
		e.Inner = innerCode(re.RawResponse)
		if e.Code == "" {
			e.Code = http.StatusText(re.StatusCode)
		}
	}
	e.Kind = kindOf(e.Status, e.Inner)
	if e.Kind == ErrThrottled && re.RawResponse != nil {
		e.RetryAfter = retryAfter(re.RawResponse.Header.Get("Retry-After"), time.Now())
	}
	return e
}

func kindOf(status int, inner string) error {
	switch {
	case status == http.StatusForbidden:
		return forbiddenKind(inner)
	case status == http.StatusUnauthorized:
		// The challenge policy answers the first 401; one that reaches us
		// means the token was refused.
		return ErrAccessDenied
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusTooManyRequests:
		return ErrThrottled
	case status == http.StatusRequestTimeout || status >= 500:
		return ErrUnavailable
	default:
		return ErrBadRequest
	}
}

func forbiddenKind(inner string) error {
	switch inner {
	case "KeyDisabled":
		return ErrDisabled
	case "KeyOperationForbidden":
		return ErrOperationForbidden
	case "KeyExpired":
		return ErrExpired
	case "KeyNotYetValid":
		return ErrNotYetValid
	default:
		return ErrAccessDenied
	}
}

// innerCode reads error.innererror.code from a Key Vault error body.
func innerCode(resp *http.Response) string {
	body, err := runtime.Payload(resp)
	if err != nil {
		return ""
	}
	return parseInnerCode(body)
}

func parseInnerCode(body []byte) string {
	var b struct {
		Error struct {
			Inner struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	return b.Error.Inner.Code
}

// maxRetryAfterSeconds keeps a hostile header from overflowing a Duration.
const maxRetryAfterSeconds = 86400

// retryAfter parses a Retry-After header: delay seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil {
		if s < 0 {
			return 0
		}
		s = min(s, maxRetryAfterSeconds)
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// checkID refuses the zero KeyID: every KeyID that is not zero was made by
// cmkd.ParseKeyID and is valid.
func checkID(id cmkd.KeyID) error {
	if id.IsZero() {
		return fmt.Errorf("%w: no key given", cmkd.ErrInvalidKeyID)
	}
	return nil
}
