package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Endpoint is an upstream's RDS endpoint: the name tokens are signed for
// and TLS verifies, and its port, which the token names too.
type Endpoint struct {
	Host string
	Port int
	// PortGiven says whether the port was written. When it was not, Port
	// is the engine's default, which need not be the DB's (doctor warns).
	PortGiven bool
}

// ParseEndpoint reads an endpoint, HOST or HOST:PORT, the port defaulting
// to the engine's.
func ParseEndpoint(s string, e Engine) (Endpoint, error) {
	if s == "" {
		return Endpoint{}, errors.New("no endpoint: pass --endpoint HOST:PORT, the RDS endpoint (e.g. mydb.abc123.us-east-1.rds.amazonaws.com:5432)")
	}
	host, portText, err := net.SplitHostPort(s)
	if err != nil {
		if strings.ContainsAny(s, ":/[]") {
			return Endpoint{}, fmt.Errorf("--endpoint %q: want HOST or HOST:PORT, the RDS endpoint name", s)
		}
		return Endpoint{Host: s, Port: e.DefaultPort()}, nil
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return Endpoint{}, fmt.Errorf("--endpoint %q: invalid port", s)
	}
	return Endpoint{Host: host, Port: port, PortGiven: true}, nil
}

// String is HOST:PORT.
func (ep Endpoint) String() string { return net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)) }
