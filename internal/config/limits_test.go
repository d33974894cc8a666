package config

import (
	"strings"
	"testing"
	"time"
)

// TestLoginLimitsSettings: the handshake cap, MySQL's cap on unanswered
// greetings and the first-packet timeout have defaults and come from the
// file, variables and flags, with 0 meaning "no cap" (launch's tests check
// that it serves them with those meanings).
func TestLoginLimitsSettings(t *testing.T) {
	s, err := load(t, twoUpstreams, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.MaxHandshakes != 1024 || s.MaxUnanswered != 64 || time.Duration(s.FirstPacketTimeout) != 10*time.Second {
		t.Errorf("defaults are %d, %d, %s; want 1024, 32, 10s", s.MaxHandshakes, s.MaxUnanswered, s.FirstPacketTimeout)
	}
	if s.Serving != DefaultServing() {
		t.Errorf("serving settings without a file's, a variable's or a flag's: %+v, want DefaultServing's %+v", s.Serving, DefaultServing())
	}
	s, err = load(t, twoUpstreams+"max_handshakes: 0\nfirst_packet_timeout: 0s\n", map[string]string{"RDS_IAM_PROXY_MAX_UNANSWERED_GREETINGS": "0"}, "--handshake-timeout", "7s")
	if err != nil {
		t.Fatal(err)
	}
	if s.MaxHandshakes != 0 || s.MaxUnanswered != 0 || s.FirstPacketTimeout != 0 || time.Duration(s.HandshakeTimeout) != 7*time.Second {
		t.Errorf("0 settings are %d, %d, %s (handshake %s); want no caps, and the first packet bounded by the handshake timeout", s.MaxHandshakes, s.MaxUnanswered, s.FirstPacketTimeout, s.HandshakeTimeout)
	}
	s, err = load(t, twoUpstreams, nil, "--max-handshakes", "50", "--first-packet-timeout", "2s")
	if err != nil {
		t.Fatal(err)
	}
	if s.MaxHandshakes != 50 || time.Duration(s.FirstPacketTimeout) != 2*time.Second {
		t.Errorf("flags give %d, %s", s.MaxHandshakes, s.FirstPacketTimeout)
	}
	_, err = load(t, twoUpstreams, nil, "--max-handshakes", "-1", "--max-unanswered-greetings", "-2", "--first-packet-timeout", "-1s")
	for _, want := range []string{"max_handshakes: -1", "max_unanswered_greetings: -2", "first_packet_timeout: -1s is negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("negative settings: %v; want %q", err, want)
		}
	}
}

// TestShutdownAddress: only a loopback address or a unix socket, never
// the admin port's.
func TestShutdownAddress(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:9802", "[::1]:9802", "localhost:9802", "unix:/run/rds-iam-proxy/shutdown.sock"} {
		s, err := load(t, twoUpstreams, nil, "--shutdown-address", ok)
		if err != nil {
			t.Errorf("--shutdown-address %s: %v", ok, err)
			continue
		}
		if s.ShutdownAddress != ok {
			t.Errorf("--shutdown-address %s: got %q", ok, s.ShutdownAddress)
		}
	}
	for addr, want := range map[string]string{
		"0.0.0.0:9802":  "not a loopback address",
		":9802":         "not a loopback address",
		"10.0.0.7:9802": "not a loopback address",
		"unix:relative": "absolute path",
	} {
		// Not even with the switches that open the other listeners.
		_, err := load(t, twoUpstreams, nil, "--shutdown-address", addr, "--allow-non-loopback", "--admin-allow-non-loopback")
		if err == nil || !strings.Contains(err.Error(), "shutdown_address") || !strings.Contains(err.Error(), want) {
			t.Errorf("--shutdown-address %s: %v; want %q", addr, err, want)
		}
	}
	_, err := load(t, twoUpstreams, nil, "--shutdown-address", "127.0.0.1:9801", "--admin-address", "127.0.0.1:9801")
	if err == nil || !strings.Contains(err.Error(), "is also the admin address") {
		t.Errorf("shutdown on the admin port: %v", err)
	}
}

// TestAllowLocalInfile: off by default, per upstream in the file and in
// --upstream, a flag for the --endpoint upstream, and MySQL only.
func TestAllowLocalInfile(t *testing.T) {
	s, err := load(t, twoUpstreams, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Upstreams[1].AllowLocalInfile {
		t.Error("allowed by default")
	}
	file := strings.Replace(twoUpstreams, "    max_connections: 5\n", "    max_connections: 5\n    allow_local_infile: true\n", 1)
	if s, err = load(t, file, nil); err != nil || !s.Upstreams[1].AllowLocalInfile || s.Upstreams[0].AllowLocalInfile {
		t.Errorf("file: %v", err)
	}
	if s, err = load(t, "", nil, "--endpoint", "b.x.us-east-1.rds.amazonaws.com:3306", "--engine", "mysql", "--allow-local-infile"); err != nil || !s.Upstreams[0].AllowLocalInfile {
		t.Errorf("--allow-local-infile: %v", err)
	}
	if s, err = load(t, "", nil, "--upstream", "engine=mysql,endpoint=b.x.us-east-1.rds.amazonaws.com:3306,allow_local_infile=true"); err != nil || !s.Upstreams[0].AllowLocalInfile {
		t.Errorf("--upstream allow_local_infile=true: %v", err)
	}
	_, err = load(t, "", nil, "--endpoint", "a.x.us-east-1.rds.amazonaws.com:5432", "--allow-local-infile")
	if err == nil || !strings.Contains(err.Error(), "allow_local_infile: is for mysql upstreams") {
		t.Errorf("postgres with allow_local_infile: %v", err)
	}
}
