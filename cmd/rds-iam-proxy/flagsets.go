package main

import (
	"context"
	"flag"
	"io"
)

// flagSetCatcher stands in for a command's stderr when only its flag set
// is wanted (help pages, completion scripts, the spelling tests): the
// command builds its flags as it always does, and parseFlags, seeing the
// catcher, hands the set over and stops the command before anything
// runs. So every command's flags are listed from the very code that
// parses them, with no second list to keep in step.
type flagSetCatcher struct {
	io.Writer
	sets []*flag.FlagSet
}

// errCaught stops a command once its flag set is caught; it takes the
// path of -h, whose exit status is 0 and which prints nothing here.
var errCaught = flag.ErrHelp

// catch records fs when w is a catcher and says whether it was.
func catch(fs *flag.FlagSet, w io.Writer) bool {
	c, ok := w.(*flagSetCatcher)
	if ok {
		c.sets = append(c.sets, fs)
	}
	return ok
}

// flagSetOf returns the flag set of a command ("run", "setup sql"), freshly
// built and unparsed, or nil for a command without flags or unknown.
func flagSetOf(cmd []string) *flag.FlagSet {
	c := &flagSetCatcher{Writer: io.Discard}
	args := append(append([]string(nil), cmd...), "-h")
	runMain(context.Background(), args, io.Discard, c)
	if len(c.sets) == 0 {
		return nil
	}
	return c.sets[0]
}
