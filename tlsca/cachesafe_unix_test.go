//go:build unix

package tlsca

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobody is the uid the tests give files "owned by another user".
const nobody = 65534

// cachedBundle downloads a bundle into a fresh cache and returns the
// server, the options (clock frozen: the cache stays fresh, so a load that
// downloads does so because the cache was refused), the cached file and the
// log.
func cachedBundle(t *testing.T) (*bundleServer, Options, string, *logBuffer) {
	t.Helper()
	ca := newCA(t, "rds-test-ca", time.Now().Add(365*24*time.Hour))
	srv := newBundleServer(t, ca.pem)
	logs := &logBuffer{}
	clk := &clock{t: time.Now()}
	opts := Options{URL: srv.url(), CacheDir: filepath.Join(t.TempDir(), "cache"), HTTPClient: srv.srv.Client(), Now: clk.now, Logger: logs.logger()}
	if _, err := Load(t.Context(), opts); err != nil {
		t.Fatal(err)
	}
	if srv.full.Load() != 1 {
		t.Fatalf("%d downloads to fill the cache", srv.full.Load())
	}
	return srv, opts, filepath.Join(opts.CacheDir, cacheName(mustURL(t, srv.url()))), logs
}

// chown gives path to uid. Tests run as root in CI; elsewhere the owner
// check is exercised through ownedBy below.
func chown(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Chown(path, uid, -1); err != nil {
		t.Fatalf("chown %s: %v", path, err)
	}
}

// ownedBy is a real file's info with its owner replaced: the owner check
// without root.
type ownedBy struct {
	fs.FileInfo
	uid uint32
}

func (o ownedBy) Sys() any {
	st := *o.FileInfo.Sys().(*syscall.Stat_t)
	st.Uid = o.uid
	return &st
}

// TestCachedBundleOthersCouldWriteIsRefused: a cached bundle that group or
// others may write, or that another user owns, is refused with a warning
// naming the file, why, and the fix, and downloaded again; the download
// replaces it with a file of the proxy's own, 0644. Safe modes are used
// without a download.
func TestCachedBundleOthersCouldWriteIsRefused(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(t *testing.T, path string)
		why   string
	}{
		{"world-writable", func(t *testing.T, p string) { os.Chmod(p, 0o666) }, "is writable by group and others (mode 0666)"},
		{"group-writable", func(t *testing.T, p string) { os.Chmod(p, 0o664) }, "is writable by its group (mode 0664)"},
		{"others-writable", func(t *testing.T, p string) { os.Chmod(p, 0o646) }, "is writable by others (mode 0646)"},
		{"owned by another user", func(t *testing.T, p string) { chown(t, p, nobody) }, "is owned by uid 65534"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "owned by another user" && os.Geteuid() != 0 {
				fi, err := os.Stat(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				if why := unsafeFile("f", ownedBy{fi, nobody}); !strings.Contains(why, "owned by uid 65534") {
					t.Fatalf("unsafeFile for another owner: %q", why)
				}
				return // without root the file cannot be given away
			}
			srv, opts, path, logs := cachedBundle(t)
			c.spoil(t, path)
			b, err := Load(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if srv.full.Load() != 2 || len(b.Certs) != 1 {
				t.Fatalf("%d downloads, %d CAs: the refused cache was not downloaded again", srv.full.Load(), len(b.Certs))
			}
			for _, want := range []string{"refusing the cached RDS CA bundle", path + " " + c.why, "fix=\"chmod go-w " + path} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, logs.String())
				}
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if why := unsafeFile(path, fi); why != "" || fi.Mode().Perm() != 0o644 {
				t.Errorf("the download left the cache unsafe: mode %04o, %s", fi.Mode().Perm(), why)
			}
			// Now safe: used as is.
			if _, err := Load(t.Context(), opts); err != nil || srv.full.Load() != 2 {
				t.Errorf("repaired cache not used: %v, %d downloads", err, srv.full.Load())
			}
		})
	}

	t.Run("read-only modes and root are fine", func(t *testing.T) {
		srv, opts, path, logs := cachedBundle(t)
		for _, mode := range []fs.FileMode{0o600, 0o644, 0o444} {
			os.Chmod(path, mode)
			if _, err := Load(t.Context(), opts); err != nil {
				t.Fatal(err)
			}
		}
		if os.Geteuid() == 0 {
			chown(t, path, 0)
			if _, err := Load(t.Context(), opts); err != nil {
				t.Fatal(err)
			}
		}
		if srv.full.Load() != 1 || strings.Contains(logs.String(), "refusing") {
			t.Errorf("a safe cache was refused (%d downloads):\n%s", srv.full.Load(), logs.String())
		}
	})

	t.Run("metadata others could write is ignored", func(t *testing.T) {
		srv, opts, path, logs := cachedBundle(t)
		os.Chmod(path+".json", 0o666)
		if _, err := Load(t.Context(), opts); err != nil {
			t.Fatal(err)
		}
		// Without trusted metadata the bundle counts as stale: fetched in
		// full, without the validators the metadata held.
		if srv.full.Load() != 2 || srv.conditional.Load() != 0 || !strings.Contains(logs.String(), "ignoring the cached RDS CA bundle's metadata") {
			t.Errorf("%d downloads, %d conditional:\n%s", srv.full.Load(), srv.conditional.Load(), logs.String())
		}
	})
}

// TestCacheDirectoryOthersCouldWriteIsNotUsed: in a directory others may
// write (without the sticky bit) or another user owns, anyone could replace
// the bundle: the cache is neither read nor written there, and the bundle
// is downloaded on every load. The sticky bit (as on /tmp) makes it safe.
func TestCacheDirectoryOthersCouldWriteIsNotUsed(t *testing.T) {
	for _, c := range []struct {
		name  string
		spoil func(t *testing.T, dir string)
		why   string
	}{
		{"world-writable", func(t *testing.T, d string) { os.Chmod(d, 0o777) }, "is writable by group and others (mode 0777)"},
		{"owned by another user", func(t *testing.T, d string) { chown(t, d, nobody) }, "is owned by uid 65534"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "owned by another user" && os.Geteuid() != 0 {
				fi, err := os.Stat(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				if owner, _ := ownerOf(ownedBy{fi, nobody}); owner != nobody || trustedOwner(owner) {
					t.Fatalf("owner %d trusted", owner)
				}
				return // without root the directory cannot be given away
			}
			srv, opts, path, logs := cachedBundle(t)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			c.spoil(t, opts.CacheDir)
			b, err := Load(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if srv.full.Load() != 2 || b.Source != srv.url() {
				t.Fatalf("%d downloads, source %s: want a download that is not cached", srv.full.Load(), b.Source)
			}
			for _, want := range []string{"not using the RDS CA bundle cache: the cache directory " + opts.CacheDir + " " + c.why, "chmod go-w " + opts.CacheDir} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, logs.String())
				}
			}
			if after, err := os.ReadFile(path); err != nil || string(after) != string(before) {
				t.Errorf("the cache in an unsafe directory was written: %v", err)
			}
			assertNoTempFiles(t, opts.CacheDir)
		})
	}

	t.Run("sticky bit", func(t *testing.T) {
		srv, opts, _, logs := cachedBundle(t)
		if err := os.Chmod(opts.CacheDir, 0o777|fs.ModeSticky); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(t.Context(), opts); err != nil {
			t.Fatal(err)
		}
		if srv.full.Load() != 1 || strings.Contains(logs.String(), "not using") {
			t.Errorf("a sticky cache directory was refused (%d downloads):\n%s", srv.full.Load(), logs.String())
		}
	})
}

// TestRefusedCacheOffline: with the server unreachable and the cached copy
// refused, Load fails with a message that names the file, why, and how to
// fix the permissions.
func TestRefusedCacheOffline(t *testing.T) {
	srv, opts, path, _ := cachedBundle(t)
	os.Chmod(path, 0o666)
	srv.srv.Close()
	_, err := Load(t.Context(), opts)
	if err == nil {
		t.Fatal("a refused cache was used offline")
	}
	for _, want := range []string{"download the RDS CA bundle from " + srv.url(), "the cached copy is not used: " + path + " is writable by group and others",
		"could make the proxy trust their own CA", "Fix: make it yours and writable only by you (chmod go-w " + path, "or delete it", "--ca-bundle"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}

	// The same for a directory others may write.
	_, opts2, _, _ := cachedBundle(t)
	opts2.URL, opts2.HTTPClient = opts.URL, opts.HTTPClient
	os.Chmod(opts2.CacheDir, 0o777)
	if _, err := Load(t.Context(), opts2); err == nil || !strings.Contains(err.Error(), "the cached copy is not used: the cache directory "+opts2.CacheDir) ||
		!strings.Contains(err.Error(), "chmod go-w "+opts2.CacheDir) {
		t.Errorf("unsafe directory offline: %v", err)
	}
}
