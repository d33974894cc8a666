package launch

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/shortskip"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

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

var world struct {
	once   sync.Once
	stack  *iamstack.Stack
	signer []func(*awsconfig.LoadOptions) error
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if world.stack != nil {
		world.stack.Close()
	}
	os.Exit(code)
}

// stack starts the world (or skips under -short, the one allowed skip).
func stack(t *testing.T) *iamstack.Stack {
	t.Helper()
	shortskip.Skip(t, "starts PostgreSQL and the emulator")
	world.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		world.stack, world.err = iamstack.Start(ctx, iamstack.Options{
			SetupSQL: []string{fmt.Sprintf("CREATE ROLE rds_iam; CREATE ROLE %[1]s WITH LOGIN; GRANT rds_iam TO %[1]s; CREATE ROLE %[2]s WITH LOGIN; GRANT rds_iam TO %[2]s", iamUser, otherUser)},
			Role:     "launch-test", AllowUsers: []string{iamUser},
		})
		if world.err == nil {
			world.signer = world.stack.Signer("launch-test-signer", iamUser)
		}
	})
	if world.err != nil {
		t.Fatalf("start the test world: %v", world.err)
	}
	return world.stack
}

// frontConfig is the emulated Postgres front's upstream as a user would
// configure it, signing as the test's IAM user.
func frontConfig(t *testing.T) Config {
	s := stack(t)
	c := NewConfig(config.Postgres, s.Endpoint())
	c.DialAddress, c.Listen, c.CABundle = s.Front.Addr(), "127.0.0.1:0", s.CAFile
	c.AWSLoadOptions = world.signer
	return c
}
