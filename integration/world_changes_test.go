package integration

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
)

// The world is one for the whole suite (see harness_test.go), so a test
// that changes it and does not put it back changes the tests that run
// after it: they pass or fail depending on their order. Two rules keep
// them independent, and both are checked:
//
//   - Every change of shared state goes through a helper in this file,
//     which puts it back when the test ends (or earlier, through the
//     function it returns). Everything a test makes for itself (a user,
//     role or database with a name of its own, a front it closes) is
//     private and needs no helper. TestWorldRules checks the sources for
//     changes made around the helpers.
//   - Every top-level test starts with w.enter(t), which fails the test
//     if it left the world different from how it found it, naming each
//     difference (worldState.changesFrom).
//
// Serial: top-level tests run one at a time (TestWorldRules forbids
// t.Parallel in them), since enter compares the world before and after
// each. Subtests may run in parallel, but not those that change the
// world: every helper here marks its test serial (see serial). They
// change what all tests share: the process environment, which the AWS
// credential chain of every proxy the suite starts reads, and the
// emulator's clock, session lifetime, faults, instance profile, container
// credentials, the instance-profile role's policy and the fronts' IAM
// switches. A test running beside one of them would see its change.

// enter is the first line of every top-level test. When the test ends,
// after its own cleanups, it reads the world again and fails the test for
// each difference from the world it entered. It also fails the test when
// the world it enters is not the one the test before it left (something
// that test started went on changing it).
func (wd *world) enter(t tester) {
	t.Helper()
	wd.stateMu.Lock()
	last, lastTest := wd.state, wd.stateAfter
	wd.stateMu.Unlock()
	before := wd.readState(t)
	if changes := before.changesFrom(last); len(changes) > 0 {
		t.Errorf("the world changed after %s ended, before this test began (did something it started go on?):\n  %s",
			lastTest, strings.Join(changes, "\n  "))
	}
	t.Cleanup(func() {
		after := wd.readState(t)
		if changes := after.changesFrom(before); len(changes) > 0 {
			t.Errorf("this test left the shared world changed, so the tests after it would run in another world:\n  %s\n"+
				"Fix: make the change through the helpers in world_changes_test.go, which undo it when the test ends, or make what the test needs its own.",
				strings.Join(changes, "\n  "))
		}
		wd.stateMu.Lock()
		wd.state, wd.stateAfter = after, t.Name()
		wd.stateMu.Unlock()
	})
}

// tester is what enter needs of a test: a *testing.T, or a recorder in
// the test of enter itself.
type tester interface {
	Helper()
	Name() string
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// readState reads the world's state, failing the test if it cannot.
func (wd *world) readState(t tester) worldState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), snapshotTimeout)
	defer cancel()
	s, err := wd.snapshot(ctx)
	if err != nil {
		t.Fatalf("read the state of the world: %v", err)
	}
	return s
}

// serial marks t as a test that must run alone, because it changes what
// every test shares. It borrows the testing package's own mark for that:
// t.Setenv panics in a parallel test or under a parallel parent, and
// t.Parallel panics after it.
func serial(t *testing.T) {
	t.Helper()
	t.Setenv(serialMark, "1")
}

// serialMark is the variable serial sets. It is no part of the world's
// state (t.Setenv takes it away when the test ends, before enter looks),
// so a snapshot leaves it out; a test that enters a recorded test of its
// own would otherwise see its own mark.
const serialMark = "RDS_IAM_PROXY_TEST_CHANGES_THE_WORLD"

// undoAtEnd registers undo to run when t ends and returns it, to run
// earlier if the test wants (a failure case showing the proxy recovers);
// it runs once either way.
func undoAtEnd(t *testing.T, undo func()) func() {
	once := sync.OnceFunc(undo)
	t.Cleanup(once)
	return once
}

// setClockOffset moves the emulator's clock by d (tokens and sessions
// look expired, or skewed) until t ends.
func (wd *world) setClockOffset(t *testing.T, d time.Duration) (undo func()) {
	serial(t)
	was := wd.aws.AWS.State().ClockOffset
	wd.aws.AWS.SetClockOffset(d)
	return undoAtEnd(t, func() { wd.aws.AWS.SetClockOffset(was) })
}

// setSessionDuration makes the session credentials the emulator issues
// last d until t ends. Instance metadata hands out credentials of the new
// lifetime at once (it rotates them), and again of the old one after.
func (wd *world) setSessionDuration(t *testing.T, d time.Duration) (undo func()) {
	serial(t)
	was := wd.aws.AWS.SessionDuration()
	wd.aws.AWS.SetSessionDuration(d)
	wd.aws.AWS.RotateInstanceCredentials()
	return undoAtEnd(t, func() {
		wd.aws.AWS.SetSessionDuration(was)
		wd.aws.AWS.RotateInstanceCredentials()
	})
}

// injectFault makes endpoint (emulator.FaultSTS, "sts:ACTION",
// FaultIMDS, "rds:ACTION", ...) fail as f says until t ends or the
// returned func clears it (the service is back).
func (wd *world) injectFault(t *testing.T, endpoint string, f emulator.Fault) (clear func()) {
	serial(t)
	was, had := wd.aws.AWS.State().Faults[endpoint]
	wd.aws.AWS.InjectFault(endpoint, f)
	return undoAtEnd(t, func() {
		wd.aws.AWS.ClearFault(endpoint) // also lets requests it holds back go on
		if had {
			wd.aws.AWS.InjectFault(endpoint, was)
		}
	})
}

// setInstanceProfile makes role ("" for none) the role instance metadata
// hands out until t ends.
func (wd *world) setInstanceProfile(t *testing.T, role string) (undo func()) {
	serial(t)
	was := wd.aws.AWS.State().InstanceProfile
	if err := wd.aws.AWS.SetInstanceProfile(role); err != nil {
		t.Fatal(err)
	}
	return undoAtEnd(t, func() {
		if err := wd.aws.AWS.SetInstanceProfile(was); err != nil {
			t.Error(err)
		}
	})
}

// setContainerCredentials makes the container credentials endpoint hand
// out sessions of role, asking for token, until t ends (when it is off
// again, as the world has it).
func (wd *world) setContainerCredentials(t *testing.T, role, token string) (undo func()) {
	serial(t)
	if was := wd.aws.AWS.State().ContainerRole; was != "" {
		t.Fatalf("container credentials are already on (role %s): the world has them off", was)
	}
	if err := wd.aws.AWS.SetContainerCredentials(role, token); err != nil {
		t.Fatal(err)
	}
	return undoAtEnd(t, func() {
		if err := wd.aws.AWS.SetContainerCredentials("", ""); err != nil {
			t.Error(err)
		}
	})
}

// setRolePolicy gives the role named role (of the emulator's account)
// policy p until t ends. For a role the test made itself, AddRole is
// enough.
func (wd *world) setRolePolicy(t *testing.T, role string, p emulator.Policy) (undo func()) {
	serial(t)
	arn := fmt.Sprintf("arn:aws:iam::%s:role/%s", wd.aws.AWS.AccountID(), role)
	was, ok := wd.aws.AWS.State().Roles[arn]
	if !ok {
		t.Fatalf("no role %s", arn)
	}
	if err := wd.aws.AWS.SetRolePolicy(role, p); err != nil {
		t.Fatal(err)
	}
	return undoAtEnd(t, func() {
		if err := wd.aws.AWS.SetRolePolicy(role, was.Policy); err != nil {
			t.Error(err)
		}
	})
}

// iamAuthSwitch is an emulated front's IAM database authentication
// setting (both engines' fronts have one).
type iamAuthSwitch interface {
	SetIAMAuth(bool)
	IAMAuthEnabled() bool
}

// setIAMAuth turns IAM database authentication of db on or off until t
// ends.
func (wd *world) setIAMAuth(t *testing.T, db iamAuthSwitch, on bool) (undo func()) {
	serial(t)
	was := db.IAMAuthEnabled()
	db.SetIAMAuth(on)
	return undoAtEnd(t, func() { db.SetIAMAuth(was) })
}

// setMySQLIAMUser makes user an IAM user of the world's MySQL front (or
// not) until t ends.
func (wd *world) setMySQLIAMUser(t *testing.T, user string, iam bool) (undo func()) {
	serial(t)
	was := slices.Contains(wd.my.IAMUsers(), user)
	wd.my.SetIAMUser(user, iam)
	return undoAtEnd(t, func() { wd.my.SetIAMUser(user, was) })
}

// verifyThrottler is an emulated front's throttle on IAM logins.
type verifyThrottler interface {
	FailNextVerifies(n int)
	SetVerifyRate(perSecond float64)
}

// failNextVerifies makes db refuse its next n IAM logins as throttled;
// what is left of n is cleared when t ends.
func (wd *world) failNextVerifies(t *testing.T, db verifyThrottler, n int) (undo func()) {
	serial(t)
	db.FailNextVerifies(n)
	return undoAtEnd(t, func() { db.FailNextVerifies(0) })
}

// setVerifyRate makes db refuse IAM logins over perSecond until t ends.
func (wd *world) setVerifyRate(t *testing.T, db verifyThrottler, perSecond float64) (undo func()) {
	serial(t)
	db.SetVerifyRate(perSecond)
	return undoAtEnd(t, func() { db.SetVerifyRate(0) })
}

// unsetEnv removes name from the process environment until t ends.
// t.Setenv can only set a variable, and to the AWS SDK an empty
// AWS_REGION is not an absent one.
func unsetEnv(t *testing.T, name string) {
	t.Setenv(name, "") // restores the old value when t ends
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}

// TestEnterFailsTheTestThatLeftAChange: enter fails a test that ends
// with the world changed, naming the change, and the next test if the
// world changes between the two.
func TestEnterFailsTheTestThatLeftAChange(t *testing.T) {
	w.enter(t)
	left := &recordingT{T: t}
	w.enter(left)
	undo := w.setClockOffset(t, 5*time.Minute)
	left.end()
	want := "this test left the shared world changed, so the tests after it would run in another world:\n  emulator: clock offset 5m0s, was 0s\nFix: "
	if len(left.errors) != 1 || !strings.HasPrefix(left.errors[0], want) {
		t.Errorf("a test that left the clock moved: errors %q, want one starting %q", left.errors, want)
	}

	undo() // after the test above ended: the next one sees it
	next := &recordingT{T: t}
	w.enter(next)
	want = "the world changed after " + t.Name() + " ended, before this test began (did something it started go on?):\n  emulator: clock offset 0s, was 5m0s"
	if len(next.errors) != 1 || next.errors[0] != want {
		t.Errorf("a test entering a world changed since the last one ended: errors %q, want %q", next.errors, want)
	}
	next.end()
	if len(next.errors) != 1 {
		t.Errorf("a test that changed nothing: errors %q", next.errors[1:])
	}
}

// recordingT is a test whose failures are recorded, not reported, and
// whose cleanups run when end is called.
type recordingT struct {
	*testing.T
	errors   []string
	cleanups []func()
}

func (r *recordingT) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recordingT) Fatalf(format string, args ...any) {
	r.T.Fatalf("the recorded test failed for good: "+format, args...)
}

func (r *recordingT) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// end runs the cleanups, last first, as a test's end does.
func (r *recordingT) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.cleanups = nil
}

// addPGRoles creates login roles in the world's PostgreSQL (Aurora DSQL's
// admin among them) and drops them when t ends. The names are not the
// test's own (admin is DSQL's), so they go through here.
func (wd *world) addPGRoles(t *testing.T, roles ...string) {
	serial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range roles {
		q := pgx.Identifier{r}.Sanitize()
		undoAtEnd(t, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := wd.pg.Exec(ctx, "DROP ROLE IF EXISTS "+q); err != nil {
				t.Errorf("drop role %s: %v", q, err)
			}
		})
		if err := wd.pg.Exec(ctx, "CREATE ROLE "+q+" WITH LOGIN"); err != nil {
			t.Fatalf("create role %s: %v", q, err)
		}
	}
}

// showDSQLMappings writes d's AWS IAM GRANT mappings into the world's
// PostgreSQL as the view sys.iam_pg_role_mappings (the emulator's shim for
// DSQL's catalog, see emulator.DSQL.RoleMappingsSQL) and drops the schema
// sys when t ends. Call it again after changing the mappings.
func (wd *world) showDSQLMappings(t *testing.T, d *emulator.DSQL) {
	serial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	undoAtEnd(t, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := wd.pg.Exec(ctx, "DROP SCHEMA IF EXISTS sys CASCADE"); err != nil {
			t.Errorf("drop schema sys: %v", err)
		}
	})
	if err := wd.pg.Exec(ctx, d.RoleMappingsSQL()); err != nil {
		t.Fatalf("sys.iam_pg_role_mappings: %v", err)
	}
}
