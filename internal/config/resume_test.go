package config

import (
	"strings"
	"testing"
	"time"
)

// TestResumeWait: resume_wait is off unless set; per upstream in the file
// (an upstream's own wins over the top level), or from a variable or a
// flag for all; Pausable follows it; a negative wait is refused.
func TestResumeWait(t *testing.T) {
	s, err := load(t, twoUpstreams, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range s.Upstreams {
		if u.ResumeWait != 0 || u.Pausable() {
			t.Errorf("%s: resume_wait %s by default; want 0 (off)", u.Name, u.ResumeWait)
		}
	}
	file := strings.Replace(twoUpstreams, "  - name: orders\n", "  - name: orders\n    resume_wait: 90s\n", 1) + "resume_wait: 60s\n"
	s, err = load(t, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := []time.Duration{time.Duration(s.Upstreams[0].ResumeWait), time.Duration(s.Upstreams[1].ResumeWait)}; got[0] != 90*time.Second || got[1] != time.Minute || !s.Upstreams[1].Pausable() {
		t.Errorf("resume_wait from the file: %v; want the upstream's 90s, then the top level's 1m", got)
	}
	s, err = load(t, twoUpstreams, map[string]string{"RDS_IAM_PROXY_RESUME_WAIT": "45s"})
	if err != nil || time.Duration(s.Upstreams[1].ResumeWait) != 45*time.Second {
		t.Errorf("RDS_IAM_PROXY_RESUME_WAIT=45s: %v, %v", s.Upstreams[1].ResumeWait, err)
	}
	s, err = load(t, twoUpstreams, nil, "--resume-wait", "30s")
	if err != nil || time.Duration(s.Upstreams[0].ResumeWait) != 30*time.Second {
		t.Errorf("--resume-wait 30s: %v, %v", s.Upstreams[0].ResumeWait, err)
	}
	_, err = load(t, twoUpstreams, nil, "--resume-wait", "-1s")
	if err == nil || !strings.Contains(err.Error(), "resume_wait: -1s is negative") {
		t.Errorf("--resume-wait -1s: %v; want it refused", err)
	}
}
