package kek

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// responseError builds the error the SDK returns for a Key Vault answer.
func responseError(status int, body string, hdr http.Header) error {
	if hdr == nil {
		hdr = http.Header{}
	}
	resp := &http.Response{
		StatusCode: status, Status: http.StatusText(status), Header: hdr,
		Body:    io.NopCloser(strings.NewReader(body)),
		Request: httptest.NewRequest(http.MethodPost, "https://v.vault.azure.net/keys/k/unwrapkey", nil),
	}
	return runtime.NewResponseError(resp)
}

func kvBody(code, inner string) string {
	if inner == "" {
		return fmt.Sprintf(`{"error":{"code":%q,"message":"m"}}`, code)
	}
	return fmt.Sprintf(`{"error":{"code":%q,"message":"m","innererror":{"code":%q}}}`, code, inner)
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   error
	}{
		{"disabled", 403, kvBody("Forbidden", "KeyDisabled"), ErrDisabled},
		{"rbac", 403, kvBody("Forbidden", "ForbiddenByRbac"), ErrAccessDenied},
		{"access policy", 403, kvBody("Forbidden", "AccessDenied"), ErrAccessDenied},
		{"plain 403", 403, kvBody("Forbidden", ""), ErrAccessDenied},
		{"key ops", 403, kvBody("Forbidden", "KeyOperationForbidden"), ErrOperationForbidden},
		{"expired", 403, kvBody("Forbidden", "KeyExpired"), ErrExpired},
		{"not yet valid", 403, kvBody("Forbidden", "KeyNotYetValid"), ErrNotYetValid},
		{"token refused", 401, kvBody("Unauthorized", ""), ErrAccessDenied},
		{"not found", 404, kvBody("KeyNotFound", ""), ErrNotFound},
		{"throttled", 429, kvBody("Throttled", ""), ErrThrottled},
		{"internal", 500, kvBody("InternalServerError", ""), ErrUnavailable},
		{"unavailable", 503, "", ErrUnavailable},
		{"timeout", 408, "", ErrUnavailable},
		{"bad parameter", 400, kvBody("BadParameter", ""), ErrBadRequest},
		{"conflict", 409, kvBody("Conflict", ""), ErrBadRequest},
		{"html body", 403, "<html>nope</html>", ErrAccessDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fmt.Errorf("unwrap k: %w", classify(responseError(tt.status, tt.body, nil)))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			var re *azcore.ResponseError
			if !errors.As(err, &re) || re.StatusCode != tt.status {
				t.Fatalf("ResponseError not reachable from %v", err)
			}
		})
	}
}

func TestClassifyIgnoresMessageText(t *testing.T) {
	body := `{"error":{"code":"Forbidden","message":"Operation unwrapKey is not allowed on a disabled key."}}`
	if err := classify(responseError(403, body, nil)); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("got %v: the message alone must not decide", err)
	}
}

func TestClassifyTransport(t *testing.T) {
	err := classify(errors.New("read tcp: connection reset by peer"))
	if !errors.Is(err, ErrUnavailable) || !err.retryable() {
		t.Fatalf("got %v", err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		h    string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"-1", 0}, {"soon", 0},
		{"99999999999", 86400 * time.Second},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second},
		{now.Add(-5 * time.Second).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.h, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.h, got, tt.want)
		}
	}
	e := classify(responseError(429, kvBody("Throttled", ""), http.Header{"Retry-After": {"7"}}))
	if e.RetryAfter != 7*time.Second {
		t.Errorf("429 RetryAfter = %v", e.RetryAfter)
	}
}

func TestErrorMessageIsShort(t *testing.T) {
	e := classify(responseError(403, kvBody("Forbidden", "KeyDisabled"), nil))
	if got := e.Error(); got != "key disabled (403 Forbidden/KeyDisabled)" {
		t.Errorf("Error() = %q", got)
	}
}

// FuzzClassify feeds Key Vault error answers (status, body, Retry-After)
// through classification: it must never panic, always pick a sentinel, and
// keep the body out of the short message.
func FuzzClassify(f *testing.F) {
	f.Add(403, kvBody("Forbidden", "KeyDisabled"), "")
	f.Add(429, kvBody("Throttled", ""), "5")
	f.Add(404, `{"error":{"code":"KeyNotFound","innererror":{"code":{"nested":1}}}}`, "")
	f.Add(500, "not json", "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add(401, "", "-3")
	f.Fuzz(func(t *testing.T, status int, body, ra string) {
		if status < 100 || status > 999 {
			return
		}
		e := classify(responseError(status, body, http.Header{"Retry-After": {ra}}))
		known := false
		for _, k := range []error{ErrDisabled, ErrAccessDenied, ErrNotFound, ErrThrottled, ErrUnavailable,
			ErrExpired, ErrNotYetValid, ErrOperationForbidden, ErrBadRequest} {
			known = known || e.Kind == k
		}
		if !known || e.RetryAfter < 0 {
			t.Fatalf("classify(%d) = %+v", status, e)
		}
		if len(body) > 8 && strings.Contains(e.Error(), body) {
			t.Fatalf("body leaked into message %q", e.Error())
		}
	})
}
