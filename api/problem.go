package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// Problem type URIs: the type member of every problem the API answers.
const (
	typeBase           = "https://cmkd.io/problems/"
	typeSealed         = typeBase + "tenant-sealed"
	typeTenantNotFound = typeBase + "tenant-not-found"
	typeRecordNotFound = typeBase + "record-not-found"
	typeNotFound       = typeBase + "not-found"
	typeMethod         = typeBase + "method-not-allowed"
	typeIntegrity      = typeBase + "integrity"
	typeBadRequest     = typeBase + "bad-request"
	typeTooLarge       = typeBase + "too-large"
	typeExists         = typeBase + "tenant-exists"
	typeUnauthorized   = typeBase + "unauthorized"
	typeForbidden      = typeBase + "forbidden"
	typeTimeout        = typeBase + "timeout"
	typeUnavailable    = typeBase + "unavailable"
	typeInternal       = typeBase + "internal"
)

// problem is an RFC 9457 problem details object, with cmkd's extension
// members for a sealed tenant.
type problem struct {
	Type     string     `json:"type"`
	Title    string     `json:"title"`
	Status   int        `json:"status"`
	Detail   string     `json:"detail,omitempty"`
	Instance string     `json:"instance,omitempty"`
	Tenant   string     `json:"tenant,omitempty"`
	Reason   string     `json:"reason,omitempty"`
	Since    *time.Time `json:"since,omitempty"`
}

func writeProblem(w http.ResponseWriter, r *http.Request, p problem) {
	if p.Instance == "" {
		p.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func tooLarge(limit int64) problem {
	return problem{Type: typeTooLarge, Title: "Payload too large", Status: http.StatusRequestEntityTooLarge,
		Detail: fmt.Sprintf("the limit is %d bytes", limit)}
}

// problemFor maps a store error to its problem. Details of 5xx errors stay
// in the log: they may name vaults and keys.
func problemFor(err error, tenant string, limit int64) problem {
	var sealed *store.SealedError
	switch {
	case errors.As(err, &sealed):
		since := sealed.Since.UTC()
		return problem{Type: typeSealed, Title: "Tenant sealed", Status: http.StatusLocked,
			Detail: sealed.Error(), Tenant: sealed.Tenant, Reason: sealed.Reason, Since: &since}
	case errors.Is(err, store.ErrSealed):
		return problem{Type: typeSealed, Title: "Tenant sealed", Status: http.StatusLocked, Detail: err.Error(), Tenant: tenant}
	case errors.Is(err, store.ErrNotFound):
		return problem{Type: typeTenantNotFound, Title: "Tenant not found", Status: http.StatusNotFound,
			Detail: "no tenant " + tenant, Tenant: tenant}
	case errors.Is(err, store.ErrExists):
		return problem{Type: typeExists, Title: "Tenant exists", Status: http.StatusConflict,
			Detail: "tenant " + tenant + " exists already", Tenant: tenant}
	case errors.Is(err, store.ErrIntegrity):
		return problem{Type: typeIntegrity, Title: "Integrity check failed", Status: http.StatusBadRequest,
			Detail: "the ciphertext was altered, belongs to another tenant, or the aad differs", Tenant: tenant}
	case errors.Is(err, store.ErrTooLarge):
		return tooLarge(limit)
	case errors.Is(err, cmkd.ErrInvalidTenant), errors.Is(err, store.ErrInvalidKey),
		errors.Is(err, cmkd.ErrInvalidKeyID), errors.Is(err, store.ErrNoKey):
		return problem{Type: typeBadRequest, Title: "Bad request", Status: http.StatusBadRequest, Detail: err.Error(), Tenant: tenant}
	case errors.Is(err, store.ErrNotEmpty), errors.Is(err, store.ErrChangeInProgress):
		return problem{Type: typeBadRequest, Title: "Conflict", Status: http.StatusConflict, Detail: err.Error(), Tenant: tenant}
	case errors.Is(err, context.DeadlineExceeded):
		return problem{Type: typeTimeout, Title: "Timeout", Status: http.StatusGatewayTimeout, Tenant: tenant}
	case errors.Is(err, store.ErrClosed):
		return problem{Type: typeUnavailable, Title: "Unavailable", Status: http.StatusServiceUnavailable, Tenant: tenant}
	}
	return problem{Type: typeInternal, Title: "Internal error", Status: http.StatusInternalServerError, Tenant: tenant}
}
