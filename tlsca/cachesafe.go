package tlsca

import (
	"fmt"
	"io/fs"
	"os"
)

// A cached bundle is a set of trust anchors: whoever can change it can make
// the proxy trust their own CA and read every IAM token it sends. So a
// cached file is used only if nobody but its reader (or root) could have
// written it: the file must not be writable by group or others and must be
// owned by the user the proxy runs as or by root, and the cache directory,
// where anyone allowed to write could replace the file, is held to the same
// rule unless its sticky bit is set (as on /tmp). A refused file is
// downloaded again; a refused directory is neither read nor written.

// unsafeFile says why a cached file with info fi must not be trusted, or ""
// when it may be.
func unsafeFile(path string, fi fs.FileInfo) string {
	if !fi.Mode().IsRegular() {
		return fmt.Sprintf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Sprintf("%s is writable by %s (mode %04o)", path, writers(perm), perm)
	}
	if uid, ok := ownerOf(fi); ok && !trustedOwner(uid) {
		return fmt.Sprintf("%s is owned by uid %d, not by uid %d that the proxy runs as (nor root)", path, uid, os.Geteuid())
	}
	return ""
}

// unsafeDir says why the cache directory dir must not be used, or "" when
// it may be (or does not exist yet: it is then made 0755).
func unsafeDir(dir string) string {
	fi, err := os.Stat(dir)
	if err != nil {
		return ""
	}
	if !fi.IsDir() {
		return fmt.Sprintf("%s is not a directory", dir)
	}
	perm := fi.Mode().Perm()
	if perm&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return fmt.Sprintf("the cache directory %s is writable by %s (mode %04o), who could replace the bundle", dir, writers(perm), perm)
	}
	if uid, ok := ownerOf(fi); ok && !trustedOwner(uid) {
		return fmt.Sprintf("the cache directory %s is owned by uid %d, not by uid %d that the proxy runs as (nor root)", dir, uid, os.Geteuid())
	}
	return ""
}

func writers(perm fs.FileMode) string {
	switch {
	case perm&0o020 != 0 && perm&0o002 != 0:
		return "group and others"
	case perm&0o020 != 0:
		return "its group"
	}
	return "others"
}

// trustedOwner: the proxy's own user, or root (who could change anything
// anyway).
func trustedOwner(uid int) bool { return uid == 0 || uid == os.Geteuid() }

// permissionsFix is the command that makes path (a file or the cache
// directory) acceptable.
func permissionsFix(path string) string {
	return fmt.Sprintf("chmod go-w %s && chown %d %s", path, os.Geteuid(), path)
}
