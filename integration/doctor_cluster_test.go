package integration

import (
	"fmt"
	"strings"
	"testing"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/validate"
)

// doctor checks an Aurora cluster endpoint as a whole (issue 16 ask 6):
// the policy must name the cluster's resource id, every member's
// certificate must verify for its instance name, and the IAM user must be
// able to read the topology. The cluster is aurorastack's, with its own
// emulator and servers: nothing of the shared world changes.
//
// Budget: 20 s in CI. It took 5-11 s on a shared, loaded 2-vCPU machine
// (mostly the rig's three servers starting); the four doctor runs take
// about a second each.
func TestDoctorAuroraCluster(t *testing.T) {
	w.enter(t)
	r := startAuroraRig(t, 0)
	cl := r.cluster
	users := 0
	// doctorAs is doctor for the cluster's writer endpoint, signing as a
	// new IAM user of the rig's emulator with policy p.
	doctorAs := func(p emulator.Policy) validate.DoctorOptions {
		users++
		akid, secret := r.AWS.AWS.AddUser(fmt.Sprintf("aurora-doctor-%d", users), p)
		o := doctorOptions()
		o.Config = r.ProxyConfig()
		o.Config.AWSLoadOptions = append(append([]func(*awsconfig.LoadOptions) error{}, r.Signer...),
			awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(akid, secret, "")))
		return o
	}
	withAPI := func(st ...emulator.Statement) emulator.Policy {
		return emulator.Policy{Statements: append(st, apiStatement)}
	}

	// Healthy: every member named with its role and expiry, the topology
	// read as the IAM user.
	healthy := doctorAs(withAPI(cl.ConnectPolicy(iamUser).Statements...))
	rep := runDoctor(t, healthy)
	if !rep.OK() {
		t.Fatal("doctor fails on a healthy Aurora cluster")
	}
	expectStatus(t, rep, validate.StepMembers, validate.OK, "3 members of cluster emulated-aurora verified",
		"alpha (writer) valid until 20", "beta (reader) valid until 20", "gamma (reader) valid until 20")
	expectStatus(t, rep, validate.StepTopology, validate.OK, "writer alpha", "readers beta, gamma")

	// A policy that allows one instance's db-... only: RDS checks the
	// cluster's resource id for a cluster endpoint's token.
	instanceARN := fmt.Sprintf("arn:aws:rds-db:us-east-1:%s:dbuser:db-AURORAALPHA/%s", r.AWS.AWS.AccountID(), iamUser)
	rep = runDoctor(t, doctorAs(withAPI(emulator.Statement{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{instanceARN}})))
	expectFailure(t, rep, validate.StepPolicy, "dbuser:cluster-EMULATEDAURORA0001/"+iamUser, "cluster's resource id (cluster-...)")

	// A member whose address answers with another instance's certificate
	// (gamma dialed at beta's forwarder) is named with the reason.
	swapped := healthy
	swapped.Config.InstanceDialAddresses = strings.Replace(swapped.Config.InstanceDialAddresses,
		cl.InstanceName("gamma")+"="+cl.InstanceAddr("gamma"), cl.InstanceName("gamma")+"="+cl.InstanceAddr("beta"), 1)
	if swapped.Config.InstanceDialAddresses == healthy.Config.InstanceDialAddresses {
		t.Fatalf("gamma's dial address not in %q", healthy.Config.InstanceDialAddresses)
	}
	rep = runDoctor(t, swapped)
	c := expectFailure(t, rep, validate.StepMembers, "1 of 3 members of cluster emulated-aurora fail TLS verify-full",
		"gamma (reader, "+cl.InstanceName("gamma")+" at "+cl.InstanceAddr("beta")+")", "not valid for "+cl.InstanceName("gamma"),
		"alpha (writer) valid until", "from instance_dial_addresses")
	if strings.Contains(c.Detail, "beta (reader, ") {
		t.Errorf("a healthy member is named as failing: %s", c.Detail)
	}

	// The IAM user may not run the topology function: named, with the fix.
	if err := r.PG[0].ExecIn(t.Context(), appDB, "REVOKE EXECUTE ON FUNCTION public.aurora_replica_status() FROM PUBLIC"); err != nil {
		t.Fatal(err)
	}
	rep = runDoctor(t, healthy)
	expectFailure(t, rep, validate.StepTopology, iamUser+" cannot read the cluster's topology", "permission denied",
		"GRANT EXECUTE ON FUNCTION aurora_replica_status() TO "+iamUser)
}
