package launch

import (
	"fmt"
	"os"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/shortskip"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/iamstack"
)

// The tests that log in stand on a throwaway PostgreSQL behind the
// emulated RDS front, started once on first use. They sign as an IAM user
// of their own (iamstack.Signer), so nothing in the process environment
// changes.

const (
	iamUser   = "app_user"   // in rds_iam; the signer may connect as it
	otherUser = "other_user" // in rds_iam; no policy allows it
)

var world = iamstack.Lazy{
	Options: iamstack.Options{
		SetupSQL: []string{fmt.Sprintf("CREATE ROLE rds_iam; CREATE ROLE %[1]s WITH LOGIN; GRANT rds_iam TO %[1]s; CREATE ROLE %[2]s WITH LOGIN; GRANT rds_iam TO %[2]s", iamUser, otherUser)},
		Role:     "launch-test", AllowUsers: []string{iamUser},
	},
	SignerName: "launch-test-signer", SignAs: iamUser,
}

func TestMain(m *testing.M) {
	code := m.Run()
	world.Close()
	os.Exit(code)
}

// stack starts the world (or skips under -short, the one allowed skip).
func stack(t *testing.T) *iamstack.Stack {
	t.Helper()
	shortskip.Skip(t, "starts PostgreSQL and the emulator")
	s, err := world.Start()
	if err != nil {
		t.Fatalf("start the test world: %v", err)
	}
	return s
}

// frontConfig is the emulated Postgres front's upstream as a user would
// configure it, signing as the test's IAM user.
func frontConfig(t *testing.T) Config {
	s := stack(t)
	c := NewConfig(config.Postgres, s.Endpoint())
	c.DialAddress, c.Listen, c.CABundle = s.Front.Addr(), "127.0.0.1:0", s.CAFile
	c.AWSLoadOptions = world.Signer()
	return c
}
