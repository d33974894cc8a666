package emulator

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// The SDK's default chain, with nothing but AWS_EC2_METADATA_SERVICE_ENDPOINT
// set, finds its region and credentials in the emulated instance metadata,
// and the credentials work against the emulated STS.
func TestIMDSv2DefaultChain(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	w.aws.AddRole("web", Policy{})
	if err := w.aws.SetInstanceProfile("web"); err != nil {
		t.Fatal(err)
	}
	if err := os.Unsetenv("AWS_EC2_METADATA_DISABLED"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", w.srv.URL)
	t.Setenv("AWS_ENDPOINT_URL_STS", w.srv.URL)

	cfg, err := config.LoadDefaultConfig(t.Context(), config.WithEC2IMDSRegion())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "us-east-1" {
		t.Errorf("region from IMDS = %q", cfg.Region)
	}
	creds, err := cfg.Credentials.Retrieve(t.Context())
	if err != nil {
		t.Fatalf("credentials from IMDS: %v", err)
	}
	if !strings.HasPrefix(creds.AccessKeyID, "ASIA") || creds.SessionToken == "" || !creds.CanExpire {
		t.Errorf("IMDS credentials %s (token %v, expires %v), want session credentials",
			creds.AccessKeyID, creds.SessionToken != "", creds.CanExpire)
	}
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity with IMDS credentials: %v", err)
	}
	want := "arn:aws:sts::123456789012:assumed-role/web/" + w.aws.instanceID
	if got := aws.ToString(out.Arn); got != want {
		t.Errorf("Arn = %q, want %q", got, want)
	}
}

func TestIMDSWire(t *testing.T) {
	w := newWorld(t)
	w.aws.AddRole("web", Policy{})
	do := func(method, path string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, w.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	const ttlH, tokH = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "X-Aws-Ec2-Metadata-Token"

	for _, tt := range []struct {
		name   string
		hdr    map[string]string
		status int
	}{
		{"no ttl", nil, 400},
		{"ttl zero", map[string]string{ttlH: "0"}, 400},
		{"ttl too long", map[string]string{ttlH: "21601"}, 400},
		{"ttl not a number", map[string]string{ttlH: "soon"}, 400},
		{"through a proxy", map[string]string{ttlH: "60", "X-Forwarded-For": "10.0.0.1"}, 403},
	} {
		if resp, _ := do(http.MethodPut, "/latest/api/token", tt.hdr); resp.StatusCode != tt.status {
			t.Errorf("token PUT %s: status %d, want %d", tt.name, resp.StatusCode, tt.status)
		}
	}
	if resp, _ := do(http.MethodGet, "/latest/api/token", nil); resp.StatusCode != 405 {
		t.Errorf("GET token: status %d, want 405", resp.StatusCode)
	}

	resp, token := do(http.MethodPut, "/latest/api/token", map[string]string{ttlH: "60"})
	if resp.StatusCode != 200 || resp.Header.Get(ttlH) != "60" || token == "" {
		t.Fatalf("token PUT: %d ttl header %q", resp.StatusCode, resp.Header.Get(ttlH))
	}
	auth := map[string]string{tokH: token}

	if resp, _ := do(http.MethodGet, "/latest/meta-data/placement/region", nil); resp.StatusCode != 401 {
		t.Errorf("GET without token (IMDSv1): status %d, want 401", resp.StatusCode)
	}
	if resp, _ := do(http.MethodGet, "/latest/meta-data/placement/region", map[string]string{tokH: "forged"}); resp.StatusCode != 401 {
		t.Errorf("GET with unknown token: status %d, want 401", resp.StatusCode)
	}
	if resp, body := do(http.MethodGet, "/latest/meta-data/placement/region", auth); resp.StatusCode != 200 || body != "us-east-1" {
		t.Errorf("region: %d %q", resp.StatusCode, body)
	}
	if resp, _ := do(http.MethodGet, "/latest/meta-data/iam/security-credentials/", auth); resp.StatusCode != 404 {
		t.Errorf("credentials list without instance profile: status %d, want 404", resp.StatusCode)
	}

	var doc struct{ Region, AccountID, InstanceID string }
	resp, body := do(http.MethodGet, "/latest/dynamic/instance-identity/document", auth)
	if err := json.Unmarshal([]byte(body), &doc); err != nil || resp.StatusCode != 200 {
		t.Fatalf("identity document: %d %q %v", resp.StatusCode, body, err)
	}
	if doc.Region != "us-east-1" || doc.AccountID != "123456789012" || !strings.HasPrefix(doc.InstanceID, "i-") {
		t.Errorf("identity document %+v", doc)
	}

	if err := w.aws.SetInstanceProfile("web"); err != nil {
		t.Fatal(err)
	}
	if resp, body := do(http.MethodGet, "/latest/meta-data/iam/security-credentials/", auth); resp.StatusCode != 200 || body != "web" {
		t.Errorf("credentials list: %d %q", resp.StatusCode, body)
	}
	if resp, _ := do(http.MethodGet, "/latest/meta-data/iam/security-credentials/other", auth); resp.StatusCode != 404 {
		t.Errorf("credentials of another role: status %d, want 404", resp.StatusCode)
	}
	var c1, c2 map[string]string
	_, body = do(http.MethodGet, "/latest/meta-data/iam/security-credentials/web", auth)
	if err := json.Unmarshal([]byte(body), &c1); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"} {
		if c1[k] == "" {
			t.Errorf("credentials JSON lacks %s", k)
		}
	}
	if c1["Code"] != "Success" || c1["Type"] != "AWS-HMAC" {
		t.Errorf("credentials JSON: Code %q Type %q", c1["Code"], c1["Type"])
	}
	_, body = do(http.MethodGet, "/latest/meta-data/iam/security-credentials/web", auth)
	if err := json.Unmarshal([]byte(body), &c2); err != nil {
		t.Fatal(err)
	}
	if c1["AccessKeyId"] != c2["AccessKeyId"] {
		t.Errorf("IMDS rotated credentials on every call; EC2 hands out the same ones until near expiry")
	}

	// Tokens expire on the emulator clock.
	w.aws.SetClockOffset(61 * time.Second)
	if resp, _ := do(http.MethodGet, "/latest/meta-data/placement/region", auth); resp.StatusCode != 401 {
		t.Errorf("GET with expired token: status %d, want 401", resp.StatusCode)
	}
	if !strings.Contains(w.logs.String(), "IMDS token expired") {
		t.Errorf("log does not say the IMDS token expired")
	}
}
