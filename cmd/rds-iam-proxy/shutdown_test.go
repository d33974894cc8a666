package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/health"
)

// shutdownListener serves the shutdown endpoint on network/addr.
func shutdownListener(t *testing.T, network, addr string, quit func()) string {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := health.ServeShutdown(ln, health.ShutdownOptions{Quit: quit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	if network == "unix" {
		return "unix:" + addr
	}
	return ln.Addr().String()
}

func TestShutdownTriggersQuit(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			var calls atomic.Int32
			st := health.NewState()
			st.SetServing()
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = filepath.Join(t.TempDir(), "quit.sock")
			}
			addr = shutdownListener(t, network, addr, func() { calls.Add(1); st.SetDraining() })

			var stdout, stderr bytes.Buffer
			if code := runMain(context.Background(), []string{"shutdown", "--shutdown-address", addr}, &stdout, &stderr); code != 0 {
				t.Fatalf("shutdown = %d; stderr: %s", code, stderr.String())
			}
			if calls.Load() != 1 {
				t.Errorf("quit called %d times, want 1", calls.Load())
			}
			if st.Phase() != health.Draining {
				t.Errorf("phase after shutdown = %v, want draining", st.Phase())
			}
			// A second shutdown is accepted and does not quit twice.
			if code := runMain(context.Background(), []string{"shutdown", "--shutdown-address", addr}, &stdout, &stderr); code != 0 || calls.Load() != 1 {
				t.Errorf("second shutdown = %d, quit calls %d; want 0 and 1", code, calls.Load())
			}
		})
	}
}

func TestShutdownErrors(t *testing.T) {
	t.Run("nothing listening", func(t *testing.T) {
		addr := freeAddr(t)
		var stdout, stderr bytes.Buffer
		code := runMain(context.Background(), []string{"shutdown", "--shutdown-address", addr}, &stdout, &stderr)
		msg := stderr.String()
		if code != 1 || !strings.Contains(msg, "not reachable") || !strings.Contains(msg, addr) || !strings.Contains(msg, "is the proxy running") {
			t.Errorf("shutdown = %d, stderr %q", code, msg)
		}
	})
	t.Run("the admin port", func(t *testing.T) {
		srv, _ := adminServer(t, health.Options{State: health.NewState()})
		var stdout, stderr bytes.Buffer
		code := runMain(context.Background(), []string{"shutdown", "--shutdown-address", srv.Listener.Addr().String()}, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), "is this the admin port?") {
			t.Errorf("shutdown = %d, stderr %q", code, stderr.String())
		}
	})
	t.Run("RDS_IAM_PROXY_ADMIN_ADDRESS is the proxy's, not an error", func(t *testing.T) {
		var calls atomic.Int32
		addr := shutdownListener(t, "tcp", "127.0.0.1:0", func() { calls.Add(1) })
		t.Setenv("RDS_IAM_PROXY_ADMIN_ADDRESS", "0.0.0.0:9801")
		var stdout, stderr bytes.Buffer
		if code := runMain(context.Background(), []string{"shutdown", "--shutdown-address", addr}, &stdout, &stderr); code != 0 || calls.Load() != 1 {
			t.Errorf("shutdown = %d, quit calls %d, stderr %q", code, calls.Load(), stderr.String())
		}
	})
	t.Run("--admin-address", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code := runMain(context.Background(), []string{"shutdown", "--admin-address", "127.0.0.1:9801"}, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "Fix: start the proxy with --shutdown-address") {
			t.Errorf("shutdown --admin-address = %d, stderr %q", code, stderr.String())
		}
	})
}
