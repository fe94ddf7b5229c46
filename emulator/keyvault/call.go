package keyvault

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// call is one operation in progress.
type call struct {
	r         *http.Request
	vw        view
	name, ver string
	now       int64 // unix seconds from Config.Now
	events    []CloudEvent
}

// decode reads the JSON body into v. Unknown fields are ignored, as the
// service ignores them; anything else malformed is BadParameter.
func (c *call) decode(v any) error {
	body, err := io.ReadAll(c.r.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &apiError{status: http.StatusRequestEntityTooLarge, code: "RequestEntityTooLarge",
			msg: "The request body is too large."}
	}
	if err != nil {
		return badParameter("The request body could not be read.")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badParameter("The request body is required.")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return badParameter("The request body is not valid JSON for this operation.")
	}
	return nil
}
