package keyvault

import (
	"net/http"
	"regexp"
	"strings"
)

var (
	keyNameRE   = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)
	vaultNameRE = regexp.MustCompile(`^[0-9A-Za-z-]{3,24}$`)
)

type opFunc func(*Server, *call) (any, error)

// routed is a request resolved to one Key Vault operation.
type routed struct {
	op        string // the Calls() counter name
	fn        opFunc
	name, ver string
}

// keyActions are the POSTs to /keys/{name}[/{version}]/{verb}, by verb;
// op is the name Key Vault uses in key_ops and in its messages.
var keyActions = map[string]routed{
	"wrapkey":   {op: "wrapKey", fn: cryptoHandler("wrapKey")},
	"unwrapkey": {op: "unwrapKey", fn: cryptoHandler("unwrapKey")},
	"encrypt":   {op: "encrypt", fn: cryptoHandler("encrypt")},
	"decrypt":   {op: "decrypt", fn: cryptoHandler("decrypt")},
	"sign":      {op: "sign", fn: (*Server).sign},
	"verify":    {op: "verify", fn: (*Server).verify},
	"release":   {op: "release", fn: (*Server).release},
}

// unsupported are real operations this emulator does not do: key
// attestation needs a Managed HSM's attestation blobs.
var unsupported = map[string]bool{"attestation": true}

// route resolves method and path. Empty segments are ignored because
// azkeys builds "/keys/{name}/" and "/keys/{name}//wrapkey"-like paths
// when the version is empty.
func route(method, path string) (routed, *apiError) {
	var seg []string
	for _, p := range strings.Split(path, "/") {
		if p != "" {
			seg = append(seg, p)
		}
	}
	if len(seg) == 0 {
		return routed{}, notFoundRoute()
	}
	switch strings.ToLower(seg[0]) {
	case "keys":
		return routeKeys(method, seg[1:])
	case "deletedkeys":
		return routeDeleted(method, seg[1:])
	case "rng":
		if len(seg) == 1 {
			return pick(method, map[string]routed{http.MethodPost: {op: "getRandomBytes", fn: (*Server).getRandomBytes}})
		}
	}
	return routed{}, notFoundRoute()
}

func routeKeys(method string, seg []string) (routed, *apiError) {
	if len(seg) == 0 {
		return pick(method, map[string]routed{http.MethodGet: {op: "listKeys", fn: (*Server).listKeys}})
	}
	if strings.EqualFold(seg[0], "restore") && len(seg) == 1 && method == http.MethodPost {
		return routed{op: "restoreKey", fn: (*Server).restoreKey}, nil
	}
	if !keyNameRE.MatchString(seg[0]) {
		return routed{}, badParameter("The request URI contains an invalid name: %s", seg[0])
	}
	name := seg[0]
	var rt routed
	var err *apiError
	switch len(seg) {
	case 1:
		rt, err = pick(method, map[string]routed{
			http.MethodGet: {op: "getKey", fn: (*Server).getKey}, http.MethodPut: {op: "importKey", fn: (*Server).importKey},
			http.MethodDelete: {op: "deleteKey", fn: (*Server).deleteKey}, http.MethodPatch: {op: "updateKey", fn: (*Server).updateKey},
		})
	case 2:
		rt, err = routeKeyVerb(method, seg[1])
	case 3:
		rt, err = routeCrypto(method, seg[2])
		rt.ver = seg[1]
	default:
		err = notFoundRoute()
	}
	rt.name = name
	return rt, err
}

// routeKeyVerb handles /keys/{name}/{x}: x is a verb or a version.
func routeKeyVerb(method, x string) (routed, *apiError) {
	switch v := strings.ToLower(x); {
	case v == "create":
		return pick(method, map[string]routed{http.MethodPost: {op: "createKey", fn: (*Server).createKey}})
	case v == "rotate":
		return pick(method, map[string]routed{http.MethodPost: {op: "rotateKey", fn: (*Server).rotateKey}})
	case v == "backup":
		return pick(method, map[string]routed{http.MethodPost: {op: "backupKey", fn: (*Server).backupKey}})
	case v == "versions":
		return pick(method, map[string]routed{http.MethodGet: {op: "listVersions", fn: (*Server).listVersions}})
	case v == "rotationpolicy":
		return pick(method, map[string]routed{
			http.MethodGet: {op: "getRotationPolicy", fn: (*Server).getRotationPolicy},
			http.MethodPut: {op: "updateRotationPolicy", fn: (*Server).updateRotationPolicy},
		})
	case keyActions[v].op != "" || unsupported[v]:
		return routeCrypto(method, x)
	}
	rt, err := pick(method, map[string]routed{
		http.MethodGet: {op: "getKey", fn: (*Server).getKey}, http.MethodPatch: {op: "updateKey", fn: (*Server).updateKey},
	})
	rt.ver = x
	return rt, err
}

func routeCrypto(method, verb string) (routed, *apiError) {
	v := strings.ToLower(verb)
	if unsupported[v] {
		return routed{}, notSupported(v)
	}
	rt, ok := keyActions[v]
	if !ok {
		return routed{}, notFoundRoute()
	}
	return pick(method, map[string]routed{http.MethodPost: rt})
}

func routeDeleted(method string, seg []string) (routed, *apiError) {
	switch {
	case len(seg) == 0:
		return pick(method, map[string]routed{http.MethodGet: {op: "listDeletedKeys", fn: (*Server).listDeletedKeys}})
	case !keyNameRE.MatchString(seg[0]):
		return routed{}, badParameter("The request URI contains an invalid name: %s", seg[0])
	case len(seg) == 1:
		rt, err := pick(method, map[string]routed{
			http.MethodGet:    {op: "getDeletedKey", fn: (*Server).getDeletedKey},
			http.MethodDelete: {op: "purgeKey", fn: (*Server).purgeKey},
		})
		rt.name = seg[0]
		return rt, err
	case len(seg) == 2 && strings.EqualFold(seg[1], "recover"):
		rt, err := pick(method, map[string]routed{http.MethodPost: {op: "recoverKey", fn: (*Server).recoverKey}})
		rt.name = seg[0]
		return rt, err
	}
	return routed{}, notFoundRoute()
}

func pick(method string, m map[string]routed) (routed, *apiError) {
	rt, ok := m[method]
	if !ok {
		return routed{}, &apiError{status: http.StatusMethodNotAllowed, code: "MethodNotAllowed",
			msg: "The requested resource does not support http method '" + method + "'."}
	}
	return rt, nil
}

func notFoundRoute() *apiError {
	return &apiError{status: http.StatusNotFound, code: "NotFound", msg: "The requested resource was not found."}
}

func notSupported(op string) *apiError {
	return badParameter("Operation %s is not supported by this emulator.", op)
}
