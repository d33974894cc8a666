package localsrv

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// What both harnesses wait for and retry, the same for any server.
const (
	// DefaultStartTimeout bounds a server's install and startup.
	DefaultStartTimeout = 30 * time.Second
	// StopGrace is how long a normal shutdown may take before SIGKILL.
	StopGrace = 10 * time.Second
	// WaitDelay bounds how long Wait keeps reading a child's output after
	// it exited, in case a grandchild still holds the pipe.
	WaitDelay = 2 * time.Second
	// BindAttempts: a port picked by listening on :0 can be taken by
	// someone else before the server binds it; parallel tests make that
	// real.
	BindAttempts = 3
	// MaxSocketPath is sun_path's size on Linux minus the NUL.
	MaxSocketPath = 107
)

// VersionOutput runs a server binary's version command (bin args...) with
// env and returns what it printed. It also proves early that the binary
// runs at all (missing shared libraries, wrong architecture), before any
// directory is created.
func VersionOutput(ctx context.Context, env []string, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), ctx.Err())
		}
		return "", fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// WordAfter is the word that follows marker in a version command's output
// ("15.18" after "(PostgreSQL)"), or "" when there is none.
func WordAfter(out, marker string) string {
	fields := strings.Fields(out)
	for i, f := range fields {
		if f == marker && i+1 < len(fields) {
			return fields[i+1]
		}
	}
	return ""
}
