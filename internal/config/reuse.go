package config

import "time"

// Reuse are the session reuse settings (proxy.Pool): off by default,
// since a client that relies on session state lasting across its own
// connections would lose it, and one client's session goes to the next.
type Reuse struct {
	SessionReuse      bool     `yaml:"session_reuse" usage:"reuse upstream sessions: a session whose client left cleanly (Postgres Terminate, MySQL COM_QUIT; no transaction open) is reset (DISCARD ALL; COM_RESET_CONNECTION) and given to the next client with the same user, database and startup parameters, without a new IAM login. For many short connections from an app without a pooler; not for apps that keep session state across connections"`
	PoolIdleTimeout   Duration `yaml:"pool_idle_timeout" usage:"session reuse: close a parked session after this long unused"`
	PoolMaxLifetime   Duration `yaml:"pool_max_lifetime" usage:"session reuse: close a session this long after its login instead of parking it again"`
	PoolMaxIdlePerKey int      `yaml:"pool_max_idle_per_key" usage:"session reuse: most sessions parked for one user, database and startup parameters"`
	PoolMaxIdle       int      `yaml:"pool_max_idle" usage:"session reuse: most sessions parked per upstream; a new one takes the place of the longest parked"`
	PoolMinIdle       int      `yaml:"pool_min_idle" usage:"session reuse: sessions kept parked per user, database and startup parameters (mysql: character set and capabilities) once a client of them has left, logged in ahead in the background under the login-rate guard and renewed at pool_max_lifetime, so that a burst of clients finds them ready (0: none; at most pool_max_idle_per_key)"`
}

// DefaultReuse are the session reuse settings before any file, variable
// or flag.
func DefaultReuse() Reuse {
	return Reuse{
		PoolIdleTimeout:   Duration(5 * time.Minute),
		PoolMaxLifetime:   Duration(time.Hour),
		PoolMaxIdlePerKey: 16,
		PoolMaxIdle:       128,
	}
}

// check reports negative limits (0 takes the default).
func (r Reuse) check(bad func(where, key, format string, args ...any)) {
	for key, d := range map[string]Duration{"pool_idle_timeout": r.PoolIdleTimeout, "pool_max_lifetime": r.PoolMaxLifetime} {
		if d < 0 {
			bad("", key, "%s is negative", d)
		}
	}
	for key, n := range map[string]int{"pool_max_idle_per_key": r.PoolMaxIdlePerKey, "pool_max_idle": r.PoolMaxIdle} {
		if n < 0 {
			bad("", key, "%d: use 1 or more (0: the default)", n)
		}
	}
	if r.PoolMinIdle < 0 {
		bad("", "pool_min_idle", "%d is negative", r.PoolMinIdle)
	}
	if r.PoolMaxIdlePerKey > 0 && r.PoolMinIdle > r.PoolMaxIdlePerKey {
		bad("", "pool_min_idle", "%d is more than pool_max_idle_per_key (%d)", r.PoolMinIdle, r.PoolMaxIdlePerKey)
	}
}
