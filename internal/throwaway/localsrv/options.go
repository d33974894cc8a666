package localsrv

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// TLSFiles are PEM-encoded server credentials; CAPEM is optional, and
// when set the server can verify client certificates with it.
type TLSFiles struct{ CertPEM, KeyPEM, CAPEM []byte }

// CheckOptions rejects what either server would refuse later with a less
// helpful message, before anything is created: a port out of range, TLS
// without a certificate or key, and a setting value that would start
// another line of the configuration file.
func CheckOptions(port int, tls *TLSFiles, settings map[string]string) error {
	if port < 0 || port > 65535 {
		return fmt.Errorf("Options.Port %d out of range", port)
	}
	if tls != nil && (len(tls.CertPEM) == 0 || len(tls.KeyPEM) == 0) {
		return errors.New("Options.TLS needs both CertPEM and KeyPEM")
	}
	for k, v := range settings {
		if strings.ContainsAny(v, "\n\r\x00") {
			return fmt.Errorf("setting %q: value contains a line break or NUL", k)
		}
	}
	return nil
}

// StartTimeout is Options.StartTimeout d, or DefaultStartTimeout when d
// is not set.
func StartTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultStartTimeout
	}
	return d
}

// RemoveOnError removes dir, a base directory MakeBaseDir made (made),
// when *err is set: deferred by Start, so that a failed start leaves
// nothing behind.
func RemoveOnError(made bool, dir string, err *error) {
	if made && *err != nil {
		_ = os.RemoveAll(dir)
	}
}

// OwnedFile is a file the server reads, for WriteOwnedFiles.
type OwnedFile struct {
	Path string
	Data []byte
	Mode os.FileMode
}

// WriteOwnedFiles writes files with WriteOwnedFile, in order.
func (a Account) WriteOwnedFiles(files []OwnedFile) error {
	for _, f := range files {
		if err := a.WriteOwnedFile(f.Path, f.Data, f.Mode); err != nil {
			return err
		}
	}
	return nil
}

// Files are the credentials as files at cert, key and ca (ca only when
// CAPEM is set). The key is readable by its owner alone: servers refuse
// it otherwise.
func (t *TLSFiles) Files(cert, key, ca string) []OwnedFile {
	files := []OwnedFile{{cert, t.CertPEM, 0o644}, {key, t.KeyPEM, 0o600}}
	if len(t.CAPEM) > 0 {
		files = append(files, OwnedFile{ca, t.CAPEM, 0o644})
	}
	return files
}
