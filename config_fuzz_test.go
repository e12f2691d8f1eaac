package gwtransport

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// FuzzLoadConfig: any document, JSON or YAML. LoadConfig never panics; an
// error always carries the package prefix; and every configuration it
// accepts marshals back (JSON and YAML) to one that loads equal to it.
func FuzzLoadConfig(f *testing.F) {
	example, err := os.ReadFile("examples/config/gateway.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(example),
		`{"models":[{"target":"openai/a","weight":1},{"target":"groq/b","weight":0}],"defaults":{"backoff":{"jitter":0}}}`,
		"routes:\n  - name: r\n    models: [{target: openai/a, backoff: {initial: 1s}}]\n    defaults: {stream_idle: 5s}\n",
		"models: [{target: openai/a}]\n---\n",
		"{\"route\":\"a\",\"route\":\"b\"}",
		"defaults: {timeout: 0x10}\n",
		"a: &x [*x]\n",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := LoadConfig([]byte(doc))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "gwtransport: config: ") {
				t.Fatalf("error without the prefix: %v", err)
			}
			return
		}
		j, err := c.JSON()
		if err != nil {
			t.Fatalf("JSON: %v", err)
		}
		fromJSON, err := LoadConfig(j)
		if err != nil {
			t.Fatalf("the JSON form of an accepted config is refused: %v\n%s", err, j)
		}
		if !reflect.DeepEqual(c, fromJSON) {
			t.Fatalf("JSON round trip differs:\n%#v\n%#v", c, fromJSON)
		}
		y, err := c.YAML()
		if err != nil {
			t.Fatalf("YAML: %v", err)
		}
		fromYAML, err := LoadConfig(y)
		if err != nil {
			t.Fatalf("the YAML form of an accepted config is refused: %v\n%s", err, y)
		}
		if !reflect.DeepEqual(c, fromYAML) {
			t.Fatalf("YAML round trip differs:\n%#v\n%#v\n%s", c, fromYAML, y)
		}
	})
}
