//go:build unix

package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"syscall"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv"
)

// startSocat runs socat forwarding a loopback port to addr, each
// connection in a process of its own, and returns the port's address and
// how to stop it; no stop (nil) when socat is not installed.
func startSocat(ctx context.Context, addr string) (string, func(), error) {
	bin, err := exec.LookPath("socat")
	if err != nil {
		return "", nil, nil
	}
	ports, err := localsrv.FreePorts(1)
	if err != nil {
		return "", nil, err
	}
	listen := fmt.Sprintf("127.0.0.1:%d", ports[0])
	cmd := exec.Command(bin, fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr,nodelay", ports[0]), "TCP:"+addr+",nodelay")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its forks go with it
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start socat: %w", err)
	}
	stop := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", listen)
		if err == nil {
			c.Close()
			return listen, stop, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", nil, fmt.Errorf("socat did not listen on %s: %w", listen, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
