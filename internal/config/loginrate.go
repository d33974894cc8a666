package config

// checkLoginGuard checks the login-rate guard's and pre-warm's settings:
// counts of 0 or more, and a burst of at least one login when a rate is
// set (a bucket that holds nothing lets nothing through).
func checkLoginGuard(s Serving, bad func(where, key, format string, args ...any)) {
	for key, n := range map[string]int{"login_rate": s.LoginRate, "login_burst": s.LoginBurst, "max_logins_in_progress": s.MaxLoginsInProgress, "prewarm": s.Prewarm} {
		if n < 0 {
			bad("", key, "%d: use 0 (off) or more", n)
		}
	}
	if s.LoginRate > 0 && s.LoginBurst == 0 {
		bad("", "login_burst", "0 with login_rate %d: use 1 or more", s.LoginRate)
	}
	if s.PrewarmMaxAge < 0 {
		bad("", "prewarm_max_age", "%s is negative", s.PrewarmMaxAge)
	}
	if s.LoginWait < 0 {
		bad("", "login_wait", "%s is negative", s.LoginWait)
	}
	if s.Prewarm > 64 {
		bad("", "prewarm", "%d: use at most 64 (each is a server connection held open)", s.Prewarm)
	}
}
