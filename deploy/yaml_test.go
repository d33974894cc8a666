package deploy

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"go.yaml.in/yaml/v3"
)

// yamlDocs decodes every document of a YAML file into maps.
func yamlDocs(t *testing.T, rel string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, rel)))
	var docs []map[string]any
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if m != nil {
			docs = append(docs, m)
		}
	}
	return docs
}

// decodeInto decodes a YAML file (one document) into v strictly. The
// Kubernetes and compose schemas are not vendored here: the structs below
// name the subset of their fields these files use, so a misspelt or
// misplaced key fails.
func decodeInto(t *testing.T, rel string, v any) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, rel)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}
