package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gwtransport/gwtransport"
)

// requestHead is what the proxy reads of a request body to authorize and
// serve it: the engine's own reading (gwtransport.ReadRequestHead), so the
// route a key is checked against is the route the engine serves.
type requestHead struct {
	model         string // the model, when modelIsString
	modelIsString bool
	stream        bool
}

// readHead reads a request body's head. A body that is not one valid JSON
// object is refused, and so is one with a top-level member named "model"
// in another case ("Model", "MODEL"): a case-insensitive decoder (Go's
// encoding/json, and so the proxy before) may read that one as the model
// while the engine decides with the exact "model" alone; the engine
// rewrites every variant to the target anyway, so no honest client loses
// anything by the refusal.
func readHead(body []byte) (requestHead, error) {
	if !json.Valid(body) {
		return requestHead{}, errors.New("gwproxy: the body is not valid JSON")
	}
	h, err := gwtransport.ReadRequestHead(body)
	if err != nil {
		return requestHead{}, fmt.Errorf("gwproxy: the body is not a JSON object: %w", err)
	}
	if h.ModelVariants > 0 {
		return requestHead{}, errors.New(`gwproxy: the body has a member naming the model in another case ("Model", "MODEL"): only "model" names the model (decoders disagree on which one counts)`)
	}
	return requestHead{model: h.Model, modelIsString: h.ModelIsString, stream: h.Stream}, nil
}
