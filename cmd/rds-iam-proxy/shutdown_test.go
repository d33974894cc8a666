package main

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/health"
)

func TestShutdownTriggersQuit(t *testing.T) {
	var calls atomic.Int32
	st := health.NewState()
	st.SetServing()
	s, err := health.Start("127.0.0.1:0", health.Options{State: st, Quit: func() { calls.Add(1); st.SetDraining() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })

	var stdout, stderr bytes.Buffer
	if code := runMain(context.Background(), []string{"shutdown", "--admin-address", s.Addr().String()}, &stdout, &stderr); code != 0 {
		t.Fatalf("shutdown = %d; stderr: %s", code, stderr.String())
	}
	if calls.Load() != 1 {
		t.Errorf("quit called %d times, want 1", calls.Load())
	}
	if st.Phase() != health.Draining {
		t.Errorf("phase after shutdown = %v, want draining", st.Phase())
	}
	// A second shutdown is accepted and does not quit twice.
	if code := runMain(context.Background(), []string{"shutdown", "--admin-address", s.Addr().String()}, &stdout, &stderr); code != 0 || calls.Load() != 1 {
		t.Errorf("second shutdown = %d, quit calls %d; want 0 and 1", code, calls.Load())
	}
}

func TestShutdownErrors(t *testing.T) {
	t.Run("nothing listening", func(t *testing.T) {
		addr := freeAddr(t)
		var stdout, stderr bytes.Buffer
		code := runMain(context.Background(), []string{"shutdown", "--admin-address", addr}, &stdout, &stderr)
		msg := stderr.String()
		if code != 1 || !strings.Contains(msg, "not reachable") || !strings.Contains(msg, addr) || !strings.Contains(msg, "is the proxy running") {
			t.Errorf("shutdown = %d, stderr %q", code, msg)
		}
	})
	t.Run("quitquitquit not enabled", func(t *testing.T) {
		srv, _ := adminServer(t, health.Options{State: health.NewState()})
		var stdout, stderr bytes.Buffer
		code := runMain(context.Background(), []string{"shutdown", "--admin-address", srv.Listener.Addr().String()}, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), "does not accept /quitquitquit") {
			t.Errorf("shutdown = %d, stderr %q", code, stderr.String())
		}
	})
}
