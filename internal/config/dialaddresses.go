package config

import (
	"fmt"
	"net"
	"strings"
)

// DialAddresses reads instance_dial_addresses, "NAME=HOST:PORT ...": where
// to dial each Aurora instance (tunnels, the emulator), keyed by the
// lower-cased name. The router and doctor's cluster checks both read it.
func (d Defaults) DialAddresses() (map[string]string, error) {
	m := map[string]string{}
	for _, pair := range strings.Fields(d.InstanceDialAddresses) {
		name, addr, ok := strings.Cut(pair, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%q: want NAME=HOST:PORT", pair)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("%q: %w", pair, err)
		}
		m[strings.ToLower(name)] = addr
	}
	return m, nil
}
