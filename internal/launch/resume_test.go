package launch

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// TestHoldForResume: a pausable upstream's logins are held for its
// resume_wait and its handshake timeout grows by the wait (logged), so a
// held client is not cut by its own deadline; otherwise nothing changes.
func TestHoldForResume(t *testing.T) {
	c := NewConfig(config.Postgres, "db.cluster-x.us-east-1.rds.amazonaws.com:5432")
	s := proxy.Settings{HandshakeTimeout: 30 * time.Second}
	holdForResume(c, &s, slog.New(slog.DiscardHandler))
	if s.Resume != nil || s.HandshakeTimeout != 30*time.Second {
		t.Fatalf("resume_wait unset: %v, handshake %v; want off and 30s", s.Resume.Wait(), s.HandshakeTimeout)
	}
	c.ResumeWait = config.Duration(time.Minute)
	logs := &syncbuf.Buffer{}
	holdForResume(c, &s, slog.New(slog.NewTextHandler(logs, nil)))
	if s.Resume.Wait() != time.Minute || s.HandshakeTimeout != 90*time.Second {
		t.Errorf("resume_wait 1m: wait %v, handshake %v; want 1m and 1m30s", s.Resume.Wait(), s.HandshakeTimeout)
	}
	if !strings.Contains(logs.String(), "handshake_timeout=1m30s") {
		t.Errorf("the raise is not logged: %s", logs)
	}
}
