package shortskip

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestSkipFailsInCI runs this test binary again with -short, once with
// CI=true (the probe must fail) and once without (it must skip).
func TestSkipFailsInCI(t *testing.T) {
	if os.Getenv("SHORTSKIP_PROBE") == "1" {
		Skip(t, "needs a probe")
		return
	}
	for _, tc := range []struct {
		ci       string
		wantFail bool
		want     string
	}{
		{"true", true, "CI must run it"},
		{"", false, "skipped with -short"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSkipFailsInCI$", "-test.short", "-test.v")
		cmd.Env = append(os.Environ(), "SHORTSKIP_PROBE=1", "CI="+tc.ci)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.wantFail || !strings.Contains(string(out), tc.want) {
			t.Errorf("CI=%q: err %v, want failure %v and %q in:\n%s", tc.ci, err, tc.wantFail, tc.want, out)
		}
	}
}
