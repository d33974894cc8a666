package localpg

import (
	"fmt"
	"os"
	"path/filepath"
)

// makeBaseDir returns the absolute directory holding data/ and sock/, and
// whether we created it (and so must remove it). A temp dir of our own is
// used rather than t.TempDir(): those are 0700 root-owned, which the
// postgres user cannot enter.
func makeBaseDir(dir string) (string, bool, error) {
	if dir == "" {
		d, err := os.MkdirTemp(os.TempDir(), "localpg-")
		if err != nil {
			return "", false, fmt.Errorf("localpg: create temp dir: %w", err)
		}
		return d, true, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false, fmt.Errorf("localpg: Options.Dir %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", false, fmt.Errorf("localpg: create Options.Dir: %w", err)
	}
	return abs, false, nil
}

// ensureTraversable adds the search (x) bit for "other" to every component
// of dir, up to /, that the server's user could not otherwise enter. Only
// the x bit is added, never r: the user can reach its own files but still
// cannot list the directories. Nothing is changed when the server runs as
// ourselves.
func ensureTraversable(dir string, as runAs) error {
	if !as.switchUser {
		return nil
	}
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("localpg: stat %s: %w", p, err)
		}
		if !canSearch(fi, as) {
			mode := fi.Mode()&(os.ModePerm|os.ModeSticky|os.ModeSetgid|os.ModeSetuid) | 0o001
			if err := os.Chmod(p, mode); err != nil {
				return fmt.Errorf("localpg: make %s traversable for user %s: %w", p, as.name, err)
			}
		}
		if parent := filepath.Dir(p); parent == p {
			return nil
		}
	}
}

// canSearch applies the owner/group/other x bit the kernel would use for
// the server's user (supplementary groups are ignored, which at worst adds
// an x bit that was not strictly needed).
func canSearch(fi os.FileInfo, as runAs) bool {
	uid, gid, ok := fileOwner(fi)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case uid == as.uid:
		return perm&0o100 != 0
	case gid == as.gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// mkOwnedDir creates dir (or accepts an existing one) with mode and gives
// it to the server's user: initdb requires to own its data directory, and
// postgres creates its socket and lock file in the socket directory.
func mkOwnedDir(dir string, mode os.FileMode, as runAs) error {
	if err := os.Mkdir(dir, mode); err != nil && !os.IsExist(err) {
		return fmt.Errorf("localpg: create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("localpg: chmod %s: %w", dir, err)
	}
	return chownTo(dir, as)
}

// writeOwnedFile writes a file the server reads, owned by its user with
// exactly mode (PostgreSQL rejects a key readable by others).
func writeOwnedFile(path string, data []byte, mode os.FileMode, as runAs) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("localpg: write %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("localpg: chmod %s: %w", path, err)
	}
	return chownTo(path, as)
}

func chownTo(path string, as runAs) error {
	if !as.switchUser {
		return nil
	}
	if err := os.Chown(path, as.uid, as.gid); err != nil {
		return fmt.Errorf("localpg: chown %s to %s: %w", path, as.name, err)
	}
	return nil
}
