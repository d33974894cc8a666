package emulator

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// TestBoundedStore: over its bound a store first forgets what is past its
// time, then what is nearest to it, down to three quarters; what is never
// to be forgotten stays and is not counted.
func TestBoundedStore(t *testing.T) {
	now := time.Now()
	s := newBoundedStore[int](100, 1000)
	for i := range 10 {
		s.put("keep"+strconv.Itoa(i), i, time.Time{}, 5, now)
	}
	for i := range 40 {
		s.put("old"+strconv.Itoa(i), i, now.Add(-time.Minute), 1, now) // already past its time
	}
	for i := range 1000 {
		s.put("new"+strconv.Itoa(i), i, now.Add(time.Duration(i)*time.Second), 1, now)
	}
	if s.count > 100 || s.len() > 110 {
		t.Fatalf("%d entries (%d that may be forgotten), bound 100", s.len(), s.count)
	}
	for i := range 10 {
		if _, ok := s.get("keep" + strconv.Itoa(i)); !ok {
			t.Fatalf("a never-forgotten entry was dropped")
		}
	}
	for i := range 40 {
		if _, ok := s.get("old" + strconv.Itoa(i)); ok {
			t.Fatalf("an entry past its time outlived newer ones")
		}
	}
	if _, ok := s.get("new999"); !ok {
		t.Fatal("the newest entry was dropped")
	}
	if _, ok := s.get("new0"); ok {
		t.Fatal("the entry nearest its time was kept over newer ones")
	}

	// The byte bound.
	b := newBoundedStore[struct{}](1000, 100)
	for i := range 50 {
		b.put(fmt.Sprintf("%040d", i), struct{}{}, now.Add(time.Hour), 40, now)
	}
	if b.cost > 100 {
		t.Fatalf("%d bytes kept, bound 100", b.cost)
	}
}

// TestEmulatorMemoryBounded: a flood of IMDS tokens, sessions and signed
// requests leaves each store within its bound (lowered here, so the flood
// is short), and the newest credentials keep working.
func TestEmulatorMemoryBounded(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	w.aws.mu.Lock()
	w.aws.imdsTokens = newBoundedStore[time.Time](40, 0)
	w.aws.sessions = newBoundedStore[*session](40, 0)
	w.aws.seen = newBoundedStore[struct{}](200, 1<<20)
	w.aws.mu.Unlock()

	var token string
	for range 300 {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, w.srv.URL+imdsTokenPath, nil)
		req.Header.Set(imdsTokenTTLHeader, "600")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b [128]byte
		n, _ := resp.Body.Read(b[:])
		resp.Body.Close()
		token = string(b[:n])
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, w.srv.URL+"/latest/meta-data/instance-id", nil)
	req.Header.Set(imdsTokenHeader, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the newest IMDS token was refused: %d", resp.StatusCode)
	}

	akid, secret := w.aws.AddUser("alice", Policy{})
	roleARN := w.aws.AddRole("r", Policy{})
	var last sts.GetCallerIdentityOutput
	for i := range 150 {
		c := w.assumeRole(t, static(akid, secret, ""), roleARN, "s"+strconv.Itoa(i), 900)
		out, err := w.stsClient(t, static(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		last = *out
	}
	if last.Arn == nil {
		t.Fatal("no identity")
	}

	w.aws.mu.Lock()
	defer w.aws.mu.Unlock()
	if n := w.aws.imdsTokens.len(); n > 40 {
		t.Errorf("%d IMDS tokens kept, bound 40", n)
	}
	if n := w.aws.sessions.len(); n > 40 {
		t.Errorf("%d sessions kept, bound 40", n)
	}
	// Never-forgotten entries (the user's secret) are not counted.
	if n := w.aws.seen.count; n > 200 {
		t.Errorf("%d seen secrets kept, bound 200", n)
	}
	if _, ok := w.aws.seen.get(secret); !ok {
		t.Error("the user's secret key was forgotten")
	}
}
