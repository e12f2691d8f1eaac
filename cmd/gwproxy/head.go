package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// requestHead is what the proxy reads of a request body to authorize and
// serve it, read exactly as the engine reads it (messages.go's scanBody):
// the model is the value of the last top-level member whose decoded name
// is exactly "model", and the request streams when a top-level member
// named "stream" in any case (as a case-insensitive decoder reads it) is
// literally true.
type requestHead struct {
	model         string // the model, when modelIsString
	modelIsString bool
	stream        bool
}

// headValue is what the proxy keeps of one top-level member's value: a
// string decoded, a short literal (true, null) as it is, nothing of a
// large array or object (messages, input).
type headValue struct {
	str      string
	isString bool
	literal  string
}

// UnmarshalJSON implements json.Unmarshaler.
func (v *headValue) UnmarshalJSON(b []byte) error {
	*v = headValue{}
	switch {
	case len(b) > 0 && b[0] == '"':
		v.isString = true
		return json.Unmarshal(b, &v.str)
	case len(b) <= len("false"):
		v.literal = string(b)
	}
	return nil
}

// readHead reads a request body's head. A body that is not one JSON
// object is refused, and so is one with a top-level member named "model"
// in another case ("Model", "MODEL"): a case-insensitive decoder (Go's
// encoding/json, and so the proxy before) may read that one as the model
// while the engine decides with the exact "model" alone; the engine
// rewrites every variant to the target anyway, so no honest client loses
// anything by the refusal.
func readHead(body []byte) (requestHead, error) {
	var h requestHead
	// Decoded names as keys, and the last value of a repeated name: the
	// engine's model is the last member named exactly "model".
	var members map[string]headValue
	if err := json.Unmarshal(body, &members); err != nil {
		return h, fmt.Errorf("gwproxy: the body is not a JSON object: %w", err)
	}
	if members == nil {
		return h, errors.New("gwproxy: the body is not a JSON object: null")
	}
	for name, v := range members {
		switch {
		case name == "model":
			h.model, h.modelIsString = v.str, v.isString
		case strings.EqualFold(name, "model"):
			return h, fmt.Errorf("gwproxy: the body has a member %q: only \"model\" names the model (decoders disagree on which one counts)", name)
		case strings.EqualFold(name, "stream"):
			// Every spelling the engine reads; members that disagree are
			// refused by the engine (400).
			h.stream = h.stream || v.literal == "true"
		}
	}
	return h, nil
}
