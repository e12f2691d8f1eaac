package gwtransport

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// This file reads a configuration document, JSON or YAML, into a Config
// strictly: one document, no duplicate keys, no unknown fields, every
// value of the right type, and every error naming the field's path
// ("routes[1].models[0].weight") and where it is in the file. Values are
// never echoed in these errors: a secret pasted into the wrong field must
// not end up in a log.

// confNode is a parsed value of either syntax, with its position.
type confNode struct {
	kind  confKind
	text  string     // scalars: a JSON string decoded, or the literal text
	yaml  *yaml.Node // YAML scalars, decoded with YAML's own rules
	keys  []string   // mappings, in order
	kpos  []string   // where each key is
	vals  []*confNode
	items []*confNode // lists
	pos   string      // "line 3:5"
}

// maxConfDepth bounds the nesting of a configuration document (a real one
// nests five levels deep).
const maxConfDepth = 32

// maxConfNodes bounds the values of a YAML document once its aliases are
// expanded.
const maxConfNodes = 100000

type confKind int

const (
	confNull confKind = iota
	confBool
	confNumber
	confString
	confMap
	confList
)

func (k confKind) String() string {
	return [...]string{"null", "a boolean", "a number", "a string", "a mapping", "a list"}[k]
}

// errConfig is a configuration error: the path of the field at fault and
// what is wrong with it.
func errConfig(path, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if path == "" {
		return errors.New("gwtransport: config: " + msg)
	}
	return errors.New("gwtransport: config: " + path + ": " + msg)
}

// parseConfigDoc parses data as JSON when it starts with '{' and as YAML
// otherwise. It returns nil for an empty YAML document.
func parseConfigDoc(data []byte) (*confNode, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff")
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		return parseJSONDoc(data)
	}
	return parseYAMLDoc(data)
}

// lineCol renders the position of byte off in data as "line L:C".
func lineCol(data []byte, off int64) string {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	line := 1 + bytes.Count(data[:off], []byte{'\n'})
	col := int(off) - bytes.LastIndexByte(data[:off], '\n')
	return fmt.Sprintf("line %d:%d", line, col)
}

func parseJSONDoc(data []byte) (*confNode, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := jsonValue(dec, data, "", 0)
	if err != nil {
		return nil, err
	}
	off := dec.InputOffset()
	rest := bytes.TrimLeft(data[off:], " \t\r\n")
	if len(rest) > 0 {
		return nil, errConfig("", "%s: trailing data after the JSON document: want one document", lineCol(data, int64(len(data)-len(rest))))
	}
	return n, nil
}

// jsonError renders a JSON syntax error with its line and column.
func jsonError(data []byte, dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return errConfig("", "%s: JSON syntax error: %s", lineCol(data, se.Offset), se.Error())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errConfig("", "%s: JSON syntax error: unexpected end of the document", lineCol(data, int64(len(data))))
	}
	return errConfig("", "%s: JSON syntax error: %v", lineCol(data, dec.InputOffset()), err)
}

// jsonValue reads one value from dec; path names it in errors.
func jsonValue(dec *json.Decoder, data []byte, path string, depth int) (*confNode, error) {
	start := dec.InputOffset()
	if depth > maxConfDepth {
		return nil, errConfig(path, "%s: nested too deeply", lineCol(data, start))
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(data, dec, err)
	}
	n := &confNode{pos: lineCol(data, start+int64(leadingSpace(data[start:])))}
	switch v := tok.(type) {
	case nil:
		n.kind = confNull
	case bool:
		n.kind, n.text = confBool, strconv.FormatBool(v)
	case json.Number:
		n.kind, n.text = confNumber, string(v)
	case string:
		n.kind, n.text = confString, v
	case json.Delim:
		switch v {
		case '{':
			n.kind = confMap
			first := map[string]string{}
			for dec.More() {
				kstart := dec.InputOffset()
				kt, err := dec.Token()
				if err != nil {
					return nil, jsonError(data, dec, err)
				}
				key, _ := kt.(string)
				kpos := lineCol(data, kstart+int64(leadingKeySpace(data[kstart:])))
				kpath := joinPath(path, key)
				if at, dup := first[key]; dup {
					return nil, errConfig(kpath, "duplicate key at %s (first at %s)", kpos, at)
				}
				first[key] = kpos
				val, err := jsonValue(dec, data, kpath, depth+1)
				if err != nil {
					return nil, err
				}
				n.keys, n.kpos, n.vals = append(n.keys, key), append(n.kpos, kpos), append(n.vals, val)
			}
		case '[':
			n.kind = confList
			for i := 0; dec.More(); i++ {
				item, err := jsonValue(dec, data, fmt.Sprintf("%s[%d]", path, i), depth+1)
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, item)
			}
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, jsonError(data, dec, err)
		}
	}
	return n, nil
}

// leadingSpace counts the white space before a JSON token.
func leadingSpace(b []byte) int {
	return len(b) - len(bytes.TrimLeft(b, " \t\r\n"))
}

// leadingKeySpace counts the separators (white space and a comma) before a
// JSON object key.
func leadingKeySpace(b []byte) int {
	return len(b) - len(bytes.TrimLeft(b, " \t\r\n,"))
}

func parseYAMLDoc(data []byte) (*confNode, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, errConfig("", "%v", err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, errConfig("", "line %d: a second YAML document (---): want one document", extra.Line)
	case !errors.Is(err, io.EOF):
		return nil, errConfig("", "a second YAML document (---): want one document: %v", err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	budget := maxConfNodes
	return yamlValue(doc.Content[0], "", 0, &budget)
}

// yamlValue converts a YAML node; path names it in errors.
func yamlValue(y *yaml.Node, path string, depth int, budget *int) (*confNode, error) {
	if *budget--; *budget < 0 {
		// Aliases can make a small document expand exponentially.
		return nil, errConfig(path, "line %d:%d: more than %d values (aliases expanded)", y.Line, y.Column, maxConfNodes)
	}
	if depth > maxConfDepth {
		return nil, errConfig(path, "line %d:%d: nested too deeply", y.Line, y.Column)
	}
	if y.Kind == yaml.AliasNode && y.Alias != nil {
		return yamlValue(y.Alias, path, depth+1, budget)
	}
	n := &confNode{pos: fmt.Sprintf("line %d:%d", y.Line, y.Column)}
	switch y.Kind {
	case yaml.ScalarNode:
		n.text, n.yaml = y.Value, y
		switch y.ShortTag() {
		case "!!null":
			n.kind = confNull
		case "!!bool":
			n.kind = confBool
		case "!!int", "!!float":
			n.kind = confNumber
		default:
			n.kind = confString
		}
	case yaml.MappingNode:
		n.kind = confMap
		first := map[string]string{}
		for i := 0; i+1 < len(y.Content); i += 2 {
			k := y.Content[i]
			kpos := fmt.Sprintf("line %d:%d", k.Line, k.Column)
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
				return nil, errConfig(path, "%s: keys must be plain names (no merge keys or complex keys)", kpos)
			}
			kpath := joinPath(path, k.Value)
			if at, dup := first[k.Value]; dup {
				return nil, errConfig(kpath, "duplicate key at %s (first at %s)", kpos, at)
			}
			first[k.Value] = kpos
			val, err := yamlValue(y.Content[i+1], kpath, depth+1, budget)
			if err != nil {
				return nil, err
			}
			n.keys, n.kpos, n.vals = append(n.keys, k.Value), append(n.kpos, kpos), append(n.vals, val)
		}
	case yaml.SequenceNode:
		n.kind = confList
		for i, c := range y.Content {
			item, err := yamlValue(c, fmt.Sprintf("%s[%d]", path, i), depth+1, budget)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, item)
		}
	default:
		return nil, errConfig(path, "line %d: unsupported YAML node", y.Line)
	}
	return n, nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var (
	durationType = reflect.TypeOf(Duration(0))
)

// decodeConf stores n in v (a settable value), by the json tags of
// structs. path names v in errors.
func decodeConf(n *confNode, v reflect.Value, path string) error {
	if n.kind == confNull {
		return nil // absent: v keeps its zero value
	}
	t := v.Type()
	if t.Kind() == reflect.Pointer {
		p := reflect.New(t.Elem())
		if err := decodeConf(n, p.Elem(), path); err != nil {
			return err
		}
		v.Set(p)
		return nil
	}
	if t == durationType {
		if n.kind != confString && n.kind != confNumber {
			return errConfig(path, "want a duration like 500ms or 1m30s, got %s", n.kind)
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.text)); err != nil {
			// Never echo what was written: a key pasted into the wrong
			// field must not reach a log through this error.
			return errConfig(path, "not a duration: want a duration like 500ms or 1m30s")
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.kind != confMap {
			return errConfig(path, "want a mapping, got %s", n.kind)
		}
		fields := structFields(t)
		for i, key := range n.keys {
			idx, ok := fields[key]
			if !ok {
				return errConfig(joinPath(path, key), "unknown field (want one of: %s)", fieldNames(fields))
			}
			if err := decodeConf(n.vals[i], v.Field(idx), joinPath(path, key)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.kind != confList {
			return errConfig(path, "want a list, got %s", n.kind)
		}
		if len(n.items) == 0 {
			return nil // as absent, the form it marshals back to
		}
		s := reflect.MakeSlice(t, len(n.items), len(n.items))
		for i, item := range n.items {
			if err := decodeConf(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
	case reflect.Map:
		if n.kind != confMap {
			return errConfig(path, "want a mapping, got %s", n.kind)
		}
		if len(n.keys) == 0 {
			return nil
		}
		m := reflect.MakeMapWithSize(t, len(n.keys))
		for i, key := range n.keys {
			e := reflect.New(t.Elem()).Elem()
			if err := decodeConf(n.vals[i], e, joinPath(path, key)); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), e)
		}
		v.Set(m)
	case reflect.String:
		// YAML scalars are text whatever they look like (a date, a
		// number); JSON wants a string.
		if n.kind == confMap || n.kind == confList || (n.yaml == nil && n.kind != confString) {
			return errConfig(path, "want a string, got %s", n.kind)
		}
		v.SetString(n.text)
	case reflect.Int:
		if n.kind != confNumber {
			return errConfig(path, "want an integer, got %s", n.kind)
		}
		var i int
		var err error
		if n.yaml != nil {
			if n.yaml.ShortTag() != "!!int" {
				return errConfig(path, "want an integer, got a number that is not one")
			}
			err = n.yaml.Decode(&i)
		} else {
			var i64 int64
			i64, err = strconv.ParseInt(n.text, 10, 0)
			i = int(i64)
		}
		if err != nil {
			return errConfig(path, "want an integer, got a number that is not one")
		}
		v.SetInt(int64(i))
	case reflect.Float64:
		if n.kind != confNumber {
			return errConfig(path, "want a number, got %s", n.kind)
		}
		var f float64
		var err error
		if n.yaml != nil {
			err = n.yaml.Decode(&f)
		} else {
			f, err = strconv.ParseFloat(n.text, 64)
		}
		if err != nil {
			return errConfig(path, "want a number")
		}
		v.SetFloat(f)
	case reflect.Bool:
		if n.kind != confBool {
			return errConfig(path, "want true or false, got %s", n.kind)
		}
		v.SetBool(n.text == "true" || (n.yaml != nil && decodesTrue(n.yaml)))
	default:
		return errConfig(path, "cannot be set from a configuration file")
	}
	return nil
}

func decodesTrue(y *yaml.Node) bool {
	var b bool
	return y.Decode(&b) == nil && b
}

// structFields maps the json names of t's fields to their index; fields
// tagged "-" (secrets) are not settable from a file.
func structFields(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = i
	}
	return out
}

func fieldNames(fields map[string]int) string {
	names := keysOf(fields)
	sort.Strings(names)
	return strings.Join(names, ", ")
}
