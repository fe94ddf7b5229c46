package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// Route is one route of the API. Routes is the one list of them: the
// server mounts it, the metrics label by its Name, and a test holds
// docs/api/openapi.yaml to it.
type Route struct {
	Method string
	// Path is an http.ServeMux path pattern.
	Path string
	// Name labels the route's metrics.
	Name string
	// Admin routes need the admin role; the others need the tenant in the
	// path to be allowed for the caller.
	Admin bool
}

// Pattern is the route's http.ServeMux pattern.
func (r Route) Pattern() string { return r.Method + " " + r.Path }

// Routes lists every route the API serves.
var Routes = []Route{
	{http.MethodPost, "/v1/tenants/{tenant}/encrypt", "encrypt", false},
	{http.MethodPost, "/v1/tenants/{tenant}/decrypt", "decrypt", false},
	{http.MethodPut, "/v1/tenants/{tenant}/records/{key}", "record_put", false},
	{http.MethodGet, "/v1/tenants/{tenant}/records/{key}", "record_get", false},
	{http.MethodDelete, "/v1/tenants/{tenant}/records/{key}", "record_delete", false},
	{http.MethodPost, "/v1/tenants", "tenant_add", true},
	{http.MethodGet, "/v1/tenants/{tenant}", "tenant_get", true},
	{http.MethodDelete, "/v1/tenants/{tenant}", "tenant_destroy", true},
}

type server struct {
	cfg     Config
	store   Store
	auth    *authenticator
	metrics *metrics
}

// New returns the API's handler.
func New(cfg Config) (http.Handler, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, store: cfg.Store, auth: newAuthenticator(cfg), metrics: newMetrics(cfg.Registerer)}
	handlers := map[string]http.HandlerFunc{
		"encrypt": s.encrypt, "decrypt": s.decrypt,
		"record_put": s.putRecord, "record_get": s.getRecord, "record_delete": s.deleteRecord,
		"tenant_add": s.addTenant, "tenant_get": s.getTenant, "tenant_destroy": s.destroyTenant,
	}
	mux := http.NewServeMux()
	// allow lists the methods of each path, for a 405's Allow header.
	allow := map[string][]string{}
	paths := http.NewServeMux()
	for _, rt := range Routes {
		mux.Handle(rt.Pattern(), s.wrap(rt, handlers[rt.Name]))
		if allow[rt.Path] == nil {
			paths.HandleFunc(rt.Path, func(http.ResponseWriter, *http.Request) {})
		}
		allow[rt.Path] = append(allow[rt.Path], rt.Method)
	}
	// Anything else is a problem too, counted under one route.
	mux.Handle("/", s.wrap(Route{Name: "other"}, func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := paths.Handler(r); pattern != "" {
			w.Header().Set("Allow", strings.Join(allow[pattern], ", "))
			writeProblem(w, r, problem{Type: typeMethod, Title: "Method not allowed", Status: http.StatusMethodNotAllowed,
				Detail: r.Method + " is not served here"})
			return
		}
		writeProblem(w, r, problem{Type: typeNotFound, Title: "No such route", Status: http.StatusNotFound})
	}))
	return mux, nil
}

// wrap adds to h what every route does: the metrics, the timeout, the
// body limit, authentication and authorization.
func (s *server) wrap(rt Route, h http.HandlerFunc) http.Handler {
	s.metrics.init(rt.Name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler { //nolint:errorlint // the sentinel is panicked as is
					panic(p)
				}
				s.cfg.Logger.Error("api: handler panicked", "route", rt.Name, "panic", p, "stack", string(debug.Stack()))
				if !rec.wrote {
					writeProblem(rec, r, problem{Type: typeInternal, Title: "Internal error", Status: http.StatusInternalServerError})
				} else {
					rec.code = http.StatusInternalServerError
				}
			}
			s.metrics.observe(rt.Name, rec.code, time.Since(start))
		}()
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
		defer cancel()
		r = r.WithContext(ctx)
		r.Body = http.MaxBytesReader(rec, r.Body, s.cfg.MaxBody+s.cfg.MaxBody/3+bodyOverhead)
		if rt.Name != "other" && !s.authorize(rec, r, rt) {
			return
		}
		h(rec, r)
	})
}

// authorize answers 401 or 403 and returns false unless the caller may use rt.
func (s *server) authorize(w http.ResponseWriter, r *http.Request, rt Route) bool {
	if s.cfg.Anonymous {
		return true
	}
	c, err := s.auth.authenticate(r)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			writeProblem(w, r, problem{Type: typeTimeout, Title: "Timeout", Status: http.StatusGatewayTimeout,
				Detail: "the token could not be checked in time"})
			return false
		}
		if errors.Is(err, errKeysUnavailable) {
			writeProblem(w, r, problem{Type: typeUnavailable, Title: "Signing keys unavailable", Status: http.StatusServiceUnavailable,
				Detail: "the token could not be checked yet; retry"})
			return false
		}
		s.cfg.Logger.Info("api: request not authenticated", "route", rt.Name, "err", err)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		if errors.Is(err, errNoCredentials) {
			w.Header().Set("WWW-Authenticate", "Bearer")
		}
		writeProblem(w, r, problem{Type: typeUnauthorized, Title: "Unauthorized", Status: http.StatusUnauthorized,
			Detail: "a valid bearer token or client certificate is required"})
		return false
	}
	tenant := r.PathValue("tenant")
	if s.auth.allowed(c, rt.Admin, tenant) {
		return true
	}
	s.cfg.Logger.Info("api: request not authorized", "route", rt.Name, "identity", c.primary(), "tenant", tenant)
	detail := "the caller may not use tenant " + tenant
	if rt.Admin {
		detail = "the caller lacks the " + s.cfg.Auth.AdminRole + " role"
	}
	writeProblem(w, r, problem{Type: typeForbidden, Title: "Forbidden", Status: http.StatusForbidden, Detail: detail, Tenant: tenant})
	return false
}

type statusRecorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

type encryptRequest struct {
	Plaintext []byte `json:"plaintext"`
	AAD       []byte `json:"aad,omitempty"`
}

type encryptResponse struct {
	Ciphertext []byte `json:"ciphertext"`
}

type decryptRequest struct {
	Ciphertext []byte `json:"ciphertext"`
	AAD        []byte `json:"aad,omitempty"`
}

type decryptResponse struct {
	Plaintext []byte `json:"plaintext"`
}

func (s *server) encrypt(w http.ResponseWriter, r *http.Request) {
	var req encryptRequest
	if !s.decode(w, r, &req) {
		return
	}
	if int64(len(req.Plaintext)) > s.cfg.MaxBody {
		writeProblem(w, r, tooLarge(s.cfg.MaxBody))
		return
	}
	tenant := r.PathValue("tenant")
	ct, err := s.store.Encrypt(r.Context(), tenant, req.Plaintext, req.AAD)
	if err != nil {
		s.fail(w, r, tenant, err)
		return
	}
	writeJSON(w, http.StatusOK, encryptResponse{Ciphertext: ct})
}

func (s *server) decrypt(w http.ResponseWriter, r *http.Request) {
	var req decryptRequest
	if !s.decode(w, r, &req) {
		return
	}
	if len(req.Ciphertext) == 0 {
		writeProblem(w, r, problem{Type: typeBadRequest, Title: "Bad request", Status: http.StatusBadRequest, Detail: "ciphertext is required"})
		return
	}
	tenant := r.PathValue("tenant")
	pt, err := s.store.Decrypt(r.Context(), tenant, req.Ciphertext, req.AAD)
	if err != nil {
		s.fail(w, r, tenant, err)
		return
	}
	writeJSON(w, http.StatusOK, decryptResponse{Plaintext: pt})
}

func (s *server) putRecord(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.bodyError(w, r, err)
		return
	}
	if int64(len(body)) > s.cfg.MaxBody {
		writeProblem(w, r, tooLarge(s.cfg.MaxBody))
		return
	}
	tenant := r.PathValue("tenant")
	if err := s.store.Put(r.Context(), tenant, r.PathValue("key"), body); err != nil {
		s.failRecord(w, r, tenant, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) getRecord(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	v, err := s.store.Get(r.Context(), tenant, r.PathValue("key"))
	if err != nil {
		s.failRecord(w, r, tenant, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(v)
}

func (s *server) deleteRecord(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if err := s.store.Delete(r.Context(), tenant, r.PathValue("key")); err != nil {
		s.failRecord(w, r, tenant, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type addTenantRequest struct {
	ID  string `json:"id"`
	Key string `json:"key,omitempty"`
}

// Tenant is a tenant as the API shows it.
type Tenant struct {
	ID          string     `json:"id"`
	State       string     `json:"state"`
	Reason      string     `json:"reason,omitempty"`
	Since       *time.Time `json:"since,omitempty"`
	Key         string     `json:"key,omitempty"`
	PlatformKey string     `json:"platform_key,omitempty"`
	Layers      []Layer    `json:"layers"`
	CreatedAt   time.Time  `json:"created_at"`
}

// Layer is one of a tenant's layers.
type Layer struct {
	Layer   string `json:"layer"`
	Key     string `json:"key"`
	Version string `json:"version,omitempty"`
}

func tenantOf(t store.Tenant) Tenant {
	out := Tenant{ID: t.ID, State: t.State, Layers: []Layer{}, CreatedAt: t.CreatedAt}
	if !t.Key.IsZero() {
		out.Key = t.Key.URL()
	}
	if !t.PlatformKey.IsZero() {
		out.PlatformKey = t.PlatformKey.URL()
	}
	if t.Sealed() {
		since := t.SealedAt.UTC()
		out.Reason, out.Since = t.SealReason, &since
	}
	for _, l := range t.Layers() {
		out.Layers = append(out.Layers, Layer{Layer: l.Layer, Key: l.Key.URL(), Version: l.Version})
	}
	return out
}

func (s *server) addTenant(w http.ResponseWriter, r *http.Request) {
	var req addTenantRequest
	if !s.decode(w, r, &req) {
		return
	}
	var key cmkd.KeyID
	if req.Key != "" {
		k, err := cmkd.ParseKeyID(req.Key)
		if err != nil {
			writeProblem(w, r, problem{Type: typeBadRequest, Title: "Bad request", Status: http.StatusBadRequest, Detail: err.Error()})
			return
		}
		key = k
	}
	t, err := s.store.AddTenant(r.Context(), req.ID, key)
	if err != nil {
		s.fail(w, r, req.ID, err)
		return
	}
	w.Header().Set("Location", "/v1/tenants/"+t.ID)
	writeJSON(w, http.StatusCreated, tenantOf(t))
}

func (s *server) getTenant(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	t, err := s.store.Tenant(r.Context(), tenant)
	if err != nil {
		s.fail(w, r, tenant, err)
		return
	}
	writeJSON(w, http.StatusOK, tenantOf(t))
}

func (s *server) destroyTenant(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if err := s.store.DestroyTenant(r.Context(), tenant, cmkd.StatusEvent{Tenant: tenant, Cause: "api"}); err != nil {
		s.fail(w, r, tenant, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decode reads a JSON body into v, or answers 400 or 413 and returns false.
func (s *server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.bodyError(w, r, err)
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeProblem(w, r, problem{Type: typeBadRequest, Title: "Bad request", Status: http.StatusBadRequest,
			Detail: "the body must be one JSON object"})
		return false
	}
	return true
}

func (s *server) bodyError(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeProblem(w, r, tooLarge(s.cfg.MaxBody))
		return
	}
	writeProblem(w, r, problem{Type: typeBadRequest, Title: "Bad request", Status: http.StatusBadRequest,
		Detail: "malformed body: " + err.Error()})
}

// failRecord is fail for the record routes, where ErrNotFound is the
// record's unless it is ErrUnknownTenant. A
// stored record failing its integrity check is cmkd's fault, not the
// caller's: 500, not decrypt's 400.
func (s *server) failRecord(w http.ResponseWriter, r *http.Request, tenant string, err error) {
	if errors.Is(err, store.ErrIntegrity) {
		s.cfg.Logger.Error("api: stored record failed its integrity check", "tenant", tenant, "key", r.PathValue("key"), "err", err)
		writeProblem(w, r, problem{Type: typeIntegrity, Title: "Stored record failed its integrity check", Status: http.StatusInternalServerError,
			Detail: "the stored record was altered or moved; do not retry", Tenant: tenant})
		return
	}
	if errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrUnknownTenant) {
		writeProblem(w, r, problem{Type: typeRecordNotFound, Title: "Record not found", Status: http.StatusNotFound,
			Detail: "tenant " + tenant + " has no record " + r.PathValue("key"), Tenant: tenant})
		return
	}
	s.fail(w, r, tenant, err)
}

// fail answers err from the store as a problem.
func (s *server) fail(w http.ResponseWriter, r *http.Request, tenant string, err error) {
	p := problemFor(err, tenant, s.cfg.MaxBody)
	if p.Status >= 500 {
		s.cfg.Logger.Error("api: store failed", "tenant", tenant, "err", err)
	}
	writeProblem(w, r, p)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
