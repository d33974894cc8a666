package loadgen

import (
	"fmt"
	"os/exec"
	"sync"
)

// Hog keeps CPUs busy with separate processes (shell busy loops), so a
// storm runs on a loaded machine: the proxy's writes are then slow and
// its goroutines are descheduled at awkward moments, which is where issue
// 13's hang lived. Processes, not goroutines: they compete with the proxy
// and the servers as other programs on a busy host do, whatever this
// process's GOMAXPROCS.
type Hog struct {
	cmds []*exec.Cmd
	once sync.Once
}

// StartHog starts n busy processes. Stop them with Stop.
func StartHog(n int) (*Hog, error) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		return nil, fmt.Errorf("loadgen: the CPU hog needs sh: %w", err)
	}
	h := &Hog{}
	for range n {
		cmd := exec.Command(sh, "-c", "while :; do :; done")
		cmd.SysProcAttr = hogProcAttr()
		if err := cmd.Start(); err != nil {
			h.Stop()
			return nil, fmt.Errorf("loadgen: start CPU hog: %w", err)
		}
		h.cmds = append(h.cmds, cmd)
	}
	return h, nil
}

// Stop kills the hog's processes and waits for them. Safe to call twice
// and on nil.
func (h *Hog) Stop() {
	if h == nil {
		return
	}
	h.once.Do(func() {
		for _, c := range h.cmds {
			c.Process.Kill()
		}
		for _, c := range h.cmds {
			c.Wait()
		}
	})
}
