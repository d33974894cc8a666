package localsrv

import (
	"os"
	"strings"
)

// CleanEnv is our environment minus what would change what the server
// programs do behind our back: locale settings (the C locale keeps
// messages in English, which callers match on), HOME when home is set
// (replaced by it), and every variable for which drop returns true (the
// server's own variables: PG*, MYSQL_*, ...).
func CleanEnv(home string, drop func(key string) bool) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "LC_"), k == "LANG", k == "LANGUAGE":
			continue
		case k == "HOME" && home != "":
			continue
		case drop != nil && drop(k):
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C", "LANG=C")
	if home != "" {
		env = append(env, "HOME="+home)
	}
	return env
}
