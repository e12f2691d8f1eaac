package gwtransport

import (
	"net/http"
	"reflect"

	"github.com/openai/openai-go/v3"
)

// Models is what Init, NewTransport, [Reconfigure] and WithRoute accept as
// models, checked by the compiler: a []string of "<provider>/<model>"
// targets in priority order, a map[string]float64 of weights keyed the same
// way (named types of either are fine too), or [FromConfig] when the
// options supply the models. Anything else does not compile.
type Models interface {
	~[]string | ~map[string]float64 | fromConfig
}

// fromConfig is the type of FromConfig.
type fromConfig struct{}

// FromConfig, given as models, says the options supply them: the default
// route's models come from [WithConfig]. With no models there (a Config
// with routes only) or no WithConfig at all, the gateway serves only the
// named routes (WithConfig's routes, [WithRoute]); with no route at all,
// Init fails.
//
//	mgr, err := gwtransport.Init(&client, gwtransport.FromConfig, gwtransport.WithConfig(cfg))
var FromConfig fromConfig

// Clients is what Init accepts as clients, checked by the compiler: one
// *http.Client or *openai.Client (github.com/openai/openai-go/v3), or a
// slice of either (a named slice type too). A []any mixes both kinds; its
// elements are checked when Init runs. Other clients, go-openai's (github.com/sashabaranov/go-openai)
// among them, cannot be installed into: wrap the *http.Client they send
// through with [NewTransport].
type Clients interface {
	*http.Client | *openai.Client | ~[]*http.Client | ~[]*openai.Client | ~[]any
}

// clientsArg turns a Clients value into what flattenClients reads: a named
// slice type converted to its plain slice.
func clientsArg[C Clients](clients C) any {
	v := reflect.ValueOf(clients)
	if v.Kind() != reflect.Slice {
		return clients
	}
	switch e := v.Type().Elem(); e {
	case reflect.TypeFor[*http.Client]():
		return v.Convert(reflect.TypeFor[[]*http.Client]()).Interface()
	case reflect.TypeFor[*openai.Client]():
		return v.Convert(reflect.TypeFor[[]*openai.Client]()).Interface()
	default:
		return v.Convert(reflect.TypeFor[[]any]()).Interface()
	}
}

// modelsArg turns a Models value into what the gateway compiles: nil for
// FromConfig, else a plain []string or map[string]float64 (a named type of
// either converted to it).
func modelsArg[M Models](models M) any {
	switch m := any(models).(type) {
	case fromConfig:
		return nil
	case []string:
		return m
	case map[string]float64:
		return m
	}
	v := reflect.ValueOf(models)
	if v.Kind() == reflect.Slice {
		return v.Convert(reflect.TypeOf([]string(nil))).Interface()
	}
	return v.Convert(reflect.TypeOf(map[string]float64(nil))).Interface()
}
