package emulator

import (
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// imdsCredentialsOnce fetches the instance profile's credentials over
// IMDSv2, as the SDK does.
func imdsCredentialsOnce(t *testing.T, w *world, role string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, w.srv.URL+imdsTokenPath, nil)
	req.Header.Set(imdsTokenTTLHeader, "60")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	token, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, w.srv.URL+imdsCredsPath+"/"+role, nil)
	req.Header.Set(imdsTokenHeader, string(token))
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("IMDS credentials: status %d", resp.StatusCode)
	}
}

// Every setter a test may call shows in State, and State is a copy: a
// suite can keep one from before a test and compare.
func TestStateShowsEveryChange(t *testing.T) {
	w := newWorld(t)
	a := w.aws
	a.AddRole("web", Policy{})
	if err := a.SetInstanceProfile("web"); err != nil {
		t.Fatal(err)
	}
	before := a.State()
	if before.InstanceCredentials != time.Hour || before.SessionDuration != time.Hour || len(before.Faults) != 0 {
		t.Fatalf("a fresh AWS: %+v", before)
	}

	allow := Policy{Statements: []Statement{{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{"*"}}}}
	a.SetClockOffset(time.Minute)
	a.SetSessionDuration(20 * time.Second)
	a.InjectFault(FaultSTS, Throttling())
	a.takeFault(FaultSTS) // a hit: not part of the state
	if err := a.SetRolePolicy("web", allow); err != nil {
		t.Fatal(err)
	}
	arn := a.AddRole("pod", Policy{})
	if err := a.SetRoleTrust(arn, &Trust{Services: []string{"pods.eks.amazonaws.com"}}); err != nil {
		t.Fatal(err)
	}
	const token = "container-token-SECRETVALUE"
	if err := a.SetContainerCredentials("pod", token); err != nil {
		t.Fatal(err)
	}
	if err := a.AddSSOAccess("sso-token-SECRETVALUE", a.AccountID(), "pod"); err != nil {
		t.Fatal(err)
	}
	a.AddUser("dev", allow)

	after := a.State()
	if after.ClockOffset != time.Minute || after.SessionDuration != 20*time.Second {
		t.Errorf("clock %v, duration %v", after.ClockOffset, after.SessionDuration)
	}
	if f, ok := after.Faults[FaultSTS]; !ok || f != injected(Throttling()) {
		t.Errorf("faults %+v", after.Faults)
	}
	web := "arn:aws:iam::123456789012:role/web"
	if !reflect.DeepEqual(after.Roles[web].Policy, allow) || after.Roles[web].Trust != nil {
		t.Errorf("role web %+v", after.Roles[web])
	}
	if tr := after.Roles[arn].Trust; tr == nil || !reflect.DeepEqual(tr.Services, []string{"pods.eks.amazonaws.com"}) {
		t.Errorf("role pod's trust %+v", tr)
	}
	if after.ContainerRole != "pod" || after.ContainerTokenDigest == "" || after.ContainerCredentials != 20*time.Second {
		t.Errorf("container %q %q %v", after.ContainerRole, after.ContainerTokenDigest, after.ContainerCredentials)
	}
	if !reflect.DeepEqual(after.SSOGrants, []string{"123456789012/pod"}) {
		t.Errorf("SSO grants %v", after.SSOGrants)
	}
	if _, ok := after.Users["arn:aws:iam::123456789012:user/dev"]; !ok {
		t.Errorf("users %v", after.Users)
	}
	if text := fmt.Sprintf("%+v", after); strings.Contains(text, "SECRETVALUE") {
		t.Error("State holds a secret")
	}

	// A copy: changing it changes nothing in the AWS.
	after.Roles[web].Policy.Statements[0].Resource[0] = "changed"
	if got := a.State().Roles[web].Policy; !reflect.DeepEqual(got, allow) {
		t.Errorf("changing a State changed the AWS: %+v", got)
	}

	// Instance credentials held show as long as IMDS would serve them
	// again; after a rotation the next ones last the session duration.
	a.SetClockOffset(0)
	a.SetSessionDuration(0)
	imdsCredentialsOnce(t, w, "web")
	a.SetSessionDuration(20 * time.Second)
	if got := a.State().InstanceCredentials; got != time.Hour {
		t.Errorf("instance credentials held: %v, want 1h", got)
	}
	a.RotateInstanceCredentials()
	if got := a.State().InstanceCredentials; got != 20*time.Second {
		t.Errorf("instance credentials after a rotation: %v, want 20s", got)
	}
	a.ClearFault()
	if got := a.State().Faults; len(got) != 0 {
		t.Errorf("faults after ClearFault: %v", got)
	}
}

// injected is f as InjectFault stores it (defaults filled in) and State
// shows it.
func injected(f Fault) Fault {
	b := NewAWS(Options{})
	b.InjectFault("x", f)
	return b.State().Faults["x"]
}

func TestStateDBsAndMySQLIAMUsers(t *testing.T) {
	a := NewAWS(Options{})
	d := a.registerDB("rds-postgres", "db1.c0ffee123456.us-east-1.rds.amazonaws.com", 5432, "db-ONE")
	i := &instance{aws: a, db: d}
	i.SetIAMAuth(false)
	i.JoinCluster("c1", "cluster-ONE")
	want := []DBState{{Engine: "postgres", Endpoint: "db1.c0ffee123456.us-east-1.rds.amazonaws.com", Port: 5432,
		ResourceID: "db-ONE", ClusterID: "c1", ClusterResourceID: "cluster-ONE"}}
	if got := a.State().DBs; !reflect.DeepEqual(got, want) {
		t.Errorf("DBs %+v, want %+v", got, want)
	}
	a.unregisterDB(d)
	if got := a.State().DBs; len(got) != 0 {
		t.Errorf("DBs after the front closed: %+v", got)
	}

	m := &MySQL{iamUsers: map[string]bool{"b": true, "a": true}}
	m.SetIAMUser("c", true)
	m.SetIAMUser("b", false)
	if got := m.IAMUsers(); !reflect.DeepEqual(got, []string{"a", "c"}) {
		t.Errorf("IAM users %v", got)
	}
}
