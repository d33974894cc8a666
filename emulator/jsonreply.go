package emulator

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// writeJSON answers with v as a JSON body and its length, as the JSON
// services the emulator plays (container credentials, SSO) answer, with
// any extra headers the caller set before.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only reachable by a programming error in the callers' types.
		http.Error(w, "emulator: encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
