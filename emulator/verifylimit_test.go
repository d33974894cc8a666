package emulator

import (
	"errors"
	"strings"
	"testing"
)

// FailNextVerifies refuses exactly n logins with the throttle's words;
// a verify rate refuses what is over it without them; both show in State
// until undone.
func TestVerifyThrottle(t *testing.T) {
	ca, err := NewCA("throttle test")
	if err != nil {
		t.Fatal(err)
	}
	a := NewAWS(Options{})
	inst, err := a.newInstance(ca, instanceOptions{kind: "rds-postgres", defaultName: "throttle", defaultPort: 5432, defaultResourceID: "db-THROTTLE"})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.ln.Close()
	defer a.unregisterDB(inst.db)

	inst.FailNextVerifies(2)
	if got := a.State().DBs[0].FailNextVerifies; got != 2 {
		t.Fatalf("State FailNextVerifies %d, want 2", got)
	}
	for n := range 2 {
		err := inst.throttle()
		if err == nil || !strings.HasSuffix(competingSuffix(err), CompetingText) {
			t.Fatalf("login %d: %v (suffix %q), want refused with the throttle's words", n, err, competingSuffix(err))
		}
	}
	if err := inst.throttle(); err != nil {
		t.Fatalf("third login: %v, want through", err)
	}
	if got := a.State().DBs[0].FailNextVerifies; got != 0 {
		t.Fatalf("State FailNextVerifies %d after use, want 0", got)
	}

	inst.SetVerifyRate(3)
	refused := 0
	for range 10 {
		if err := inst.throttle(); err != nil {
			var c *errCompeting
			if !errors.As(err, &c) || competingSuffix(err) != "" {
				t.Fatalf("over the rate: %v (suffix %q), want the generic refusal", err, competingSuffix(err))
			}
			refused++
		}
	}
	if refused != 7 {
		t.Errorf("%d of 10 refused at once at 3/s, want 7", refused)
	}
	if got := a.State().DBs[0].VerifyRate; got != 3 {
		t.Errorf("State VerifyRate %v, want 3", got)
	}
	inst.SetVerifyRate(0)
	if err := inst.throttle(); err != nil || a.State().DBs[0].VerifyRate != 0 {
		t.Errorf("after SetVerifyRate(0): %v, state %v", err, a.State().DBs[0].VerifyRate)
	}
}
