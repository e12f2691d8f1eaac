package gwtransport

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// maxTargets bounds the targets of one route so that a request tracks the
// targets it tried in one machine word.
const maxTargets = 64

// modelSpec is one configured target before compilation.
type modelSpec struct {
	name   string
	weight float64
}

// parseModels accepts the forms Init takes: a []string in priority order, or
// a map[string]float64 of weights. Weighted targets are sorted by name so the
// outcome of a seeded random source never depends on map order.
func parseModels(models any) (specs []modelSpec, weighted bool, err error) {
	switch m := models.(type) {
	case []string:
		for _, name := range m {
			specs = append(specs, modelSpec{name: name, weight: 1})
		}
	case map[string]float64:
		weighted = true
		positive := false
		for name, w := range m {
			if math.IsNaN(w) || math.IsInf(w, 0) || w < 0 {
				return nil, false, fmt.Errorf("gwtransport: weight of %q must be a finite non-negative number, got %v", name, w)
			}
			positive = positive || w > 0
			specs = append(specs, modelSpec{name: name, weight: w})
		}
		if len(specs) > 0 && !positive {
			return nil, false, errors.New("gwtransport: at least one weight must be positive")
		}
		sort.Slice(specs, func(i, j int) bool { return specs[i].name < specs[j].name })
	case nil:
		return nil, false, errors.New("gwtransport: no models: FromConfig takes them from WithConfig, which gave none (and no route was added)")
	default:
		return nil, false, fmt.Errorf("gwtransport: models must be a []string (priority order) or a map[string]float64 (weights), got %T", models)
	}
	if len(specs) == 0 {
		return nil, false, errors.New("gwtransport: at least one model is required")
	}
	if len(specs) > maxTargets {
		return nil, false, fmt.Errorf("gwtransport: at most %d models per route, got %d", maxTargets, len(specs))
	}
	seen := make(map[string]bool, len(specs))
	for _, s := range specs {
		if seen[s.name] {
			return nil, false, fmt.Errorf("gwtransport: model %q is listed twice", s.name)
		}
		seen[s.name] = true
	}
	return specs, weighted, nil
}

// splitTarget splits "<provider>/<model>" on the first slash only: model ids
// such as "meta-llama/Llama-3.3-70B" contain slashes of their own.
func splitTarget(name string) (provider, model string, err error) {
	i := strings.IndexByte(name, '/')
	if i <= 0 || i == len(name)-1 || strings.TrimSpace(name) != name {
		return "", "", fmt.Errorf("gwtransport: model %q must have the form <provider>/<model>", name)
	}
	return name[:i], name[i+1:], nil
}
