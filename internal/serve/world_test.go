package serve

import (
	"flag"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/shortskip"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/iamstack"
)

// The tests run the process the run command runs (Run) against a
// throwaway PostgreSQL behind the emulated RDS front, started once on
// first use. They sign as an IAM user of their own (iamstack.Signer), so
// nothing in the process environment changes.

const iamUser = "app_user"

var world = iamstack.Lazy{
	Options: iamstack.Options{
		SetupSQL: []string{fmt.Sprintf("CREATE ROLE rds_iam; CREATE ROLE %[1]s WITH LOGIN; GRANT rds_iam TO %[1]s", iamUser)},
		Role:     "serve-test", AllowUsers: []string{iamUser},
	},
	SignerName: "serve-test-signer", SignAs: iamUser,
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

// settings are what run loads from args (after the emulated front's
// --endpoint, --dial-address, --ca-bundle and a loopback --listen).
func settings(t *testing.T, args ...string) *config.Settings {
	t.Helper()
	s := stack(t)
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := config.Register(fs)
	base := []string{"--endpoint", s.Endpoint(), "--dial-address", s.Front.Addr(), "--ca-bundle", s.CAFile, "--listen", "127.0.0.1:0"}
	if err := config.ParseArgs(fs, append(base, args...), func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
	st, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	return st
}
