package tlsca

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// GlobalBundleURL is AWS's published bundle of every commercial-region RDS CA.
const GlobalBundleURL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"

// Options say where the bundle comes from.
type Options struct {
	// File is a bundle the user gave (--ca-bundle). When set nothing is
	// downloaded.
	File string
	// CacheDir holds the downloaded bundle; default
	// $XDG_CACHE_HOME/rds-iam-proxy (os.UserCacheDir).
	CacheDir string
	// URL to download from; default GlobalBundleURL.
	URL string
	// HTTPClient for the download; default a client with a 30 s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock used to drop expired CAs; default time.Now.
	Now func() time.Time
}

// Load returns the bundle from File, else from the cache, else downloads it
// into the cache. A cached copy that no longer parses or holds only expired
// CAs is downloaded again.
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
		data, err := readBounded(o.File)
		if err != nil {
			return nil, fmt.Errorf("read CA bundle: %w", err)
		}
		return ParseBundle(data, o.File, now())
	}

	dir := o.CacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("no cache directory for the RDS CA bundle (%w); pass --ca-bundle", err)
		}
		dir = filepath.Join(base, "rds-iam-proxy")
	}
	url := o.URL
	if url == "" {
		url = GlobalBundleURL
	}
	cached := filepath.Join(dir, filepath.Base(url))
	if data, err := readBounded(cached); err == nil {
		b, perr := ParseBundle(data, cached, now())
		if perr == nil {
			log.Debug("using cached RDS CA bundle", "path", cached, "cas", len(b.Certs))
			return b, nil
		}
		log.Warn("cached RDS CA bundle is unusable, downloading again", "path", cached, "err", perr)
	}

	data, err := download(ctx, o.HTTPClient, url)
	if err != nil {
		return nil, fmt.Errorf("download the RDS CA bundle from %s: %w (no network? download it yourself and pass --ca-bundle FILE)", url, err)
	}
	b, err := ParseBundle(data, url, now())
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(dir, cached, data); err != nil {
		log.Warn("could not cache the RDS CA bundle; it will be downloaded again next start", "path", cached, "err", err)
	} else {
		log.Info("downloaded RDS CA bundle", "url", url, "path", cached, "cas", len(b.Certs))
	}
	b.Source = cached
	return b, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBundleSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxBundleSize {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a CA bundle", path, maxBundleSize)
	}
	return data, nil
}

func download(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBundleSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxBundleSize {
		return nil, fmt.Errorf("answer larger than %d bytes", maxBundleSize)
	}
	return data, nil
}

// writeAtomic writes through a temporary file and a rename, so a crash or a
// second proxy starting at the same time never sees half a bundle.
func writeAtomic(dir, path string, data []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".bundle-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
