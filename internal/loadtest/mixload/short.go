package mixload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// shortKind is one way of running a short session: its actor's state,
// and the session itself under tag.
type shortKind struct {
	doing string
	run   func(ctx context.Context, tag string) error
}

// shortWorker opens short sessions one after another until the run's time
// is up, rotating through the clients: every CLIEvery-th by cli when
// Options.CLI is set, the others by even and odd in turn.
func (r *run) shortWorker(a *actor, w int, cli, even, odd shortKind) {
	for n := 0; !r.stopping(); n++ {
		tag := fmt.Sprintf("%s_s%d_%d", r.id, w, n)
		k := odd
		switch {
		case r.opts.CLI != "" && n%r.opts.CLIEvery == r.opts.CLIEvery-1:
			k = cli
		case n%2 == 0:
			k = even
		}
		ctx, cancel := r.opCtx()
		a.doing(k.doing)
		err := k.run(ctx, tag)
		cancel()
		r.st.ops.Add(1)
		if err != nil {
			if !errors.Is(err, errWrong) {
				r.fail(tag, "short session", err)
			}
			return
		}
		r.st.shortSessions.Add(1)
	}
}

// cliSession runs cmd, a command-line client (name) that inserts row 1 of
// tag, as one short session. Its output must be two lines, fields split
// by sep: the tag (and the backend id), then the count 1 and the md5 of
// the row's payload.
func (r *run) cliSession(cmd *exec.Cmd, name, tag, sep string, binaryOK bool) error {
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	r.st.connects.Add(1)
	r.st.opened.Add(1)
	err := cmd.Run()
	r.st.closed.Add(1)
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	r.ledger.commit(tag, newBatch(tag, 1, 1, binaryOK))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], tag+sep) || lines[1] != "1"+sep+md5hex(payload(tag, 1, binaryOK)) {
		r.wrongAnswer(tag, name, "output %q", out.String())
		return errWrong
	}
	r.st.cliSessions.Add(1)
	r.st.identity.Add(1)
	return nil
}
