package tlsca

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"time"
)

// Defaults for Options.
const (
	// DefaultMaxAge is how old a cached download may get before Load asks
	// the server whether it changed (a conditional GET).
	DefaultMaxAge = 24 * time.Hour
	// DefaultDownloadTimeout bounds one download, body included.
	DefaultDownloadTimeout = 30 * time.Second
)

// Options say where the bundle comes from.
type Options struct {
	// File is a bundle the user gave (--ca-bundle). When set nothing is
	// downloaded or cached.
	File string
	// URL to download from (--ca-bundle-url). Default: Region's bundle,
	// else the global bundle of DBRegion's partition.
	URL string
	// Region selects AWS's regional bundle (--ca-bundle-region): only the
	// CAs of that region, on its partition's trust store.
	Region string
	// DBRegion is the DB's region: with no URL and no Region, the global
	// bundle of its partition (commercial, GovCloud, China) is used.
	DBRegion string
	// CacheDir holds downloaded bundles; default
	// os.UserCacheDir()/rds-iam-proxy.
	CacheDir string
	// MaxAge: a cached download older than this is revalidated with a
	// conditional GET; default DefaultMaxAge.
	MaxAge time.Duration
	// Timeout bounds one download, body included; default
	// DefaultDownloadTimeout.
	Timeout time.Duration
	// HTTPClient for the download; default a client that refuses
	// redirects away from https.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock used for expiry and cache age; default time.Now.
	Now func() time.Time
}

// cacheMeta is stored beside a cached bundle.
type cacheMeta struct {
	URL          string    `json:"url"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	Fetched      time.Time `json:"fetched"`
	SHA256       string    `json:"sha256"`
}

// Load returns the trusted CAs, and logs what is worth knowing about them
// ([Bundle.Report]).
//
// With File, the file is read and nothing else happens. Otherwise the
// bundle is downloaded and cached under CacheDir (written through a temp
// file and a rename, with its ETag and Last-Modified). A cached copy
// younger than MaxAge is used without a request; an older one is
// revalidated with a conditional GET (304: keep it; 200: replace it). When
// the server cannot be reached, answers an error, or sends something that
// is not a usable bundle, a cached copy is used with a warning; with no
// cached copy Load fails with an error that says how to pass a bundle file.
// Downloads are limited in size (4 MiB) and time (Timeout).
func Load(ctx context.Context, o Options) (*Bundle, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.File != "" {
		b, err := loadFile(o.File, now())
		if err != nil {
			return nil, err
		}
		b.Report(log, now())
		log.Info("using CA bundle file", "bundle", b.Describe())
		return b, nil
	}
	b, err := loadDownload(ctx, o, now, log)
	if err != nil {
		return nil, err
	}
	b.Report(log, now())
	return b, nil
}

func loadFile(path string, now time.Time) (*Bundle, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	b, err := ParseBundle(data, path, now)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil {
		b.Fetched = fi.ModTime()
	}
	return b, nil
}

func loadDownload(ctx context.Context, o Options, now func() time.Time, log *slog.Logger) (*Bundle, error) {
	raw := o.URL
	if raw == "" && o.Region != "" {
		var err error
		if raw, err = BundleURL(o.Region); err != nil {
			return nil, fmt.Errorf("--ca-bundle-region: %w", err)
		}
	}
	if raw == "" {
		raw = GlobalBundleURLFor(o.DBRegion)
	}
	u, err := checkDownloadURL(raw)
	if err != nil {
		return nil, err
	}
	dir := o.CacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("no cache directory for the RDS CA bundle (%w); pass --cache-dir DIR, or --ca-bundle FILE with a bundle you downloaded", err)
		}
		dir = filepath.Join(base, "rds-iam-proxy")
	}
	maxAge := o.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	path := filepath.Join(dir, cacheName(u))
	shown := redactURL(u) // for logs, messages and the cache metadata
	log = log.With("url", shown, "cache", path)

	// A cache others could have written is not used (cachesafe.go).
	var cached *Bundle
	var meta *cacheMeta
	dirProblem := unsafeDir(dir)
	refused := dirProblem
	if dirProblem != "" {
		log.Warn("not using the RDS CA bundle cache: "+dirProblem+"; the bundle is downloaded and not cached",
			"fix", permissionsFix(dir))
	} else {
		cached, meta, refused = readCache(path, shown, now(), log)
	}
	if cached != nil && now().Sub(meta.Fetched) < maxAge {
		log.Debug("using cached RDS CA bundle", "fetched", meta.Fetched, "cas", len(cached.Certs))
		return cached, nil
	}

	var cond *cacheMeta
	if cached != nil {
		cond = meta
	}
	res, err := fetch(ctx, o, raw, cond)
	if err == nil && !res.notModified {
		var b *Bundle
		b, err = ParseBundle(res.body, shown, now())
		if err == nil {
			nm := &cacheMeta{URL: shown, ETag: res.etag, LastModified: res.lastModified, Fetched: now(), SHA256: digest(res.body)}
			b.Source, b.URL, b.Fetched = path, shown, nm.Fetched
			if dirProblem != "" {
				b.Source = shown
				log.Info("downloaded RDS CA bundle (not cached)", "cas", len(b.Certs))
			} else if werr := writeCache(dir, path, res.body, nm); werr != nil {
				log.Warn("could not cache the RDS CA bundle; it will be downloaded again next start", "err", werr)
				b.Source = shown
			} else if cached != nil {
				log.Info("RDS CA bundle changed on the server; cache replaced", "cas", len(b.Certs), "was", len(cached.Certs))
			} else {
				log.Info("downloaded RDS CA bundle", "cas", len(b.Certs))
			}
			return b, nil
		}
		err = fmt.Errorf("the server sent something that is not a usable bundle: %w", err)
	}
	if err == nil { // 304 Not Modified
		if cached == nil {
			return nil, fmt.Errorf("download the RDS CA bundle from %s: the server answered 304 Not Modified to an unconditional request", shown)
		}
		meta.Fetched = now()
		cached.Fetched = meta.Fetched
		if werr := writeMeta(dir, path, meta); werr != nil {
			log.Warn("could not record the bundle's revalidation; it will be checked again next start", "err", werr)
		}
		log.Debug("cached RDS CA bundle is current (304 Not Modified)", "cas", len(cached.Certs))
		return cached, nil
	}
	if cached != nil {
		log.Warn("could not refresh the RDS CA bundle; using the cached copy", "err", err,
			"fetched", meta.Fetched.UTC().Format(time.RFC3339), "cas", len(cached.Certs))
		return cached, nil
	}
	if refused != "" {
		fixPath := path
		if dirProblem != "" {
			fixPath = dir
		}
		return nil, fmt.Errorf("download the RDS CA bundle from %s: %w; the cached copy is not used: %s, so whoever can write it could make the proxy trust their own CA. Fix: make it yours and writable only by you (%s), or delete it, and restore network access to %s; or pass --ca-bundle FILE with a bundle you downloaded",
			shown, err, refused, permissionsFix(fixPath), u.Host)
	}
	return nil, fmt.Errorf("download the RDS CA bundle from %s: %w; there is no cached copy in %s. Fix: restore network access to %s, or download the bundle elsewhere (curl -o rds-ca.pem %s) and pass --ca-bundle rds-ca.pem",
		shown, err, dir, u.Host, shown)
}

// readCache returns the cached bundle for url and its metadata, or nil when
// there is none or it is unusable (logged). A bundle others could have
// written is refused: refused says why. A bundle whose metadata is
// missing, refused or does not match it is used, but treated as stale and
// fetched unconditionally.
func readCache(path, url string, now time.Time, log *slog.Logger) (b *Bundle, meta *cacheMeta, refused string) {
	data, why, err := readCached(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("cannot read the cached RDS CA bundle", "err", err)
		}
		return nil, nil, ""
	}
	if why != "" {
		log.Warn("refusing the cached RDS CA bundle ("+why+"): whoever can write it could make the proxy trust their own CA; downloading it again",
			"file", path, "fix", permissionsFix(path)+" (or delete it)")
		return nil, nil, why
	}
	b, err = ParseBundle(data, path, now)
	if err != nil {
		log.Warn("cached RDS CA bundle is unusable; downloading again", "err", err)
		return nil, nil, ""
	}
	meta = &cacheMeta{}
	mdata, mwhy, err := readCached(path + ".json")
	if mwhy != "" {
		log.Warn("ignoring the cached RDS CA bundle's metadata ("+mwhy+"); revalidating the bundle", "file", path+".json")
	}
	if err != nil || mwhy != "" || json.Unmarshal(mdata, meta) != nil || meta.URL != url || meta.SHA256 != digest(data) {
		meta = &cacheMeta{URL: url} // zero Fetched: stale, no validators
	}
	b.URL, b.Fetched = url, meta.Fetched
	if b.Fetched.IsZero() {
		if fi, err := os.Stat(path); err == nil {
			b.Fetched = fi.ModTime()
		}
	}
	return b, meta, ""
}

// readCached reads a cache file, unless it is not safe to trust: then why
// says so and nothing is read. The check is on the file opened, so it
// cannot be swapped between the check and the read.
func readCached(path string) (data []byte, why string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "", err
	}
	if why := unsafeFile(path, fi); why != "" {
		return nil, why, nil
	}
	data, err = readAllBounded(f, path)
	return data, "", err
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllBounded(f, path)
}

// readAllBounded reads r (the file path) whole, up to the size a bundle
// may have.
func readAllBounded(r io.Reader, path string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxBundleSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxBundleSize {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a CA bundle", path, maxBundleSize)
	}
	return data, nil
}

type fetched struct {
	notModified        bool
	body               []byte
	etag, lastModified string
}

// errRedirectDowngrade stops a redirect from https to anything else.
var errRedirectDowngrade = errors.New("redirect away from https refused")

func fetch(ctx context.Context, o Options, url string, cond *cacheMeta) (*fetched, error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultDownloadTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" {
				return errRedirectDowngrade
			}
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return nil
		}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if cond != nil {
		if cond.ETag != "" {
			req.Header.Set("If-None-Match", cond.ETag)
		}
		if cond.LastModified != "" {
			req.Header.Set("If-Modified-Since", cond.LastModified)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *neturl.Error
		if errors.As(err, &ue) {
			ue.URL = redactURL(req.URL) // the query may be a credential
		}
		return nil, timeoutWords(ctx, err, timeout)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		if cond == nil {
			return nil, errors.New("HTTP 304 Not Modified to an unconditional request")
		}
		return &fetched{notModified: true}, nil
	default:
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	if resp.ContentLength > maxBundleSize {
		return nil, fmt.Errorf("the answer is %d bytes, more than the %d a CA bundle may have", resp.ContentLength, maxBundleSize)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBundleSize+1))
	if err != nil {
		return nil, timeoutWords(ctx, fmt.Errorf("read the answer: %w", err), timeout)
	}
	if len(body) > maxBundleSize {
		return nil, fmt.Errorf("the answer is more than the %d bytes a CA bundle may have", maxBundleSize)
	}
	if err := ctx.Err(); err != nil {
		// Cut short by the deadline, whatever the transport made of it.
		return nil, timeoutWords(ctx, fmt.Errorf("read the answer: %w", err), timeout)
	}
	return &fetched{body: body, etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")}, nil
}

// timeoutWords says "timed out after" when the download's own deadline cut
// err, keeping err in the chain.
func timeoutWords(ctx context.Context, err error, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	return err
}

// writeCache stores a bundle and its metadata, each through a temporary
// file and a rename, so a crash or a second proxy starting at the same time
// never sees half a bundle. The metadata carries the bundle's digest: if
// only the bundle got written, the stale metadata is recognised and
// ignored.
func writeCache(dir, path string, data []byte, meta *cacheMeta) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeAtomic(dir, path, data); err != nil {
		return err
	}
	return writeMeta(dir, path, meta)
}

func writeMeta(dir, path string, meta *cacheMeta) error {
	mdata, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(dir, path+".json", mdata)
}

func writeAtomic(dir, path string, data []byte) error {
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}
