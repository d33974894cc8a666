package srvtest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ProcStat returns the parent pid of a process from /proc; ok is false
// if it is gone or a zombie (a killed, not yet reaped process is dead for
// us).
func ProcStat(pid int) (ppid int, ok bool) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	// Fields after the ")" that ends the command name: state ppid ...
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 || fields[0] == "Z" || fields[0] == "X" {
		return 0, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	return ppid, true
}
