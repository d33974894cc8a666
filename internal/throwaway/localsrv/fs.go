package localsrv

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// MakeBaseDir returns the absolute directory holding a server's files, and
// whether we created it (and so must remove it). "" makes a new temp dir
// named prefix*: a temp dir of our own rather than t.TempDir(), which is
// 0700 root-owned and so closed to the server's user.
func MakeBaseDir(dir, prefix string) (string, bool, error) {
	if dir == "" {
		d, err := os.MkdirTemp(os.TempDir(), prefix)
		if err != nil {
			return "", false, fmt.Errorf("create temp dir: %w", err)
		}
		return d, true, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false, fmt.Errorf("Options.Dir %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", false, fmt.Errorf("create Options.Dir: %w", err)
	}
	return abs, false, nil
}

// EnsureTraversable adds the search (x) bit for "other" to every component
// of dir, up to /, that the account could not otherwise enter. Only the x
// bit is added, never r: the account can reach its own files but still
// cannot list the directories. Nothing is changed without a user switch.
func (a Account) EnsureTraversable(dir string) error {
	if !a.Switch {
		return nil
	}
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if !a.canSearch(fi) {
			mode := fi.Mode()&(os.ModePerm|os.ModeSticky|os.ModeSetgid|os.ModeSetuid) | 0o001
			if err := os.Chmod(p, mode); err != nil {
				return fmt.Errorf("make %s traversable for user %s: %w", p, a.Name, err)
			}
		}
		if parent := filepath.Dir(p); parent == p {
			return nil
		}
	}
}

// canSearch applies the owner/group/other x bit the kernel would use for
// the account (supplementary groups are ignored, which at worst adds an x
// bit that was not strictly needed).
func (a Account) canSearch(fi os.FileInfo) bool {
	uid, gid, ok := fileOwner(fi)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case uid == a.UID:
		return perm&0o100 != 0
	case gid == a.GID:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// MkOwnedDir creates dir (or accepts an existing one) with exactly mode
// and gives it to the account: servers want to own their data directory
// and create their socket and lock files next to it.
func (a Account) MkOwnedDir(dir string, mode os.FileMode) error {
	if err := os.Mkdir(dir, mode); err != nil && !os.IsExist(err) {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return a.Chown(dir)
}

// WriteOwnedFile writes a file the server reads, owned by the account with
// exactly mode (servers reject a private key readable by others).
func (a Account) WriteOwnedFile(path string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	return a.Chown(path)
}

// Chown gives path to the account; a no-op without a user switch.
func (a Account) Chown(path string) error {
	if !a.Switch {
		return nil
	}
	if err := os.Chown(path, a.UID, a.GID); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, a.Name, err)
	}
	return nil
}

// IsRealExecutable reports whether path (after symlinks) is an executable
// regular file that is not an interpreter script. Distributions install
// wrapper scripts under server program names (Debian's pg_wrapper); they
// would fail later with confusing errors, so callers reject them.
func IsRealExecutable(path string) bool {
	if !IsExecutable(path) {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 2)
	if _, err := io.ReadFull(f, head); err != nil {
		return false
	}
	return !bytes.Equal(head, []byte("#!"))
}

// IsExecutable reports whether path (after symlinks) is an executable
// regular file, script or not.
func IsExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
