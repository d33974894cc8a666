package authtoken

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// The AWS CLI's credential cache (~/.aws/cli/cache): one JSON file per
// assumed-role configuration, holding the whole AssumeRole answer. Reading
// and writing it the CLI's way lets one MFA code serve both: a code typed
// into `aws` serves the proxy, and one typed into the proxy serves `aws`.
// The file name is the CLI's key for the profile's AssumeRole arguments
// (CLICacheKey); the integration test proves it equals the name the real
// CLI writes.

// AssumeArgs are the AssumeRole arguments a profile sets, which the CLI
// hashes into its cache key. Only what the profile sets counts: a session
// name the CLI generates is left out, as is the MFA code.
type AssumeArgs struct {
	RoleARN         string // role_arn
	SerialNumber    string // mfa_serial
	ExternalID      string // external_id
	RoleSessionName string // role_session_name
	DurationSeconds int    // duration_seconds; 0 = not set
}

// CLICacheKey is the CLI's cache key for args: the SHA-1 (hex) of the
// arguments as Python's json.dumps(args, sort_keys=True) writes them.
func CLICacheKey(args AssumeArgs) string {
	// Keys in sorted order, each only when set, as botocore builds them.
	var b strings.Builder
	b.WriteByte('{')
	field := func(name, value string) {
		if b.Len() > 1 {
			b.WriteString(", ")
		}
		b.WriteString(pyJSONString(name))
		b.WriteString(": ")
		b.WriteString(value)
	}
	if args.DurationSeconds != 0 {
		field("DurationSeconds", strconv.Itoa(args.DurationSeconds))
	}
	if args.ExternalID != "" {
		field("ExternalId", pyJSONString(args.ExternalID))
	}
	field("RoleArn", pyJSONString(args.RoleARN))
	if args.RoleSessionName != "" {
		field("RoleSessionName", pyJSONString(args.RoleSessionName))
	}
	if args.SerialNumber != "" {
		field("SerialNumber", pyJSONString(args.SerialNumber))
	}
	b.WriteByte('}')
	sum := sha1.Sum([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// pyJSONString quotes s as Python's json.dumps does by default
// (ensure_ascii): non-ASCII as \uXXXX (surrogate pairs above U+FFFF), and
// unlike Go's encoder, no escaping of <, > and &.
func pyJSONString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || r >= 0x7f && r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// CachedRole is one cache entry: role session credentials and the session's
// ARN.
type CachedRole struct {
	Credentials    aws.Credentials
	AssumedRoleARN string
	AssumedRoleID  string
}

// cliCacheFile is the JSON the CLI writes: the AssumeRole answer.
type cliCacheFile struct {
	Credentials struct {
		AccessKeyID     string `json:"AccessKeyId"`
		SecretAccessKey string `json:"SecretAccessKey"`
		SessionToken    string `json:"SessionToken"`
		Expiration      string `json:"Expiration"`
		AccountID       string `json:"AccountId,omitempty"`
	} `json:"Credentials"`
	AssumedRoleUser *struct {
		AssumedRoleID string `json:"AssumedRoleId"`
		Arn           string `json:"Arn"`
	} `json:"AssumedRoleUser,omitempty"`
	ResponseMetadata map[string]any `json:"ResponseMetadata,omitempty"`
}

// maxCacheFile bounds what is read from a cache file (a real one is ~2 KB).
const maxCacheFile = 64 << 10

// DefaultCLICacheDir is the CLI's cache directory, ~/.aws/cli/cache, or ""
// when there is no home directory.
func DefaultCLICacheDir() string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, ".aws", "cli", "cache")
}

// ReadCLICache reads the entry key from dir. A missing file is an error for
// which errors.Is(err, os.ErrNotExist) holds; a corrupt one is an error the
// caller should treat as a miss. Errors never quote the file's contents.
func ReadCLICache(dir, key string) (CachedRole, error) {
	path := filepath.Join(dir, key+".json")
	f, err := os.Open(path)
	if err != nil {
		return CachedRole{}, fmt.Errorf("read AWS CLI cache: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCacheFile+1))
	if err != nil {
		return CachedRole{}, fmt.Errorf("read AWS CLI cache %s: %w", path, err)
	}
	if len(data) > maxCacheFile {
		return CachedRole{}, fmt.Errorf("AWS CLI cache %s is larger than %d bytes", path, maxCacheFile)
	}
	var c cliCacheFile
	if err := json.Unmarshal(data, &c); err != nil {
		return CachedRole{}, fmt.Errorf("AWS CLI cache %s is not the CLI's JSON", path)
	}
	cr := c.Credentials
	if cr.AccessKeyID == "" || cr.SecretAccessKey == "" || cr.SessionToken == "" {
		return CachedRole{}, fmt.Errorf("AWS CLI cache %s holds no complete credentials", path)
	}
	exp, err := parseCLIExpiration(cr.Expiration)
	if err != nil {
		return CachedRole{}, fmt.Errorf("AWS CLI cache %s: %w", path, err)
	}
	out := CachedRole{Credentials: aws.Credentials{
		AccessKeyID: cr.AccessKeyID, SecretAccessKey: cr.SecretAccessKey, SessionToken: cr.SessionToken,
		Source: "AWS CLI cache", CanExpire: true, Expires: exp, AccountID: cr.AccountID,
	}}
	if c.AssumedRoleUser != nil {
		out.AssumedRoleARN, out.AssumedRoleID = c.AssumedRoleUser.Arn, c.AssumedRoleUser.AssumedRoleID
	}
	return out, nil
}

// parseCLIExpiration reads the Expiration forms the CLIs write: CLI v1's
// strftime "2006-01-02T15:04:05UTC", RFC 3339 with Z or +00:00, with or
// without fractional seconds.
func parseCLIExpiration(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05MST", "2006-01-02T15:04:05.999999MST"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("expiration %q is in no form the AWS CLI writes", s)
}

// WriteCLICache writes c as entry key in dir the way the CLI does: the
// directory 0700, the file 0600, atomically (a temporary file renamed), so
// `aws` never reads half a file.
func WriteCLICache(dir, key string, c CachedRole) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write AWS CLI cache: %w", err)
	}
	var f cliCacheFile
	f.Credentials.AccessKeyID = c.Credentials.AccessKeyID
	f.Credentials.SecretAccessKey = c.Credentials.SecretAccessKey
	f.Credentials.SessionToken = c.Credentials.SessionToken
	f.Credentials.Expiration = c.Credentials.Expires.UTC().Format(time.RFC3339)
	f.Credentials.AccountID = c.Credentials.AccountID
	if c.AssumedRoleARN != "" {
		f.AssumedRoleUser = &struct {
			AssumedRoleID string `json:"AssumedRoleId"`
			Arn           string `json:"Arn"`
		}{c.AssumedRoleID, c.AssumedRoleARN}
	}
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("write AWS CLI cache: %w", err)
	}
	tmp, err := os.CreateTemp(dir, key+".*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("write AWS CLI cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write AWS CLI cache: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write AWS CLI cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write AWS CLI cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, key+".json")); err != nil {
		return fmt.Errorf("write AWS CLI cache: %w", err)
	}
	return nil
}
