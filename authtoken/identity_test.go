package authtoken_test

import (
	"sync"
	"testing"

	. "github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
)

// TestIdentityLookupsCoalesce: many refused logins explained at once ask
// STS for the signer's identity once, and while STS fails a failure is
// remembered for a moment instead of asked again by every login; a
// success is cached.
func TestIdentityLookupsCoalesce(t *testing.T) {
	a, url, _ := emulated(t)
	src, err := New(t.Context(), Options{Region: "us-east-1", STSEndpoint: url})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Token(t.Context(), "h", 5432, "us-east-1", "u"); err != nil {
		t.Fatal(err) // credentials held before STS fails
	}
	a.InjectFault("sts:GetCallerIdentity", emulator.Fault{Status: 403, Code: "AccessDenied", Message: "denied"})
	ask := func(n int) (failed int) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range n {
			wg.Go(func() {
				if _, err := src.Identity(t.Context(), "us-east-1"); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return failed
	}
	if failed := ask(50); failed != 50 {
		t.Fatalf("%d of 50 lookups failed while STS denies", failed)
	}
	first := a.FaultHits("sts:GetCallerIdentity")
	if first < 1 || first > 3 { // one call (the SDK does not retry AccessDenied; allow its retries anyway)
		t.Errorf("50 concurrent lookups made %d STS calls, want one", first)
	}
	ask(50)
	if hits := a.FaultHits("sts:GetCallerIdentity"); hits != first {
		t.Errorf("a failure within the memory window was asked again: %d calls, then %d", first, hits)
	}

	a.ClearFault("sts:GetCallerIdentity")
	// Still within the failure memory: the next lookup answers from it.
	if _, err := src.Identity(t.Context(), "us-east-1"); err == nil {
		t.Error("the remembered failure was not used within its window")
	}
}
