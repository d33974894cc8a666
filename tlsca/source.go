package tlsca

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// GlobalBundleURL is AWS's published bundle of every commercial-region RDS
// CA.
const GlobalBundleURL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"

// Trust store hosts per AWS partition. GovCloud and China publish their own
// bundles: their CAs are not in the commercial global bundle.
const (
	commercialStore = "https://truststore.pki.rds.amazonaws.com"
	govCloudStore   = "https://truststore.pki.us-gov-west-1.rds.amazonaws.com"
	chinaStore      = "https://rds-truststore.s3.cn-north-1.amazonaws.com.cn"
)

var regionPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

// storeFor is the trust store host of region's partition.
func storeFor(region string) string {
	switch {
	case strings.HasPrefix(region, "us-gov-"):
		return govCloudStore
	case strings.HasPrefix(region, "cn-"):
		return chinaStore
	}
	return commercialStore
}

// BundleURL is the URL of AWS's RDS CA bundle for region, on the trust
// store of the region's partition (commercial, GovCloud or China). An empty
// region or "global" means the commercial global bundle.
func BundleURL(region string) (string, error) {
	if region == "" || region == "global" {
		return GlobalBundleURL, nil
	}
	if !regionPattern.MatchString(region) {
		return "", fmt.Errorf("%q is not an AWS region name (like us-east-1)", region)
	}
	return fmt.Sprintf("%s/%s/%s-bundle.pem", storeFor(region), region, region), nil
}

// GlobalBundleURLFor is the global bundle of the partition dbRegion is in:
// the commercial global bundle for commercial regions and "", GovCloud's
// for us-gov-*, China's for cn-*.
func GlobalBundleURLFor(dbRegion string) string {
	return storeFor(dbRegion) + "/global/global-bundle.pem"
}

// checkDownloadURL refuses URLs the trust anchors must not come from: only
// https, or http to a loopback address (a local mirror in a test).
func checkDownloadURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("CA bundle URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("CA bundle URL %q: the trust anchors must come over https (http only from a loopback address)", redactURL(u))
		}
	default:
		return nil, fmt.Errorf("CA bundle URL %q: use an https:// URL, or --ca-bundle for a local file", redactURL(u))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("CA bundle URL %q has no host", redactURL(u))
	}
	return u, nil
}

// isLoopbackHost reports whether host (no port) is "localhost" or a
// loopback IP literal. Other names are never resolved: what a name resolves
// to can change after the check, and Go resolves even *.localhost names
// through /etc/hosts and DNS. "localhost" itself is accepted because every
// system maps it; a plaintext upstream also checks the address it actually
// connects to ([PlaintextDialer]).
func isLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// cacheName is the file a download from u is cached as: host and path, so
// the global bundles of different partitions do not collide.
func cacheName(u *url.URL) string {
	s := u.Host + u.Path
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := b.String()
	if !strings.HasSuffix(name, ".pem") {
		name += ".pem"
	}
	return name
}

// redactURL is raw fit for logs and messages: no user info, no query (a
// presigned URL's query is a credential).
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		c.RawQuery = "REDACTED"
	}
	c.Fragment = ""
	return c.String()
}
