//go:build linux && (amd64 || arm64 || riscv64 || loong64)

package localpg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

const (
	ipcRMID = 0 // IPC_RMID
	ipcStat = 2 // IPC_STAT
)

// removeStaleShm deletes the small System V shared memory segment that a
// postmaster killed with SIGKILL leaves behind (a clean or immediate
// shutdown removes it itself). Leaked segments count against the kernel's
// shmmni limit (4096), which long-lived CI machines would eventually hit.
// The segment is named in line 7 of postmaster.pid ("key shmid"), which a
// dead postmaster leaves in place; the key is checked before removal so an
// id reused by someone else is left alone.
func removeStaleShm(dataDir string) error {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // clean shutdown: nothing left
		}
		return fmt.Errorf("localpg: read postmaster.pid: %w", err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return nil
	}
	fields := strings.Fields(lines[6])
	if len(fields) != 2 {
		return nil
	}
	key, err1 := strconv.ParseInt(fields[0], 10, 64)
	shmid, err2 := strconv.ParseInt(fields[1], 10, 64)
	if err1 != nil || err2 != nil || shmid < 0 {
		return nil
	}
	var ds [256]byte // struct shmid64_ds; the key is its first field
	if _, _, e := syscall.Syscall(syscall.SYS_SHMCTL, uintptr(shmid), ipcStat, uintptr(unsafe.Pointer(&ds[0]))); e != 0 {
		if e == syscall.EINVAL || e == syscall.EIDRM {
			return nil // already gone
		}
		return fmt.Errorf("localpg: shmctl IPC_STAT %d: %w", shmid, e)
	}
	if int32(binary.NativeEndian.Uint32(ds[:4])) != int32(key) {
		return nil
	}
	if _, _, e := syscall.Syscall(syscall.SYS_SHMCTL, uintptr(shmid), ipcRMID, 0); e != 0 && e != syscall.EINVAL && e != syscall.EIDRM {
		return fmt.Errorf("localpg: remove shared memory segment %d: %w", shmid, e)
	}
	return nil
}
