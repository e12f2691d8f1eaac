package gwtransport_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// TestReadRequestHead: the head a server in front of the gateway reads is
// the gateway's own reading, in every spelling that decides routing.
func TestReadRequestHead(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       gwtransport.RequestHead
		err        bool
	}{
		{"plain", `{"model":"gateway","messages":[]}`, gwtransport.RequestHead{Model: "gateway", ModelIsString: true}, false},
		{"the last exact member wins", `{"model":"a","model":"gateway"}`, gwtransport.RequestHead{Model: "gateway", ModelIsString: true}, false},
		{"an escaped name is the name", `{"mod\u0065l":"gateway"}`, gwtransport.RequestHead{Model: "gateway", ModelIsString: true}, false},
		{"an escaped value is decoded", `{"model":"gate\u0077ay"}`, gwtransport.RequestHead{Model: "gateway", ModelIsString: true}, false},
		{"a case variant is counted, never read", `{"model":"gateway","MODEL":"small","Model":"x"}`, gwtransport.RequestHead{Model: "gateway", ModelIsString: true, ModelVariants: 2}, false},
		{"a variant alone names no model", `{"Model":"gateway"}`, gwtransport.RequestHead{ModelVariants: 1}, false},
		{"a model that is not a string", `{"model":42}`, gwtransport.RequestHead{}, false},
		{"a later non-string model undoes the string", `{"model":"gateway","model":null}`, gwtransport.RequestHead{}, false},
		{"stream", `{"model":"gateway","stream":true}`, gwtransport.RequestHead{Model: "gateway", ModelIsString: true, Stream: true}, false},
		{"stream in another case", `{"model":"gateway","Stream":true}`, gwtransport.RequestHead{Model: "gateway", ModelIsString: true, Stream: true}, false},
		{"stream false", `{"model":"gateway","stream":false}`, gwtransport.RequestHead{Model: "gateway", ModelIsString: true}, false},
		{"nested models are not the model", `{"messages":[{"model":"gateway"}]}`, gwtransport.RequestHead{}, false},
		{"not an object", `["model","gateway"]`, gwtransport.RequestHead{}, true},
		{"null", `null`, gwtransport.RequestHead{}, true},
		{"cut", `{"model":"gate`, gwtransport.RequestHead{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := gwtransport.ReadRequestHead([]byte(tc.body))
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
