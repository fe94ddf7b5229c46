package keyvault

import "net/http"

// hsmKty is the kty a Managed HSM stores: every key lives in the HSM, so
// a create or import of "RSA" or "EC" answers "RSA-HSM" or "EC-HSM"
// (recorded in azkeys' MHSM tests), as "oct" answers "oct-HSM" anywhere.
func hsmKty(kty string) string {
	switch kty {
	case "RSA", "EC", "oct":
		return kty + "-HSM"
	}
	return kty
}

// challenge answers 401 with the bearer challenge: a vault names the
// resource https://vault.azure.net and explains in a JSON body; a
// Managed HSM names https://managedhsm.azure.net with an empty body.
func (s *Server) challenge(w http.ResponseWriter, msg string) {
	resource := "https://vault.azure.net"
	if s.cfg.ManagedHSM {
		resource = "https://managedhsm.azure.net"
	}
	w.Header().Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/`+
		s.cfg.TenantID+`", resource="`+resource+`"`)
	if s.cfg.ManagedHSM {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	writeError(w, http.StatusUnauthorized, "Unauthorized", msg, "")
}
