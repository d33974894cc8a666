package emulator

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The emulated instance metadata service speaks IMDSv2 only, as an instance
// launched with HttpTokens=required does: every read needs a session token
// from PUT /latest/api/token. Tests should set
// AWS_EC2_METADATA_V1_DISABLED=true so that the SDK does not fall back to
// IMDSv1 when a token request fails, which would hide the failure.

const (
	imdsTokenPath      = "/latest/api/token"
	imdsTokenHeader    = "X-Aws-Ec2-Metadata-Token"
	imdsTokenTTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	imdsMaxTokenTTL    = 21600
	imdsCredsPath      = "/latest/meta-data/iam/security-credentials"
	imdsRefreshWindow  = 5 * time.Minute
)

func (a *AWS) serveIMDS(w http.ResponseWriter, r *http.Request) {
	log := a.log.With("service", "imds", "method", r.Method, "path", r.URL.Path)
	if r.URL.Path == imdsTokenPath {
		if r.Method != http.MethodPut {
			imdsText(w, http.StatusMethodNotAllowed, "Method Not Allowed")
			return
		}
		a.serveIMDSToken(w, r, log)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		imdsText(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	left, reason := a.checkIMDSToken(r.Header.Get(imdsTokenHeader))
	if reason != "" {
		log.Warn("imds request rejected", "status", http.StatusUnauthorized, "reason", reason)
		imdsText(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	w.Header().Set(imdsTokenTTLHeader, strconv.Itoa(int(left/time.Second)))

	path := r.URL.Path
	switch {
	case path == imdsCredsPath || path == imdsCredsPath+"/":
		a.mu.Lock()
		role := a.instanceProfile
		a.mu.Unlock()
		if role == "" {
			log.Warn("imds has no instance profile")
			imdsText(w, http.StatusNotFound, "Not Found")
			return
		}
		imdsText(w, http.StatusOK, role)
	case strings.HasPrefix(path, imdsCredsPath+"/"):
		a.serveIMDSCredentials(w, strings.TrimPrefix(path, imdsCredsPath+"/"), log)
	case path == "/latest/meta-data/iam/info":
		a.serveIMDSInfo(w, log)
	case path == "/latest/meta-data/placement/region":
		imdsText(w, http.StatusOK, a.region)
	case path == "/latest/meta-data/placement/availability-zone":
		imdsText(w, http.StatusOK, a.region+"a")
	case path == "/latest/meta-data/instance-id":
		imdsText(w, http.StatusOK, a.instanceID)
	case path == "/latest/dynamic/instance-identity/document":
		imdsJSON(w, map[string]any{
			"accountId":        a.accountID,
			"architecture":     "x86_64",
			"availabilityZone": a.region + "a",
			"imageId":          "ami-0emulator0000000",
			"instanceId":       a.instanceID,
			"instanceType":     "t3.micro",
			"pendingTime":      a.Now().UTC().Add(-time.Hour).Truncate(time.Second).Format(time.RFC3339),
			"privateIp":        "10.0.0.10",
			"region":           a.region,
			"version":          "2017-09-30",
		})
	default:
		imdsText(w, http.StatusNotFound, "Not Found")
	}
}

// serveIMDSToken issues an IMDSv2 session token, with EC2's checks: a TTL
// between 1 and 21600 seconds, and no X-Forwarded-For (EC2 refuses token
// requests that came through a proxy).
func (a *AWS) serveIMDSToken(w http.ResponseWriter, r *http.Request, log *slog.Logger) {
	if r.Header.Get("X-Forwarded-For") != "" {
		log.Warn("imds token request rejected", "status", http.StatusForbidden, "reason", "X-Forwarded-For present: request came through a proxy")
		imdsText(w, http.StatusForbidden, "Forbidden")
		return
	}
	v := r.Header.Get(imdsTokenTTLHeader)
	ttl, err := strconv.Atoi(v)
	if v == "" || err != nil || ttl < 1 || ttl > imdsMaxTokenTTL {
		reason := fmt.Sprintf("%s is %q, want 1..%d", imdsTokenTTLHeader, v, imdsMaxTokenTTL)
		log.Warn("imds token request rejected", "status", http.StatusBadRequest, "reason", reason)
		imdsText(w, http.StatusBadRequest, "Bad Request")
		return
	}
	b := make([]byte, 42)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	token := base64.StdEncoding.EncodeToString(b)

	a.mu.Lock()
	now := a.nowLocked()
	exp := now.Add(time.Duration(ttl) * time.Second)
	a.imdsTokens.put(token, exp, exp, len(token), now) // forgotten once expired, if the store fills
	a.rememberLocked(exp, token)
	a.mu.Unlock()

	w.Header().Set(imdsTokenTTLHeader, strconv.Itoa(ttl))
	imdsText(w, http.StatusOK, token)
}

// checkIMDSToken returns the token's remaining life, or why it is refused.
func (a *AWS) checkIMDSToken(token string) (time.Duration, string) {
	if token == "" {
		return 0, "no " + imdsTokenHeader + " header (IMDSv1 is disabled on this instance)"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.nowLocked()
	var exp time.Time
	found := false
	a.imdsTokens.all(func(t string, e time.Time) bool {
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
			exp, found = e, true
			return false
		}
		return true
	})
	if !found {
		return 0, "unknown IMDS token"
	}
	if !now.Before(exp) {
		return 0, fmt.Sprintf("IMDS token expired at %s (emulator clock %s)",
			exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return exp.Sub(now), ""
}

type imdsCredentials struct {
	Code            string
	LastUpdated     string
	Type            string `json:",omitempty"`
	AccessKeyID     string `json:"AccessKeyId,omitempty"`
	SecretAccessKey string `json:",omitempty"`
	Token           string `json:",omitempty"`
	Expiration      string `json:",omitempty"`
	Message         string `json:",omitempty"`
}

// serveIMDSCredentials hands out the instance profile role's session
// credentials. Like EC2, it returns the same credentials on every call until
// they come within a few minutes of expiry, then rotates them.
func (a *AWS) serveIMDSCredentials(w http.ResponseWriter, name string, log *slog.Logger) {
	a.mu.Lock()
	profile := a.instanceProfile
	role, ok := a.roleByNameLocked(profile)
	a.mu.Unlock()
	if profile == "" || name != profile || !ok {
		log.Warn("imds credentials request rejected", "status", http.StatusNotFound,
			"reason", fmt.Sprintf("asked for role %q, instance profile role is %q", name, profile))
		imdsText(w, http.StatusNotFound, "Not Found")
		return
	}
	if err := a.checkTrust(assumeRequest{action: "sts:AssumeRole", roleARN: role.arn, roleName: role.name,
		callerARN: "ec2.amazonaws.com", service: "ec2.amazonaws.com"}); err != nil {
		log.Warn("imds credentials refused", "role", role.arn, "reason", err.Error())
		imdsJSON(w, imdsCredentials{
			Code:        "AssumeRoleUnauthorizedAccess",
			LastUpdated: a.Now().UTC().Format(time.RFC3339),
			Message:     fmt.Sprintf("EC2 cannot assume the role %s.", role.name),
		})
		return
	}

	a.mu.Lock()
	now := a.nowLocked()
	s := a.imdsSession
	window := min(imdsRefreshWindow, a.sessionDuration/2)
	fresh := false
	if s == nil || s.role != role || !now.Before(s.expires.Add(-window)) || !a.sessionKeptLocked(s) {
		s = a.issueSessionLocked(role, a.instanceID, a.sessionDuration, "", "instance profile")
		a.imdsSession = s
		fresh = true
	}
	a.mu.Unlock()
	log.Debug("imds credentials served", "role", role.arn, "access_key_id", s.accessKeyID)
	if fresh {
		log.Info("imds credentials issued", "role", role.arn, "access_key_id", s.accessKeyID,
			"expires", s.expires.Format(time.RFC3339))
	}
	imdsJSON(w, imdsCredentials{
		Code:            "Success",
		LastUpdated:     s.issued.Format(time.RFC3339),
		Type:            "AWS-HMAC",
		AccessKeyID:     s.accessKeyID,
		SecretAccessKey: s.secret,
		Token:           s.token,
		Expiration:      s.expires.UTC().Format(time.RFC3339),
	})
}

func (a *AWS) serveIMDSInfo(w http.ResponseWriter, log *slog.Logger) {
	a.mu.Lock()
	profile := a.instanceProfile
	role, ok := a.roleByNameLocked(profile)
	a.mu.Unlock()
	if profile == "" || !ok {
		log.Warn("imds has no instance profile")
		imdsText(w, http.StatusNotFound, "Not Found")
		return
	}
	imdsJSON(w, map[string]string{
		"Code":               "Success",
		"LastUpdated":        a.Now().UTC().Format(time.RFC3339),
		"InstanceProfileArn": a.iamARN("instance-profile", role.name),
		"InstanceProfileId":  "AIPA" + strings.TrimPrefix(role.id, "AROA"),
	})
}

func imdsText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func imdsJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "emulator: encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
