package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// livingChildren lists this process's children that are still running
// (not zombies), each as "pid: command line". Checked at the end of the
// suite, after the shared servers stopped: a proxy binary or a client a
// test started and never ended outlives the suite otherwise (the MFA tests
// once left one per run).
func livingChildren() []string {
	self := os.Getpid()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var found []string
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after
		// the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != self {
			continue
		}
		dir := filepath.Dir(path)
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		found = append(found, fmt.Sprintf("%s: %s", filepath.Base(dir), strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))))
	}
	return found
}

// endLivingChildren waits up to grace for the children to end, then
// kills those left and returns them.
func endLivingChildren(grace time.Duration) []string {
	deadline := time.Now().Add(grace)
	left := livingChildren()
	for len(left) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		left = livingChildren()
	}
	for _, c := range left {
		pid, _ := strconv.Atoi(c[:strings.IndexByte(c, ':')])
		if p, err := os.FindProcess(pid); err == nil {
			p.Kill() // SIGKILL; os rather than syscall, so the package compiles for Windows too
		}
	}
	return left
}
