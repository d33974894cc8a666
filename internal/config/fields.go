package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// field is one setting: its YAML key and where it sits in its struct.
type field struct {
	key   string
	index []int
	usage string
}

// flagName is a key as a flag: max_shutdown_delay is max-shutdown-delay.
func (f field) flagName() string { return strings.ReplaceAll(f.key, "_", "-") }

// fieldsOf lists the settings of a struct type, walking inline structs.
// The upstreams list is not a setting.
func fieldsOf(t reflect.Type) []field {
	var out []field
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			idx := append(append([]int(nil), prefix...), i)
			tag := sf.Tag.Get("yaml")
			if tag == ",inline" {
				walk(sf.Type, idx)
				continue
			}
			key, _, _ := strings.Cut(tag, ",")
			if key == "" || key == "upstreams" {
				continue
			}
			out = append(out, field{key: key, index: idx, usage: sf.Tag.Get("usage")})
		}
	}
	walk(t, nil)
	return out
}

var (
	settingsFields = fieldsOf(reflect.TypeOf(Settings{}))
	upstreamFields = fieldsOf(reflect.TypeOf(Upstream{}))
	defaultsFields = fieldsOf(reflect.TypeOf(Defaults{}))
)

// setFromString sets a string, Engine, int, bool or Duration field from
// text.
func setFromString(v reflect.Value, s string) error {
	switch p := v.Addr().Interface().(type) {
	case *string:
		*p = s
	case *Engine:
		return p.Set(s)
	case *Duration:
		return p.Set(s)
	case *int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		*p = n
	case *bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		*p = b
	default:
		return fmt.Errorf("unsupported setting type %s", v.Type())
	}
	return nil
}

// keysOf lists fields' keys, sorted, for messages.
func keysOf(fields []field) string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// ParseUpstream reads an upstream written on one line, as --upstream takes
// it: comma-separated key=value pairs with the YAML keys, e.g.
// "name=orders,engine=postgres,endpoint=db.x.rds.amazonaws.com:5432,listen=127.0.0.1:5432".
// A piece without "=" continues the previous value, so a role chain can be
// written role_arn=arn:aws:iam::1:role/a,arn:aws:iam::2:role/b.
func ParseUpstream(spec string) (Upstream, error) {
	var u Upstream
	var pairs [][2]string
	for _, piece := range strings.Split(spec, ",") {
		piece = strings.TrimSpace(piece)
		if piece == "" {
			continue
		}
		k, v, ok := strings.Cut(piece, "=")
		if !ok {
			if len(pairs) == 0 {
				return u, fmt.Errorf("%q: want key=value", piece)
			}
			pairs[len(pairs)-1][1] += "," + piece
			continue
		}
		pairs = append(pairs, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	v := reflect.ValueOf(&u).Elem()
	seen := map[string]bool{}
	for _, kv := range pairs {
		f, ok := lookup(upstreamFields, kv[0])
		if !ok {
			return u, fmt.Errorf("unknown key %q (keys: %s)", kv[0], keysOf(upstreamFields))
		}
		if seen[f.key] {
			return u, fmt.Errorf("%s given twice", f.key)
		}
		seen[f.key] = true
		if err := setFromString(v.FieldByIndex(f.index), kv[1]); err != nil {
			return u, fmt.Errorf("%s: %w", f.key, err)
		}
	}
	if len(pairs) == 0 {
		return u, fmt.Errorf("empty upstream")
	}
	return u, nil
}

// lookup finds a field by key; "-" and "_" are the same.
func lookup(fields []field, key string) (field, bool) {
	key = strings.ReplaceAll(key, "-", "_")
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

// Usage is the help text of a setting (key as in the file), for commands
// that take the setting without the rest of the table (the demo's and the
// emulator's log flags): one text wherever the flag appears.
func Usage(key string) string {
	for _, fields := range [][]field{settingsFields, upstreamFields} {
		if f, ok := lookup(fields, key); ok {
			return f.usage
		}
	}
	panic(fmt.Sprintf("config: no setting %q", key))
}
